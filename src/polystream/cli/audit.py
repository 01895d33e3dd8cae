"""`polystream audit …`: read and manage the audit trail from the command line.

Reads go to the same index the auditor writes: OpenSearch when ``opensearch.enabled``, the
JSONL folder otherwise (opened read-only, so it works while the auditor runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from polystream.audit.documents import (
    PRESERVED,
    AuditRecord,
    DocKind,
    EventDoc,
    IndexItem,
    LineageUpdate,
)
from polystream.audit.ports import AuditIndex, AuditIndexError, InvalidCursor
from polystream.bootstrap import open_audit_index
from polystream.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="The audit trail: every event, receipt and dead "
                  "letter, redacted and pseudonymised, with each event's lineage.")
console = Console(stderr=True)
out = Console()

_RELATIVE = re.compile(r"^([0-9]+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

JsonlDir = Annotated[Path | None, typer.Option(
    "--jsonl-dir", help="The JSONL folder (when OpenSearch is disabled); default: next to the "
    "stack's state.")]


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (UTC when no offset is given) or a duration ago: ``90s``, ``15m``, ``2h``,
    ``7d``."""
    if text is None:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither ISO 8601 nor a duration like 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _open(jsonl_dir: Path | None) -> AuditIndex:
    index = open_audit_index(load_settings(), read_only=True, jsonl_dir=jsonl_dir)
    try:
        index.ensure()
    except AuditIndexError as exc:
        console.print(f"[bold red]audit index unavailable:[/] {exc}")
        raise typer.Exit(1) from None
    return index


