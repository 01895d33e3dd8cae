"""`polystream topics …`: the Kafka topic layout."""

from __future__ import annotations

from typing import Annotated

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
def ensure(
    grow_partitions: Annotated[bool, typer.Option(
        "--grow-partitions",
        help="Add partitions to existing topics that have fewer than configured. Keys move to "
             "other partitions: do it while the producers are stopped and the sinks caught "
             "up.")] = False,
) -> None:
    """Create missing topics (idempotent). An existing topic with fewer partitions than
    configured is reported and left alone (exit 1) unless --grow-partitions is given."""
    settings = load_settings()
    specs = topic_specs(settings.kafka)
    try:
        actions = dict(ensure_topics(settings.kafka, specs, grow_partitions=grow_partitions))
    except BusError as exc:
        Console(stderr=True).print(f"[red]topics ensure failed:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("topic", "partitions", "action")
    for spec in specs:
        table.add_row(spec.name, str(spec.partitions), actions.get(spec.name, "?"))
    Console().print(table)
    short = [name for name, action in actions.items() if "not grown" in action]
    if short:
        Console(stderr=True).print(
            f"[yellow]{len(short)} topic(s) have fewer partitions than configured:[/] "
            f"{', '.join(short)}; rerun with --grow-partitions to add them")
        raise typer.Exit(1)
