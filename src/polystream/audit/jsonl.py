"""`AuditIndex` on rotating JSON-lines files, for when the search engine is disabled.

Layout of the folder::

    events-2025.01.0.jsonl    one line per document *version*: the whole document, exactly
    events-2025.01.1.jsonl    what OpenSearch would hold; a later line of a doc_id wins
    erasures.jsonl            {"key": <erasure key>, "erased_at": ...}
    .lock                     held by the one writer (the auditor)

Files are per month (the same buckets as the OpenSearch indices, so retention deletes whole
files) and roll to a new segment past ``max_segment_bytes``. Every batch is flushed and
fsync'ed before `index_batch` returns, so the auditor commits offsets only for records on
disk. A torn last line (crash mid-write) is cut off when the writer opens the folder.

An erasure rewrites the buckets it touched: the documents' current versions go to a new
segment whose first line is ``{"compacted": true}``, then the older segments are deleted. If
the process dies in between, the next writer finishes the job (a reader already ignores the
segments before a compacted one), so no older version of an erased user's document survives.

Readers (the CLI, the API) open the folder with ``read_only=True`` and follow the files as the
writer appends. Everything is held in memory: this is the small-deployment fallback, not a
search engine. Switching OpenSearch on later: see docs/audit.md (backfill).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from polystream.audit.documents import UNDATED, IndexItem, bucket_month
from polystream.audit.memory import Clock, InMemoryAuditIndex, Key
from polystream.audit.ports import AuditIndexError, AuditIndexUnavailable, IndexFailure

_SEGMENT = re.compile(r"^events-(undated|[0-9]{4}\.[0-9]{2})\.([0-9]+)\.jsonl$")
_COMPACTED = b'{"compacted":true}\n'
ERASURES = "erasures.jsonl"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Seen:
    inode: int
    offset: int


def _segments(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.iterdir():
        match = _SEGMENT.match(path.name)
        if match and (match[1] == UNDATED or bucket_month(match[1]) is not None):
            found.setdefault(match[1], []).append((int(match[2]), path))
    for segments in found.values():
        segments.sort()
    return found


def _lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Complete lines from ``start``, with the offset after each; a torn tail is left out."""
    with path.open("rb") as handle:
        handle.seek(start)
        offset = start
        for line in handle:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield offset, line


