"""`polystream verify EVENTS.jsonl`: do the real stores hold exactly what the events imply?

Exit codes: 0 every compared part matches; 1 differences; 2 the check could not run (an
invalid or empty file, a store that does not answer, a database without the schema), said in
one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from polystream.domain.events import decode
from polystream.runtime.retry import ConfigurationError
from polystream.settings import Settings, load_settings
from polystream.simulate import check_recorded, read_recorded
from polystream.sinks.ports import StoreError
from polystream.sinks.receipts import RECEIPT_NAMESPACES
from polystream.verify import Difference, Scope, compare_live, compare_rows, expected_state

console = Console()


class VerifyError(Exception):
    """The check cannot run; the message is the one line the user sees."""


def _actual(settings: Settings) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from polystream.sinks.mongo import MongoCatalogStore
    from polystream.sinks.postgres.migrate import check as schema_current
    from polystream.sinks.postgres.store import PostgresAccountStore
    from polystream.sinks.redis_live import RedisLiveStore

    try:
        if not schema_current(settings.postgres):
            raise VerifyError(
                f"PostgreSQL database {settings.postgres.database!r} on "
                f"{settings.postgres.host}:{settings.postgres.port} has no current polystream "
                "schema (start a postgres worker, or run `python -m polystream.sinks.postgres "
                "upgrade`)")
        pg = PostgresAccountStore(settings.postgres)
        try:
            accounts = pg.dump()
        finally:
            pg.close()
    except (StoreError, ConfigurationError) as exc:
        raise VerifyError(f"PostgreSQL: {_first_line(exc)}") from exc
    try:
        mg = MongoCatalogStore.from_settings(settings.mongo)
        try:
            catalog = mg.snapshot()
        finally:
            mg.close()
    except StoreError as exc:
        raise VerifyError(f"MongoDB: {_first_line(exc)}") from exc
    try:
        rd = RedisLiveStore.from_settings(settings.redis, prefix=settings.redis.key_prefix)
        try:
            live = {k: v for k, v in rd.dump().items()
                    if k.split(":", 1)[0] not in RECEIPT_NAMESPACES}
        finally:
            rd.close()
    except StoreError as exc:
        raise VerifyError(f"Redis: {_first_line(exc)}") from exc
    return accounts, catalog, live


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_verify(events_file: Path, settings: Settings) -> tuple[list[Difference], bool, int]:
    """The differences, whether the comparison was exact (the stores hold only this file's
    data), and the number of events. Raises VerifyError when it cannot run."""
    check = check_recorded(events_file)
    if check.invalid_count:
        raise VerifyError(f"{events_file}: {check.invalid_count} invalid line(s), e.g. "
                          f"{check.invalid[0]}")
    if not check.events:
        raise VerifyError(f"{events_file}: no events in the file")
    events = [decode(ev.value) for ev in read_recorded(events_file)]
    ref = expected_state(events)
    scope = Scope.of(events)
    accounts, catalog, live = _actual(settings)
    expected = (ref.accounts.dump(), ref.catalog.snapshot(), ref.live.dump())

    def compare(exact: bool) -> list[Difference]:
        return (compare_rows("postgres", expected[0], accounts, scope=scope, exact=exact)
                + compare_rows("mongo", expected[1], catalog, scope=scope, exact=exact)
                + compare_live(expected[2], live, scope=scope, exact=exact))

    diffs = compare(exact=False)
    # Aggregates (global counters, flags) are this file's alone only when nothing else is.
    exact = not any(d.foreign for d in diffs)
    if exact:
        diffs = compare(exact=True)
    return diffs, exact, len(events)


def verify(
    events: Annotated[Path, typer.Argument(dir_okay=False,
                                           help="a JSONL event file (`simulate --out`)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Recompute every store's expected state from EVENTS and compare it with the real stores.

    The stores may also hold other data (other runs, real users): only what the file's events
    are about is compared, and what they hold besides is counted, not judged. Differences are
    listed and the exit code is 1; 2 when the check cannot run.
    """
    if not events.is_file():
        console.print(f"[red]{events}: no such file[/]")
        raise typer.Exit(2)
    try:
        diffs, exact, count = run_verify(events, load_settings())
    except VerifyError as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    ok = all(d.ok for d in diffs)
    if as_json:
        print(json.dumps({
            "ok": ok, "events": count, "exact": exact,
            "parts": [{"store": d.store, "part": d.part, "expected": d.expected,
                       "actual": d.actual, "ok": d.ok, "samples": d.samples,
                       "other_data": d.foreign, "shared_not_compared": d.shared}
                      for d in diffs]}, indent=2))
    else:
        table = Table("store", "part", "expected", "actual", "other data", "verdict")
        for d in diffs:
            table.add_row(d.store, d.part, f"{d.expected:,}", f"{d.actual:,}",
                          f"{d.foreign:,}" if d.foreign else "",
                          "[green]same[/]" if d.ok else f"[red]{'; '.join(d.samples)[:200]}[/]")
        console.print(table)
        shared = sum(d.shared for d in diffs)
        console.print(
            f"{count:,} events; " + ("the stores hold only this file's data: everything compared"
                                     if exact else
                                     f"the stores also hold other data (left alone); {shared:,} "
                                     "shared aggregate(s) not compared"))
    if not ok:
        raise typer.Exit(1)
