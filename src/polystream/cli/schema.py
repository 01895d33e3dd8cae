"""`polystream schema …`: the event contract as JSON Schema and AsyncAPI documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from polystream import schema_export

app = typer.Typer(no_args_is_help=True, help="Export or check the event schemas.")

OutDir = Annotated[Path, typer.Argument(help="folder that gets schemas/<type>.json and "
                                        "asyncapi.json")]


@app.command()
def export(out_dir: OutDir = Path("docs")) -> None:
    """Write one JSON Schema per event type and the AsyncAPI 3 document."""
    written = schema_export.export(out_dir)
    Console().print(f"wrote {len(written)} files under {out_dir}")


@app.command()
def check(out_dir: OutDir = Path("docs")) -> None:
    """Exit 1 when the documents under OUT_DIR differ from what the code exports."""
    drift = schema_export.check(out_dir)
    if drift:
        for line in drift:
            Console(stderr=True).print(line, markup=False)
        raise typer.Exit(1)
    Console().print("schemas are up to date")