class JsonlAuditIndex(InMemoryAuditIndex):
    def __init__(
        self,
        folder: Path,
        *,
        retention_days: int = 90,
        max_segment_bytes: int = 64 * 1024 * 1024,
        read_only: bool = False,
        fsync: bool = True,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__(retention_days=retention_days, clock=clock)
        self.folder = folder
        self.read_only = read_only
        self._max_segment_bytes = max_segment_bytes
        self._fsync = fsync
        self._lock_file: IO[bytes] | None = None
        self._seen: dict[str, _Seen] = {}
        self._loaded = False

    # -- opening ------------------------------------------------------------------------------

    def ensure(self) -> None:
        with self._lock:
            if self._loaded:
                return
            try:
                if not self.read_only:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self._take_lock()
                    self._repair()
                self._load()
            except OSError as exc:
                raise AuditIndexUnavailable(f"audit folder {self.folder}: {exc}") from exc
            self._loaded = True

    def _take_lock(self) -> None:
        handle = (self.folder / ".lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AuditIndexError(
                f"another process writes the audit folder {self.folder}") from None
        self._lock_file = handle

    def _repair(self) -> None:
        """Finish what a crash interrupted: a torn last line, a compaction half done."""
        for path in [*self.folder.glob("events-*.jsonl"), self.folder / ERASURES]:
            if not path.exists():
                continue
            size = path.stat().st_size
            end = max((after for after, _ in _lines(path)), default=0)
            if end < size:
                with path.open("r+b") as handle:
                    handle.truncate(end)
        for leftover in self.folder.glob("events-*.tmp"):
            leftover.unlink()
        for segments in _segments(self.folder).values():
            for cut in self._superseded(segments):
                cut.unlink()

    @staticmethod
    def _superseded(segments: list[tuple[int, Path]]) -> list[Path]:
        """Segments older than the newest compacted one."""
        newest = None
        for number, path in segments:
            with path.open("rb") as handle:
                if handle.read(len(_COMPACTED)) == _COMPACTED:
                    newest = number
        return [path for number, path in segments if newest is not None and number < newest]

    def _load(self) -> None:
        self._docs.clear()
        self._erased.clear()
        self._seen.clear()
        if not self.folder.exists():
            return
        for bucket, segments in sorted(_segments(self.folder).items()):
            skip = set(self._superseded(segments))
            for _, path in segments:
                if path not in skip:
                    self._read(path, bucket)
        erasures = self.folder / ERASURES
        if erasures.exists():
            self._read(erasures, None)

    def _read(self, path: Path, bucket: str | None) -> None:
        seen = self._seen.get(path.name)
        start = seen.offset if seen is not None else 0
        offset = start
        for after, line in _lines(path, start):
            offset = after
            if line == _COMPACTED:
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line nobody could have written whole; never fatal for readers
            if bucket is None:
                self._erased.setdefault(str(data["key"]), str(data["erased_at"]))
            else:
                self._docs[(bucket, str(data["doc_id"]))] = data
        self._seen[path.name] = _Seen(path.stat().st_ino, offset)

    def _sync(self) -> None:
        if not self._loaded:
            self.ensure()
        if not self.read_only:
            return  # the writer's memory is the truth
        with self._lock:
            try:
                self._follow()
            except OSError as exc:
                raise AuditIndexUnavailable(f"audit folder {self.folder}: {exc}") from exc

    def _follow(self) -> None:
        """Read what the writer appended since the last call; reload after a rewrite."""
        segments = _segments(self.folder) if self.folder.exists() else {}
        paths = {path.name: path for found in segments.values() for _, path in found}
        erasures = self.folder / ERASURES
        if erasures.exists():
            paths[ERASURES] = erasures
        gone = set(self._seen) - set(paths)
        replaced = any(
            (stat := paths[name].stat()).st_ino != seen.inode or stat.st_size < seen.offset
            for name, seen in self._seen.items() if name in paths)
        skip = {path.name for found in segments.values() for path in self._superseded(found)}
        if gone or replaced or (set(self._seen) & skip):
            self._load()
            return
        for bucket, found in sorted(segments.items()):
            for _, path in found:
                if path.name not in skip:
                    self._read(path, bucket)
        if erasures.exists():
            self._read(erasures, None)

    # -- writing ------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise AuditIndexError("this audit folder was opened read-only")
        if not self._loaded:
            self.ensure()

    def _segment_for(self, bucket: str, extra: int) -> Path:
        segments = _segments(self.folder).get(bucket, [])
        if not segments:
            return self.folder / f"events-{bucket}.0.jsonl"
        number, path = segments[-1]
        if path.stat().st_size + extra > self._max_segment_bytes and path.stat().st_size > 0:
            return self.folder / f"events-{bucket}.{number + 1}.jsonl"
        return path

    def _append(self, path: Path, lines: Sequence[bytes], *, first: bytes = b"") -> None:
        try:
            with path.open("ab") as handle:
                handle.write(first + b"".join(lines))
                handle.flush()
                if self._fsync:
                    os.fsync(handle.fileno())
        except OSError as exc:
            # Disk full or gone: the batch is not durable, so it must be retried, not skipped.
            raise AuditIndexUnavailable(f"writing {path}: {exc}") from exc

    @staticmethod
    def _line(doc: dict[str, Any]) -> bytes:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        self._writable()
        return super().index_batch(items)

    def erase_user(self, user_id: str) -> int:
        self._writable()
        return super().erase_user(user_id)

    def _persist(self, changed: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self._writable()
        by_bucket: dict[str, list[bytes]] = {}
        for bucket, doc in changed:
            by_bucket.setdefault(bucket, []).append(self._line(doc))
        for bucket, lines in sorted(by_bucket.items()):
            self._append(self._segment_for(bucket, sum(map(len, lines))), lines)

    def _persist_erasure(self, key: str, when: str) -> None:
        self._writable()
        self._append(self.folder / ERASURES, [self._line({"key": key, "erased_at": when})])

    def _rewrite(self, buckets: set[str], docs: Mapping[Key, dict[str, Any]]) -> None:
        self._writable()
        for bucket in sorted(buckets):
            old = _segments(self.folder).get(bucket, [])
            number = old[-1][0] + 1 if old else 0
            lines = [self._line(doc) for (b, _), doc in sorted(docs.items()) if b == bucket]
            target = self.folder / f"events-{bucket}.{number}.jsonl"
            # Written under a temporary name: a half-written compacted segment must never be
            # taken for a complete one (it would hide the older segments).
            partial = target.with_suffix(".tmp")
            self._append(partial, lines, first=_COMPACTED)
            partial.rename(target)
            self._sync_folder()
            for _, path in old:
                path.unlink()

    def _sync_folder(self) -> None:
        # The rename must be on disk before the older segments go, or a crash could leave
        # neither.
        if not self._fsync:
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _drop(self, buckets: set[str]) -> None:
        if not buckets:
            return
        self._writable()
        for bucket in buckets:
            for _, path in _segments(self.folder).get(bucket, []):
                path.unlink()

    def apply_retention(self, now: datetime) -> list[str]:
        self._sync()
        return super().apply_retention(now)

    def close(self) -> None:
        with self._lock:
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None
            self._loaded = False
