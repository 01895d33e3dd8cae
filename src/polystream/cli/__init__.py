"""The `polystream` command: one Typer app, one sub-app or command per area.

The submodules stay reachable as modules (`polystream.cli.simulate` is the module, its
command is `polystream.cli.simulate.simulate`).
"""

from __future__ import annotations

import typer

from polystream import __version__
from polystream.cli import (
    api,
    audit,
    bench,
    chaos,
    demo,
    lag,
    schema,
    simulate,
    stack,
    topics,
    users,
    verify,
    worker,
)

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="polystream: streaming-platform backend on Kafka and polyglot persistence.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"polystream {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """polystream: streaming-platform backend on Kafka and polyglot persistence."""


app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(schema.app, name="schema")
app.add_typer(api.app, name="api")
app.add_typer(audit.app, name="audit")
app.add_typer(bench.app, name="bench")
app.add_typer(chaos.app, name="chaos")
app.add_typer(users.app, name="users")
app.command()(worker.worker)
app.command()(simulate.simulate)
app.command()(demo.demo)
app.command()(verify.verify)
app.command()(lag.lag)


def main() -> None:
    app()
