"""The `polystream` command: one Typer app, one sub-app per area."""

from __future__ import annotations

import typer

from polystream.cli import api, audit, schema, stack, topics
from polystream.cli.demo import demo
from polystream.cli.simulate import simulate
from polystream.cli.verify import verify
from polystream.cli.worker import worker

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="polystream: streaming-platform backend on Kafka and polyglot persistence.")
app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(schema.app, name="schema")
app.command()(worker)
app.command()(demo)
app.command()(simulate)
app.command()(verify)
app.add_typer(api.app, name="api")
app.add_typer(audit.app, name="audit")


def main() -> None:
    app()
