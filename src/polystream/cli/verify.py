"""`polystream verify EVENTS.jsonl`: do the real stores hold exactly what the events imply?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from polystream.domain.events import decode
from polystream.settings import load_settings
from polystream.simulate import check_recorded, read_recorded
from polystream.verify import Difference, compare_live, compare_rows, expected_state

console = Console()


def verify(
    events: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                           help="a JSONL event file (`simulate --out`)")],
) -> None:
    """Recompute every store's expected state from EVENTS and compare it with the real stores.

    The stores must hold exactly these events (a fresh stack fed from this file, with the
    workers drained); any difference is listed and the exit code is 1.
    """
    from polystream.sinks.mongo import MongoCatalogStore
    from polystream.sinks.postgres.store import PostgresAccountStore
    from polystream.sinks.redis_live import RedisLiveStore

    check = check_recorded(events)
    if check.invalid:
        console.print(f"[red]{events}: {len(check.invalid)} invalid lines[/], e.g. "
                      f"{check.invalid[0]}")
        raise typer.Exit(2)
    settings = load_settings()
    ref = expected_state(decode(ev.value) for ev in read_recorded(events))
    pg = PostgresAccountStore(settings.postgres)
    mg = MongoCatalogStore.from_settings(settings.mongo)
    rd = RedisLiveStore.from_settings(settings.redis)
    try:
        diffs: list[Difference] = (
            compare_rows("postgres", ref.accounts.dump(), pg.dump())
            + compare_rows("mongo", ref.catalog.snapshot(), mg.snapshot())
            + compare_live(ref.live.dump(), rd.dump()))
    finally:
        pg.close()
        mg.close()
        rd.close()
    table = Table("store", "part", "expected", "actual", "verdict")
    for d in diffs:
        table.add_row(d.store, d.part, f"{d.expected:,}", f"{d.actual:,}",
                      "[green]same[/]" if d.ok else f"[red]{'; '.join(d.samples)[:200]}[/]")
    console.print(table)
    if not all(d.ok for d in diffs):
        raise typer.Exit(1)
