"""The `polystream` command: one Typer app, one sub-app per area."""

from __future__ import annotations

import typer

from polystream.cli import stack

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="polystream: streaming-platform backend on Kafka and polyglot persistence.")
app.add_typer(stack.app, name="stack")


def main() -> None:
    app()
