"""`polystream verify EVENTS.jsonl` (or `--from-topics`): do the real stores hold exactly what
the events imply? PostgreSQL, MongoDB with its GridFS bucket, Redis and the audit index.

Exit codes: 0 every compared part matches; 1 differences; 2 the check could not run (an
invalid or empty file, a store that does not answer, a database without the schema), said in
one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from polystream.bus.topic_read import TopicReadError, merged
from polystream.bus.topology import Topic
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import AnyEvent, decode
from polystream.receipts import RECEIPT_NAMESPACES
from polystream.runtime.retry import ConfigurationError
from polystream.settings import Settings, load_settings
from polystream.shred import read_topics_opened
from polystream.shred.keys import KeyStoreError
from polystream.simulate import check_recorded, read_recorded
from polystream.store_errors import StoreError
from polystream.verify import Difference, Scope, compare_live, compare_rows, expected_state
from polystream.verify_audit import AuditDoc, Position, audit_documents, check_audit
from polystream.verify_gridfs import Inventory, check_gridfs, memory_inventory, mongo_inventory

#: What the API keeps for itself in Redis: login sessions (`auth:`) and login throttling
#: (`login:`), see api/login/store.py. No event holds them, so no replay can expect them.
API_NAMESPACES = frozenset({"auth", "login"})

console = Console()
#: Progress and one-line errors go to stderr, so `--json` output stays parseable.
err_console = Console(stderr=True, soft_wrap=True)


class VerifyError(Exception):
    """The check cannot run; the message is the one line the user sees."""


def store_contents(settings: Settings, progress: Progress = None
            ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return _read_stores(settings, progress)[:3]


Progress = Callable[[str], None] | None


def _say(progress: Progress, text: str) -> None:
    if progress is not None:
        progress(text)


def _read_stores(settings: Settings, progress: Progress = None
                 ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Inventory]:
    from polystream.sinks.mongo import MongoCatalogStore
    from polystream.sinks.postgres.migrate import check as schema_current
    from polystream.sinks.postgres.store import PostgresAccountStore
    from polystream.sinks.redis_live import RedisLiveStore

    _say(progress, "reading PostgreSQL")
    with _reading("PostgreSQL", StoreError, ConfigurationError):
        if not schema_current(settings.postgres):
            raise VerifyError(
                f"PostgreSQL database {settings.postgres.database!r} on "
                f"{settings.postgres.host}:{settings.postgres.port} has no current polystream "
                "schema (start a postgres worker, or run `python -m polystream.sinks.postgres "
                "upgrade`)")
        with closing(PostgresAccountStore(settings.postgres)) as pg:
            accounts = pg.dump()
    _say(progress, "reading MongoDB and its GridFS bucket")
    with (_reading("MongoDB", StoreError, PyMongoError),
          closing(MongoCatalogStore.from_settings(settings.mongo)) as mg):
        catalog = mg.snapshot()
        assets = mongo_inventory(mg)
    _say(progress, "reading Redis")
    with (_reading("Redis", StoreError),
          closing(RedisLiveStore.from_settings(settings.redis,
                                               prefix=settings.redis.key_prefix)) as rd):
        live = {k: v for k, v in rd.dump().items()
                if k.split(":", 1)[0] not in RECEIPT_NAMESPACES | API_NAMESPACES}
    return accounts, catalog, live, assets


def _audit_docs(settings: Settings, progress: Progress) -> list[AuditDoc]:
    from polystream.bootstrap import open_audit_index

    where = (settings.opensearch.url if settings.opensearch.enabled else "JSONL files")
    _say(progress, f"reading the audit index ({where})")
    # Whatever the engine raises, the check cannot run.
    with (_reading(f"audit index ({where})", Exception),
          closing(open_audit_index(settings, read_only=True)) as index):
        return list(audit_documents(index))


@contextmanager
def _reading(source: str, *errors: type[Exception]) -> Iterator[None]:
    """A failure to read ``source`` (one of ``errors``) becomes a `VerifyError` naming it."""
    try:
        yield
    except errors as exc:
        raise VerifyError(f"{source}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: The topics `--from-topics` reads: every event topic (receipts and dead letters are not
#: events of the contract).
EVENT_TOPICS = tuple(t.value for t in Topic if t not in (Topic.DEADLETTER, Topic.RECEIPTS))


@dataclass
class VerifyRun:
    diffs: list[Difference]
    #: The stores hold only the input's data: aggregates were compared too.
    exact: bool
    events: int
    #: Records of the topics that are no valid event (the dead-letter topic has them).
    skipped: int = 0
    source: str = ""


def _events_from_file(events_file: Path) -> list[AnyEvent]:
    check = check_recorded(events_file)
    if check.invalid_count:
        raise VerifyError(f"{events_file}: {check.invalid_count} invalid line(s), e.g. "
                          f"{check.invalid[0]}")
    if not check.events:
        raise VerifyError(f"{events_file}: no events in the file")
    return [decode(ev.value) for ev in read_recorded(events_file)]


def _events_from_topics(settings: Settings, since: datetime | None,
                        progress: Progress) -> tuple[list[AnyEvent], list[Position]]:
    def tell(read: int, total: int) -> None:
        _say(progress, f"reading the topics: {read:,} of {total:,} records")

    _say(progress, "reading the topics")
    try:
        partitions = read_topics_opened(settings, EVENT_TOPICS, since=since, progress=tell)
    except (TopicReadError, KeyStoreError) as exc:
        raise VerifyError(_first_line(exc)) from exc
    poison: list[Position] = []
    decoded: list[list[tuple[int, datetime, AnyEvent]]] = []
    for records in partitions.values():
        mine: list[tuple[int, datetime, AnyEvent]] = []
        for rec in records:
            if not rec.value:  # a compaction tombstone: neither an event nor poison
                continue
            try:
                env = decode(rec.value)
            except InvalidEvent:
                poison.append((rec.topic, rec.partition, rec.offset))
                continue
            mine.append((rec.timestamp_ms, env.occurred_at, env))
        decoded.append(mine)
    # Publishing time first; events published in the same millisecond in the order they
    # happened (a registration before the subscription of the same user).
    events = [env for _, _, env in merged(decoded, key=lambda item: (item[0], item[1]))]
    if not events:
        raise VerifyError(f"Kafka {settings.kafka.bootstrap_servers}: no events on the topics"
                          + (f" since {since.isoformat()}" if since else ""))
    return events, poison


def run_checks(events_file: Path | None, settings: Settings, *, from_topics: bool = False,
               since: datetime | None = None, audit: bool = True,
               progress: Progress = None) -> VerifyRun:
    """Every store against the events of ``events_file`` or, with ``from_topics``, of the
    topics themselves. Raises VerifyError when it cannot run."""
    poison: list[Position] = []
    if from_topics:
        events, poison = _events_from_topics(settings, since, progress)
        source = f"topics of {settings.kafka.bootstrap_servers}"
    elif events_file is not None:
        events, source = _events_from_file(events_file), str(events_file)
    else:
        raise VerifyError("give an event file or --from-topics")
    _say(progress, f"replaying {len(events):,} events on the reference stores")
    ref = expected_state(events)
    scope = Scope.of(events)
    # The audit index first: it is the store most often disabled or elsewhere, and a check
    # that cannot run should say so before minutes of reading the others.
    docs = _audit_docs(settings, progress) if audit else None
    cutoff = datetime.now(UTC) - timedelta(days=settings.opensearch.retention_days)
    accounts, catalog, live, assets = _read_stores(settings, progress)
    _say(progress, "comparing")
    expected = (ref.accounts.dump(), ref.catalog.snapshot(), ref.live.dump())
    expected_assets = memory_inventory(ref.catalog)

    def compare(exact: bool) -> list[Difference]:
        return (compare_rows("postgres", expected[0], accounts, scope=scope, exact=exact)
                + compare_rows("mongo", expected[1], catalog, scope=scope, exact=exact)
                + [check_gridfs(assets, expected_assets, scope=scope)]
                + compare_live(expected[2], live, scope=scope, exact=exact)
                + ([check_audit(events, docs, poison=poison, retention_cutoff=cutoff)]
                   if docs is not None else []))

    diffs = compare(exact=False)
    # Aggregates (global counters, flags) are this file's alone only when nothing else is.
    # The audit index does not count: its dead letters of poison records name no event, and
    # say nothing about other data in the stores.
    exact = not any(d.foreign for d in diffs if d.store != "audit")
    if exact:
        diffs = compare(exact=True)
    return VerifyRun(diffs, exact, len(events), len(poison), source)


def run_verify(events_file: Path, settings: Settings, *, audit: bool = True,
               progress: Progress = None) -> tuple[list[Difference], bool, int]:
    """The differences, whether the comparison was exact (the stores hold only this file's
    data), and the number of events. Raises VerifyError when it cannot run."""
    run = run_checks(events_file, settings, audit=audit, progress=progress)
    return run.diffs, run.exact, run.events


def report(run: VerifyRun) -> dict[str, Any]:
    """The `--json` document: per store its totals and parts, and the verdict."""
    stores: dict[str, dict[str, Any]] = {}
    for d in run.diffs:
        entry = stores.setdefault(d.store, {"ok": True, "parts_checked": 0, "expected": 0,
                                            "found": 0, "missing": 0, "unexpected": 0,
                                            "stale": 0, "other_data": 0})
        entry["ok"] = entry["ok"] and d.ok
        entry["parts_checked"] += 1
        entry["expected"] += d.expected
        entry["found"] += d.actual
        entry["missing"] += d.missing
        entry["unexpected"] += d.unexpected
        entry["stale"] += d.stale
        entry["other_data"] += d.foreign
        for name, value in d.notes.items():
            entry[name] = entry.get(name, 0) + value
    return {
        "ok": all(d.ok for d in run.diffs), "events": run.events, "source": run.source,
        "skipped_records": run.skipped, "exact": run.exact, "stores": stores,
        "parts": [{"store": d.store, "part": d.part, "expected": d.expected,
                   "actual": d.actual, "found": d.actual, "missing": d.missing,
                   "unexpected": d.unexpected, "stale": d.stale, "ok": d.ok,
                   "samples": d.samples, "other_data": d.foreign,
                   "shared_not_compared": d.shared, **d.notes}
                  for d in run.diffs]}


def verify(
    events: Annotated[Path | None, typer.Argument(
        dir_okay=False, help="a JSONL event file (`simulate --out`)")] = None,
    from_topics: Annotated[bool, typer.Option(
        "--from-topics", help="read the events from the Kafka topics instead of a file "
        "(every partition, up to its current end)")] = False,
    since: Annotated[datetime | None, typer.Option(
        help="with --from-topics: only records produced at or after this time "
        "(ISO 8601, UTC unless an offset is given)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Recompute every store's expected state from EVENTS (or the topics) and compare it with
    the real stores: PostgreSQL, MongoDB (GridFS included), Redis and the audit index.

    The stores may also hold other data (other runs, real users): only what the events are
    about is compared, and what they hold besides is counted, not judged. Differences are
    listed and the exit code is 1; 2 when the check cannot run.
    """
    def fail(text: str) -> NoReturn:
        if as_json:
            print(json.dumps({"ok": False, "error": text}))
        else:
            err_console.print(f"[red]{text}[/]")
        raise typer.Exit(2)

    if (events is None) == (not from_topics):
        fail("give either an event file or --from-topics")
    if since is not None and not from_topics:
        fail("--since applies to --from-topics only")
    if events is not None and not events.is_file():
        fail(f"{events}: no such file")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        if as_json or not err_console.is_terminal:
            run = run_checks(events, load_settings(), from_topics=from_topics, since=since)
        else:
            with err_console.status("verify") as status:
                run = run_checks(events, load_settings(), from_topics=from_topics, since=since,
                                 progress=lambda text: status.update(f"verify: {text}"))
    except VerifyError as exc:
        fail(str(exc))
    diffs = run.diffs
    ok = all(d.ok for d in diffs)
    if as_json:
        print(json.dumps(report(run), indent=2, default=str))
    else:
        table = Table("store", "part", "expected", "found", "missing", "unexpected", "stale",
                      "other data", "verdict")
        for d in diffs:
            table.add_row(d.store, d.part, f"{d.expected:,}", f"{d.actual:,}",
                          f"{d.missing:,}", f"{d.unexpected:,}", f"{d.stale:,}",
                          f"{d.foreign:,}" if d.foreign else "",
                          "[green]same[/]" if d.ok else f"[red]{'; '.join(d.samples)[:300]}[/]")
        console.print(table)
        shared = sum(d.shared for d in diffs)
        skipped = (f"; {run.skipped:,} record(s) of the topics are no valid event (not "
                   "replayed)" if run.skipped else "")
        console.print(
            f"{run.events:,} events from {run.source}{skipped}; "
            + ("the stores hold only these events' data: everything compared"
               if run.exact else
               f"the stores also hold other data (left alone); {shared:,} shared aggregate(s) "
               "not compared"))
        expired = sum(d.notes.get("expired", 0) for d in diffs)
        if expired:
            console.print(f"{expired:,} event(s) of months past the audit retention "
                          "(opensearch.retention_days) not looked for in the audit index")
    if not ok:
        raise typer.Exit(1)