@contextmanager
def _closing(index: AuditIndex, failure: str) -> Iterator[AuditIndex]:
    """The index for one command, closed at its end; an `AuditIndexError` ends the command
    with ``failure: reason`` and exit code 1."""
    try:
        yield index
    except AuditIndexError as exc:
        console.print(f"[bold red]{failure}:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        index.close()


def _lineage(record: AuditRecord) -> str:
    marks = {"stored": "✓", "duplicate": "=", "stale": "~", "rejected": "✗",
             "dead_lettered": "☠"}
    return " ".join(f"{sink}{marks.get(entry.status, '?')}"
                    for sink, entry in sorted(record.lineage.items()))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if moment else "-"


def _records(index: AuditIndex, limit: int, **filters: Any) -> tuple[list[AuditRecord], int]:
    """Up to ``limit`` records, following cursors, and the number of matches."""
    records: list[AuditRecord] = []
    cursor = None
    total = 0
    while len(records) < limit:
        page = index.search(size=min(500, limit - len(records)), cursor=cursor, **filters)
        total = page.total
        records.extend(page.items)
        if page.next_cursor is None or not page.items:
            break
        cursor = page.next_cursor
    return records, total


@app.command()
def search(
    user: Annotated[str | None, typer.Option(help="A user id.")] = None,
    type: Annotated[str | None, typer.Option("--type", help="An event type.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 (UTC if no offset) or 2h, 7d…")]
    = None,
    until: Annotated[str | None, typer.Option(help="Same forms as --since; exclusive.")] = None,
    text: Annotated[str | None, typer.Option(help="Free text: every word must appear.")]
    = None,
    kind: Annotated[DocKind | None, typer.Option(help="Only events or dead letters.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Rows to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per line.")]
    = False,
    jsonl_dir: JsonlDir = None,
) -> None:
    """Search the audit trail, newest first."""
    index = _open(jsonl_dir)
    filters: dict[str, Any] = {"user_id": user, "type": type, "since": parse_when(since),
                               "until": parse_when(until), "text": text, "kind": kind}
    table = Table("occurred at (UTC)", "type", "event id", "user", "lineage", "source",
                  title="audit trail", show_lines=False)
    with _closing(index, "search failed"):
        try:
            records, total = _records(index, limit, **filters)
        except InvalidCursor as exc:  # pragma: no cover - cursors are produced right here
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    for record in records:
        if as_json:
            out.print_json(record.model_dump_json(exclude={"dead_letters"}), indent=None)
            continue
        what = record.type or "-"
        if record.kind is DocKind.DEAD_LETTER and record.dead_letter:
            what = f"☠ {record.dead_letter.reason or '?'} ({what})"
        table.add_row(_when(record.occurred_at), what, record.event_id or record.doc_id,
                      "erased" if record.erased else (record.user_id or "-"),
                      _lineage(record), record.source or "-")
    if not as_json:
        out.print(table)
        console.print(f"{len(records)} of {total} matching documents shown")


@app.command()
def show(
    event_id: Annotated[str, typer.Argument(help="The event id.")],
    jsonl_dir: JsonlDir = None,
) -> None:
    """One event's audit document: payload (redacted), lineage, dead letters."""
    with _closing(_open(jsonl_dir), "lookup failed") as index:
        record = index.get(event_id)
    if record is None:
        console.print(f"no audit document for {event_id}")
        raise typer.Exit(1)
    out.print_json(record.model_dump_json(exclude={"lineage", "dead_letters"}))
    lineage = Table("sink", "status", "processed at (UTC)", "reason", title="lineage")
    for sink, entry in sorted(record.lineage.items(), key=lambda kv: kv[1].processed_at):
        lineage.add_row(sink, entry.status, _when(entry.processed_at), entry.reason or "")
    out.print(lineage)
    for letter in record.dead_letters:
        info = letter.dead_letter
        if info is not None:
            out.print(f"☠ dead-lettered by {info.consumer}: {info.reason} — {info.detail}")


@app.command()
def retention(
    days: Annotated[int | None, typer.Option(
        min=1, help="Keep this many days [default: opensearch.retention_days].")] = None,
    jsonl_dir: JsonlDir = None,
) -> None:
    """Delete the monthly indices (or JSONL files) entirely older than --days."""
    settings = load_settings()
    index = open_audit_index(settings, jsonl_dir=jsonl_dir, retention_days=days)
    with _closing(index, "retention failed"):
        index.ensure()
        deleted = index.apply_retention(datetime.now(UTC))
    console.print(f"deleted: {', '.join(deleted) or 'nothing'}")


def items_from_document(bucket: str, doc: dict[str, Any]) -> IndexItem:
    """The write that rebuilds a stored document in another index (backfill)."""
    doc_id = str(doc["doc_id"])
    lineage = doc.get("lineage") or {}
    if doc.get("kind") is None:
        return LineageUpdate(doc_id, bucket, lineage)
    fields = {name: value for name, value in doc.items() if name not in PRESERVED}
    return EventDoc(doc_id, bucket, fields, lineage)


@app.command("import-jsonl")
def import_jsonl(
    folder: Annotated[Path, typer.Argument(help="A JSONL audit folder.", exists=True,
                                           file_okay=False)],
    batch: Annotated[int, typer.Option(min=1, max=5000)] = 1000,
) -> None:
    """Backfill the configured index (OpenSearch) from a JSONL audit folder. Idempotent."""
    from polystream.audit.jsonl import JsonlAuditIndex

    settings = load_settings()
    if not settings.opensearch.enabled:
        console.print("[red]opensearch.enabled is false: nothing to import into[/]")
        raise typer.Exit(1)
    source = JsonlAuditIndex(folder, read_only=True)
    source.ensure()
    target = open_audit_index(settings)
    pending: list[IndexItem] = []
    done = 0
    try:
        target.ensure()
        docs = source.export()
        for bucket, doc in docs:
            pending.append(items_from_document(bucket, doc))
            if len(pending) >= batch:
                failures = target.index_batch(pending)
                if failures:
                    raise AuditIndexError(f"{len(failures)} refused: {failures[0].reason}")
                done += len(pending)
                pending = []
        if pending:
            failures = target.index_batch(pending)
            if failures:
                raise AuditIndexError(f"{len(failures)} refused: {failures[0].reason}")
            done += len(pending)
    except AuditIndexError as exc:
        console.print(f"[bold red]import stopped:[/] {exc} (run it again: it is idempotent)")
        raise typer.Exit(1) from None
    finally:
        target.close()
        source.close()
    console.print(f"imported {done} documents")
