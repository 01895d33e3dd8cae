"""`polystream lag`: how far each consumer group of the deployment is behind, per topic."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from polystream.bus.ports import BusError
from polystream.observe.lag import deployment_sinks, read_lag
from polystream.settings import load_settings


def lag(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: group → topic → "
                                          "{lag, partitions}.")] = False,
    partitions: Annotated[bool, typer.Option("--partitions",
                                             help="One row per partition.")] = False,
) -> None:
    """Records each sink's consumer group has not committed yet, per topic (exit 1 when Kafka
    cannot answer)."""
    settings = load_settings()
    try:
        groups = read_lag(settings, deployment_sinks(settings))
    except BusError as exc:
        Console(stderr=True).print(f"[red]lag unavailable:[/] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        out: dict[str, dict[str, dict[str, object]]] = {}
        for group in groups:
            topics = out.setdefault(group.group, {})
            for topic, total in group.per_topic().items():
                topics[topic] = {"lag": total, "partitions": {
                    str(p): n for (t, p), n in sorted(group.partitions.items()) if t == topic}}
        typer.echo(json.dumps(out, sort_keys=True))
        return
    table = Table("group", "topic", *(["partition"] if partitions else []), "lag")
    for group in groups:
        if partitions:
            for (topic, p), n in sorted(group.partitions.items()):
                table.add_row(group.group, topic, str(p), f"{n:,}")
        else:
            for topic, total in group.per_topic().items():
                table.add_row(group.group, topic, f"{total:,}")
    Console().print(table)
