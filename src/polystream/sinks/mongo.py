"""The catalog store on MongoDB: the S2 sink's ``MongoCatalogStore``.

It runs on FerretDB 1.24 (the managed stack) and on real MongoDB (docker compose), so it
keeps to what both do: ``find`` with ``$in``/``$or``/``$ne``, ``insert_many``, replace
without upsert, ``count_documents``, single-field and compound indexes. No transactions,
no ``$lookup``/``$facet``, no partial or TTL indexes.

Layout (document shapes and rules live in :mod:`polystream.domain.catalog` and
:mod:`polystream.domain.catalog_rules`; the API reads through :mod:`polystream.reads.catalog`):

* ``titles``: one document per title, ``_id`` = title_id, the snapshot's fields (movies
  without ``seasons``, series without ``runtime_minutes``, series embedding seasons and
  episodes), ``version``, ``updated_at`` (event time), ``event_id``. A removal replaces it
  by a tombstone ``{_id, version, removed: true, ...}``.
* ``relations``: one document per edge, ``_id`` = ``from:to:kind``, queried from either
  end; a removal leaves a tombstone.
* GridFS bucket ``assets``: file ``_id`` = asset_id, metadata title_id, kind, content_type,
  size_bytes, sha256; listed per title through an index on ``metadata.title_id``.

How a batch is written, and why not one guarded upsert per event:

The textbook guard, ``update_one({_id, version: {$lt: v}}, {$set: doc}, upsert=True)``
(a stale version collides with the existing ``_id``: E11000), works one event at a time on
FerretDB 1.24 but not in a batch. Measured on FerretDB 1.24.2 (PostgreSQL backend):

* an ``update`` command with several upserts stops at the first E11000 even when
  ``ordered`` is false, reports it at ``index`` 0 whatever its position, and omits
  ``n``/``nModified``, so pymongo 4.20's ``bulk_write`` fails with ``KeyError:
  'nModified'`` instead of raising ``BulkWriteError``: errors cannot be mapped to events;
* an ``update`` command with 50 or more statements deadlocks the server for every client
  (each statement keeps a backend connection until the command ends; the pool holds 50);
* every lookup, ``_id`` included, is a sequential scan (``_jsonb->'_id' @> ...`` cannot use
  a btree), and ``$in`` is not pushed down at all: a keyed read or write costs O(collection).
* ``insert`` with ``ordered=False`` behaves like MongoDB: every document is tried, errors
  come back per op with the right index.

So a batch is folded in memory first (the domain's ``plan_batch``: one outcome per event, the
final document per key) and written with the operations that behave the same on both servers:

1. ``insert_many(ordered=False)`` of every title and relation document, as if all keys
   were new: no read at all when they are (the common case of a catalog being loaded).
2. Keys that already existed come back as duplicate-key errors; only their events are
   folded again, over the guard state read for them in one ``find``, and written as
   compare-and-set replaces (``ReplaceOne`` without upsert, filtered on the ``event_id``
   that was read): one ``bulk_write`` on MongoDB; on FerretDB one statement per command, a
   few commands in parallel, which is safe there and faster.
3. A replace that did not match means another worker wrote the key in between (a
   rebalance); the tokens are read back and those keys folded again over fresh state.

Assets are read before they are written (one ``find`` on the small ``assets.files``
documents): chunks must never be written next to an existing file's.

Measured on FerretDB with batches of 500 (2 CPUs, 5 000 titles): new titles ~5 000 events/s,
new 20 KiB assets ~700/s, newer versions of existing titles ~100/s (one sequential scan
per replace), replays (all duplicates) ~300/s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Self

from bson import Binary
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from polystream.domain.catalog import (
    AssetInfo,
    Direction,
    Document,
    Edge,
    asset_info_from_document,
    chunked,
    edge_from_document,
    title_from_document,
)
from polystream.domain.catalog_rules import (
    CatalogPlan,
    CatalogState,
    Key,
    key_of,
    keys_of,
    stored_state,
)
from polystream.domain.events import AnyEvent, Genre, RelationKind, Sink, TitleKind
from polystream.domain.outcomes import Outcome
from polystream.settings import MongoSettings
from polystream.sinks.catalog_read_side import CatalogReadSide
from polystream.store_errors import StoreError, TransientStoreError
from polystream.stores.catalog_layout import (
    ASSET_CHUNKS,
    ASSET_FILES,
    RELATIONS,
    TITLES,
    plan_writes,
)
from polystream.stores.mongo_client import (
    EDGE_SORT,
    TITLE_SORT,
    assemble,
    client_options,
    edges_filter,
    titles_filter,
    titles_out,
    translated,
)

# ---------------------------------------------------------------------------------------
# Indexes, declared here and created by ensure_indexes()
# ---------------------------------------------------------------------------------------

#: Every index the store needs, by collection. The GridFS ones carry the names drivers give
#: them, so a bucket that pymongo's GridFSBucket created first is recognised as is.
INDEXES: Final[Mapping[str, tuple[IndexModel, ...]]] = {
    TITLES: (
        # Browse by kind, newest first; _id completes the sort list_titles uses.
        IndexModel(
            [("kind", ASCENDING), ("year", DESCENDING), ("_id", ASCENDING)], name="kind_year"
        ),
        # Multikey: one entry per genre of a title.
        IndexModel([("genres", ASCENDING), ("year", DESCENDING)], name="genres_year"),
    ),
    RELATIONS: (
        IndexModel([("from_title_id", ASCENDING), ("kind", ASCENDING)], name="from_kind"),
        IndexModel([("to_title_id", ASCENDING), ("kind", ASCENDING)], name="to_kind"),
    ),
    ASSET_FILES: (
        IndexModel(
            [("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_1_uploadDate_1"
        ),
        IndexModel([("metadata.title_id", ASCENDING)], name="metadata_title_id"),
    ),
    ASSET_CHUNKS: (
        IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], name="files_id_1_n_1", unique=True),
    ),
}

#: Rounds of "fold, write, read back" before a batch whose keys keep moving is given back to
#: the worker as a transient failure (it retries the batch with backoff).
_MAX_ROUNDS: Final = 4

_DUPLICATE_KEY: Final = 11000


def _chunks(asset_id: str, data: bytes) -> list[Document]:
    return [
        {"files_id": asset_id, "n": n, "data": Binary(part)}
        for n, part in enumerate(chunked(data))
    ]


def _file_token(doc: Mapping[str, Any]) -> Any:
    return doc.get("metadata", {}).get("event_id")


def _doc_token(doc: Mapping[str, Any]) -> Any:
    return doc.get("event_id")


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class MongoCatalogStore(CatalogReadSide):
    """The S2 catalog store (``catalog.*`` events) on MongoDB or FerretDB, synchronous.

    Construct with a client and a database name (the client stays the caller's), or with
    :meth:`from_settings` (the store owns the client and closes it). Nothing connects until
    the first operation. Call :meth:`ensure_indexes` once at start.
    """

    sink = Sink.MONGO

    def __init__(
        self,
        client: MongoClient[Document],
        database: str,
        *,
        owns_client: bool = False,
        bulk_updates: bool | None = None,
        write_threads: int = 4,
    ) -> None:
        """``bulk_updates``: replace existing documents with one ``bulk_write`` per batch
        (MongoDB) or one statement per command on ``write_threads`` threads (FerretDB, see
        the module docstring). None asks the server which one it is, at the first write."""
        self._client = client
        self._owns_client = owns_client
        self._bulk_updates = bulk_updates
        self._write_threads = write_threads
        self._executor: ThreadPoolExecutor | None = None
        self._db: Database[Document] = client.get_database(database)
        self._titles: Collection[Document] = self._db[TITLES]
        self._relations: Collection[Document] = self._db[RELATIONS]
        self._files: Collection[Document] = self._db[ASSET_FILES]
        self._chunks: Collection[Document] = self._db[ASSET_CHUNKS]

    @classmethod
    def from_settings(cls, settings: MongoSettings, **options: Any) -> Self:
        """A store owning its client; ``options`` are the constructor's keyword options."""
        client: MongoClient[Document] = MongoClient(
            settings.url, **client_options(settings.server_selection_timeout_s)
        )
        return cls(client, settings.database, owns_client=True, **options)

    @property
    def database(self) -> Database[Document]:
        return self._db

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        if self._owns_client:
            self._client.close()

    # -- indexes ------------------------------------------------------------------------

    def ensure_indexes(self) -> list[str]:
        """Create the missing indexes of :data:`INDEXES`; return their ``collection.name``.

        Idempotent. Indexes are compared by name and created one per command: FerretDB 1.24
        drops the connection (a server panic) when one ``createIndexes`` names two or more
        indexes that already exist. An index that exists with other keys raises
        :class:`StoreError` (it needs a manual drop; silently keeping it would leave a
        query without the index it was designed for).
        """
        created: list[str] = []
        with translated("ensuring indexes"):
            for name, models in INDEXES.items():
                collection = self._db[name]
                existing = {ix["name"]: ix for ix in collection.list_indexes()}
                for model in models:
                    spec = model.document
                    found = existing.get(spec["name"])
                    if found is not None:
                        if _keys(found["key"]) != _keys(spec["key"]):
                            raise StoreError(
                                f"index {name}.{spec['name']} exists with keys "
                                f"{dict(found['key'])}, expected {dict(spec['key'])}"
                            )
                        continue
                    collection.create_indexes([model])
                    created.append(f"{name}.{spec['name']}")
        return created

    # -- write side ---------------------------------------------------------------------

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True) -> list[Outcome]:
        """Apply a batch of catalog events; one outcome per event, in order (see module doc).

        Raises :class:`PermanentStoreError` for an upload whose bytes do not match its
        checksum, before anything of the batch is written, and
        :class:`TransientStoreError` when MongoDB cannot be reached. ``allow_defer`` changes
        nothing here: no catalog event waits for another topic (a relation may name titles
        that have not arrived yet, and is stored anyway).
        """
        outcomes: list[Outcome | None] = [None] * len(events)
        pending = list(range(len(events)))
        with translated("applying a batch"):
            for round_ in range(_MAX_ROUNDS):
                batch = [events[index] for index in pending]
                # First round: titles and relations are taken to be new and simply inserted;
                # the keys that turn out to exist come back as duplicate-key errors and are
                # read and folded again in the next round. A batch of new keys then costs no
                # read at all, which matters on FerretDB, where a read by _id scans the whole
                # collection. Assets are always read first: their chunks must not be written
                # next to an existing file's.
                state = self._read_state(batch, assets_only=round_ == 0)
                plan = plan_writes(batch, state)
                for index, outcome in zip(pending, plan.outcomes, strict=True):
                    outcomes[index] = outcome
                moved = self._write(plan, state)
                if not moved:
                    return [outcome for outcome in outcomes if outcome is not None]
                pending = [index for index in pending if key_of(events[index]) in moved]
        raise TransientStoreError(
            f"{len(pending)} events of the batch kept losing their writes to another writer "
            f"after {_MAX_ROUNDS} rounds"
        )

    def _read_state(self, events: Sequence[AnyEvent], *, assets_only: bool) -> CatalogState:
        keys = keys_of(events)

        def stored(
            collection: Collection[Document], kind: str, projection: Document
        ) -> Iterable[Document]:
            if not keys[kind] or (assets_only and kind != "asset"):
                return ()
            return collection.find({"_id": {"$in": sorted(keys[kind])}}, projection)

        return stored_state(
            titles=stored(self._titles, "title", {"version": 1, "removed": 1, "event_id": 1}),
            relations=stored(
                self._relations, "relation", {"event_time_us": 1, "event_id": 1, "removed": 1}
            ),
            asset_files=stored(self._files, "asset", {"metadata.sha256": 1}),
        )

    def _write(self, plan: CatalogPlan, state: CatalogState) -> set[Key]:
        """Write a plan; return the keys whose write another writer got in before."""
        moved: set[Key] = set()
        if plan.titles:
            bases = {key: guard.event_id for key, guard in state.titles.items()}
            moved.update(("title", key) for key in self._put(self._titles, plan.titles, bases))
        if plan.relations:
            bases = {key: guard.event_id for key, guard in state.relations.items()}
            moved.update(
                ("relation", key) for key in self._put(self._relations, plan.relations, bases)
            )
        if plan.assets:
            moved.update(("asset", key) for key in self._put_assets(plan))
        return moved

    def _put(
        self,
        collection: Collection[Document],
        docs: Mapping[str, Document],
        bases: Mapping[str, str | None],
        *,
        token: Callable[[Mapping[str, Any]], Any] = _doc_token,
    ) -> set[str]:
        """Insert the documents whose key was absent, replace the others if their token is
        still ``bases[key]``; return the keys where that failed (a document was there, or
        another writer replaced it first).
        """
        new = [doc for key, doc in docs.items() if key not in bases]
        old: list[tuple[Document, Document]] = [
            ({"_id": key, "event_id": bases[key]}, doc) for key, doc in docs.items() if key in bases
        ]
        failed: set[str] = set()
        if new:
            try:
                collection.insert_many(new, ordered=False)
            except BulkWriteError as exc:
                _raise_unless_duplicates(exc)
                failed.update(new[error["index"]]["_id"] for error in exc.details["writeErrors"])
        if old and not self._replace_all(collection, old):
            # Replies say how many replaces matched, not which: read the tokens back.
            expected = {query["_id"]: token(doc) for query, doc in old}
            found = {
                doc["_id"]: token(doc)
                for doc in collection.find(
                    {"_id": {"$in": sorted(expected)}}, {"event_id": 1, "metadata.event_id": 1}
                )
            }
            failed.update(key for key, value in expected.items() if found.get(key) != value)
        return failed

    def _replace_all(
        self, collection: Collection[Document], replacements: Sequence[tuple[Document, Document]]
    ) -> bool:
        """Compare-and-set replaces; True if every one matched."""
        if self._uses_bulk_updates():
            ops = [ReplaceOne(query, doc) for query, doc in replacements]
            return collection.bulk_write(ops, ordered=False).matched_count == len(ops)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._write_threads, thread_name_prefix="mongo-catalog"
            )
        matched = self._executor.map(
            lambda pair: collection.replace_one(pair[0], pair[1]).matched_count, replacements
        )
        return sum(matched) == len(replacements)

    def _uses_bulk_updates(self) -> bool:
        if self._bulk_updates is None:
            self._bulk_updates = "ferretdbVersion" not in self._client.server_info()
        return self._bulk_updates

    def _put_assets(self, plan: CatalogPlan) -> set[str]:
        ids = sorted(plan.assets)
        chunks = [chunk for key in ids for chunk in _chunks(key, plan.assets[key].data)]
        try:
            self._chunks.insert_many(chunks, ordered=False)
        except BulkWriteError as exc:
            _raise_unless_duplicates(exc)
            # No files document existed for these ids when the batch was read, so colliding
            # chunks are leftovers of an upload that died between its chunks and its files
            # document (GridFS writes are not atomic). Deleted only now, because on FerretDB
            # a query on files_id reads every chunk of every asset.
            leftovers = sorted(
                {chunks[error["index"]]["files_id"] for error in exc.details["writeErrors"]}
            )
            self._chunks.delete_many({"files_id": {"$in": leftovers}})
            redo = [chunk for key in leftovers for chunk in _chunks(key, plan.assets[key].data)]
            try:
                self._chunks.insert_many(redo, ordered=False)
            except BulkWriteError as again:
                # Only an upload of the same asset running right now collides twice; the
                # worker retries the batch, which then finds that upload's files document.
                raise TransientStoreError(
                    f"asset chunks of {leftovers} collided with a concurrent upload"
                ) from again
        files = {key: plan.assets[key].file for key in ids}
        return self._put(self._files, files, {}, token=_file_token)

    # -- read side ----------------------------------------------------------------------

    def get_title(self, title_id: str) -> Document | None:
        """The title's current ``TitleUpserted`` payload (JSON form); None if absent/removed."""
        with translated("reading a title"):
            doc = self._titles.find_one({"_id": title_id})
        return None if doc is None else title_from_document(doc)

    def _titles_page(self, kind: TitleKind | str | None, genre: Genre | str | None, limit: int,
                     offset: int) -> list[Document]:
        with translated("listing titles"):
            docs = list(
                self._titles.find(titles_filter(kind, genre))
                .sort(TITLE_SORT)
                .skip(offset)
                .limit(limit)
            )
        return titles_out(docs)

    def count_titles(
        self, kind: TitleKind | str | None = None, genre: Genre | str | None = None
    ) -> int:
        with translated("counting titles"):
            return self._titles.count_documents(titles_filter(kind, genre))

    def _edges(self, title_id: str, direction: Direction,
               kind: RelationKind | str | None) -> list[Edge]:
        query = edges_filter(title_id, direction, kind)
        with translated("reading relations"):
            docs = list(self._relations.find(query).sort(EDGE_SORT))
        return [edge_from_document(doc) for doc in docs]

    def get_asset(self, asset_id: str) -> tuple[AssetInfo, bytes] | None:
        """An asset's metadata and bytes (checked against its sha256); None if absent."""
        with translated("reading an asset"):
            file_doc = self._files.find_one({"_id": asset_id})
            if file_doc is None:
                return None
            chunks = list(self._chunks.find({"files_id": asset_id}).sort("n", ASCENDING))
        return assemble(file_doc, chunks)

    def list_assets(self, title_id: str) -> list[AssetInfo]:
        """A title's assets, by asset id."""
        with translated("listing assets"):
            docs = list(self._files.find({"metadata.title_id": title_id}).sort("_id", ASCENDING))
        return [asset_info_from_document(doc) for doc in docs]

    # -- verification -------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[Document]]:
        """Every stored document, sorted by ``_id``; chunks summarised as one sha256 per file
        (the same shape as :meth:`InMemoryCatalogStore.snapshot`)."""
        with translated("taking a snapshot"):
            out = {
                name: list(self._db[name].find().sort("_id", ASCENDING))
                for name in (TITLES, RELATIONS, ASSET_FILES)
            }
            digests: dict[str, Any] = {}
            for chunk in self._chunks.find().sort([("files_id", ASCENDING), ("n", ASCENDING)]):
                digests.setdefault(chunk["files_id"], hashlib.sha256()).update(chunk["data"])
        out[ASSET_CHUNKS] = [
            {"files_id": key, "sha256": digest.hexdigest()}
            for key, digest in sorted(digests.items())
        ]
        return out


def _keys(key: Mapping[str, Any]) -> list[tuple[str, int]]:
    # Servers may answer 1.0 for 1.
    return [(field, int(order)) for field, order in key.items()]


def _raise_unless_duplicates(exc: BulkWriteError) -> None:
    errors = exc.details.get("writeErrors", [])
    if not errors or any(error.get("code") != _DUPLICATE_KEY for error in errors):
        raise exc


__all__ = ["INDEXES", "MongoCatalogStore"]
