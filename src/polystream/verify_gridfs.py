"""The GridFS bucket's own invariants, checked on FerretDB/MongoDB and the in-memory store alike.

GridFS has no atomic write: an upload inserts its chunks, then its ``files`` document, and a
crash in between leaves chunks that no file names (the sink cleans them up when the upload is
retried, `MongoCatalogStore._put_assets`). A deleted or rewritten chunk leaves a file that
cannot be read back. The snapshot comparison of `verify` sees the bytes of the file's own
events; this check sees the bucket as a whole:

* every chunk belongs to a ``files`` document (no orphans, whoever wrote them);
* every file has all its chunks, numbered 0..n-1 once each, of ``chunkSize`` bytes but the
  last, ``length`` bytes in all, hashing to ``metadata.sha256``;
* every file names a title the catalog holds (a document or its tombstone), unless the
  events themselves uploaded it before (or without) its title: the reference store, fed
  the same events, then has the same dangling file.

An upload still in flight shows as an orphan: run it once the pipeline has drained.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polystream.domain.catalog import CHUNK_SIZE, chunked
from polystream.sinks.memory_catalog import InMemoryCatalogStore
from polystream.stores.catalog_layout import ASSET_CHUNKS, ASSET_FILES, TITLES
from polystream.verify import Difference, Scope

if TYPE_CHECKING:
    from polystream.sinks.mongo import MongoCatalogStore


@dataclass(frozen=True, slots=True)
class Chunk:
    files_id: str
    n: int
    data: bytes


@dataclass
class Inventory:
    """A bucket's files documents, its chunks, and the ids of the catalog's titles."""

    files: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    titles: set[str] = field(default_factory=set)


def mongo_inventory(store: MongoCatalogStore) -> Inventory:
    db = store.database
    inv = Inventory(files=list(db[ASSET_FILES].find()),
                    titles={str(d["_id"]) for d in db[TITLES].find({}, {"_id": 1})})
    for doc in db[ASSET_CHUNKS].find({}, {"files_id": 1, "n": 1, "data": 1}):
        inv.chunks.append(Chunk(str(doc.get("files_id")), int(doc.get("n", -1)),
                                bytes(doc.get("data") or b"")))
    return inv


def memory_inventory(store: InMemoryCatalogStore) -> Inventory:
    snap = store.snapshot()
    inv = Inventory(files=snap[ASSET_FILES], titles={str(d["_id"]) for d in snap[TITLES]})
    for doc in inv.files:
        found = store.get_asset(str(doc["_id"]))
        data = found[1] if found is not None else b""
        inv.chunks += [Chunk(str(doc["_id"]), n, part) for n, part in enumerate(chunked(data))]
    return inv


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # "orphan", "incomplete", "unreferenced"
    files_id: str
    title_id: str | None
    text: str


def problems(inv: Inventory) -> list[Problem]:
    files = {str(doc["_id"]): doc for doc in inv.files}
    chunks: dict[str, list[Chunk]] = {}
    for chunk in inv.chunks:
        chunks.setdefault(chunk.files_id, []).append(chunk)
    out = [Problem("orphan", fid, None,
                   f"orphaned chunk(s) of {fid}: n={sorted(c.n for c in found)}, no files doc")
           for fid, found in sorted(chunks.items()) if fid not in files]
    for fid, doc in sorted(files.items()):
        meta = doc.get("metadata") or {}
        title = meta.get("title_id")
        title = str(title) if title is not None else None
        broken = _incomplete(doc, sorted(chunks.get(fid, []), key=lambda c: c.n))
        if broken:
            out.append(Problem("incomplete", fid, title, f"file {fid} {broken}"))
        if title is None or title not in inv.titles:
            out.append(Problem("unreferenced", fid, title,
                               f"file {fid} names title {title} that the catalog does not hold"))
    return out


def _incomplete(doc: dict[str, Any], chunks: list[Chunk]) -> str | None:
    length, size = int(doc.get("length", 0)), int(doc.get("chunkSize", CHUNK_SIZE)) or 1
    want = list(range((length + size - 1) // size))
    have = [c.n for c in chunks]
    if have != want:
        absent = sorted(set(want) - set(have))
        extra = sorted(n for n in set(have) if have.count(n) > 1 or n not in want)
        return (f"has chunks {have[:10]} of {len(want)}"
                + (f" (missing n={absent[:10]})" if absent else "")
                + (f" (extra n={extra[:10]})" if extra else ""))
    if any(len(c.data) != size for c in chunks[:-1]) or sum(len(c.data) for c in chunks) != length:
        return f"chunk sizes {[len(c.data) for c in chunks][:10]} do not make {length} bytes"
    digest = hashlib.sha256(b"".join(c.data for c in chunks)).hexdigest()
    sha = (doc.get("metadata") or {}).get("sha256")
    if sha is not None and digest != sha:
        return f"bytes hash to {digest[:12]}… instead of {str(sha)[:12]}…"
    return None


def check_gridfs(actual: Inventory, expected: Inventory, *, scope: Scope | None = None,
                 max_samples: int = 5) -> Difference:
    """The ``mongo/gridfs`` part. Orphans and broken files count whoever wrote them
    (unexpected and stale); a file naming no title counts (stale) when it is this input's and
    the reference has no such dangling file."""

    def ours(p: Problem | dict[str, Any]) -> bool:
        if scope is None:
            return True
        if isinstance(p, Problem):
            return scope.refs(p.files_id)[0] or (p.title_id is not None
                                                 and scope.refs(p.title_id)[0])
        return scope.row_refs(p)[0]

    allowed = {p.files_id for p in problems(expected) if p.kind == "unreferenced"}
    found = [p for p in problems(actual)
             if p.kind != "unreferenced" or (p.files_id not in allowed and ours(p))]
    orphans = [p for p in found if p.kind == "orphan"]
    broken = [p for p in found if p.kind != "orphan"]
    samples = [p.text for p in orphans[:max_samples]] + [p.text for p in broken[:max_samples]]
    mine = [d for d in actual.files if ours(d)]
    diff = Difference("mongo", "gridfs", sum(1 for d in expected.files if ours(d)), len(mine),
                      samples, len(actual.files) - len(mine))
    diff.unexpected, diff.stale = len(orphans), len({p.files_id for p in broken})
    return diff
