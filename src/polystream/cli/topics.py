"""`polystream topics …`: the Kafka topic layout."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from polystream.bus.admin import ensure_topics
from polystream.bus.ports import BusError
from polystream.bus.topology import topic_specs
from polystream.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Kafka topics: one per aggregate family, plus "
                  "dead letters and receipts.")


@app.command()
def ensure() -> None:
    """Create missing topics and grow partitions where fewer than configured (idempotent)."""
    settings = load_settings()
    specs = topic_specs(settings.kafka)
    try:
        actions = dict(ensure_topics(settings.kafka, specs))
    except BusError as exc:
        Console(stderr=True).print(f"[red]topics ensure failed:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("topic", "partitions", "action")
    for spec in specs:
        table.add_row(spec.name, str(spec.partitions), actions.get(spec.name, "?"))
    Console().print(table)
