"""`AuditIndex` on OpenSearch (or Elasticsearch 7.10-compatible APIs), with opensearch-py.

What `ensure` creates (names for the default prefix ``polystream-audit``):

* index template ``polystream-audit-events`` for ``polystream-audit-events-*``: one index per
  month (``polystream-audit-events-2025.01``), created on first write, with the explicit
  strict mapping below, all of them behind the alias ``polystream-audit-events``;
* stored Painless scripts ``polystream-audit-merge`` (the merge rules of
  `documents.apply_item`) and ``polystream-audit-anonymise`` (`documents.anonymise_fields`);
* index ``polystream-audit-erasures``: one record per erased user (hashed id).

Why months keyed by the event id's UUIDv7 time rather than rollover: ``_id`` is unique per
index only, so after a rollover a replayed event would get a second document in the new write
index. A bucket computed from the event id is the same on every replay and for the event's
receipts. Retention deletes whole monthly indices (ISM is not installed on our build; the ISM
and ILM equivalents are in docs/audit.md).

Every write is a bulk ``update`` with the stored script and ``scripted_upsert``, so an event and
its receipts merge in any order, an unchanged document is a ``noop`` (replays do not even bump
versions), and concurrent writers of one document retry on version conflicts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from polystream.audit.documents import (
    ANONYMISED_AWAY,
    EXTRACTED_IDS,
    PRESERVED,
    UNDATED,
    AuditRecord,
    DocKind,
    EventDoc,
    IndexItem,
    bucket_end,
    bucket_for_event,
    encode_cursor,
    erasure_key,
    iso,
)
from polystream.audit.ports import (
    AuditIndexError,
    AuditIndexUnavailable,
    AuditPage,
    AuditQuery,
    IndexFailure,
    KeywordSearch,
)
from polystream.domain.events import Sink
from polystream.settings import OpenSearchSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

TEMPLATE_VERSION = 1

_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": 256}
_DATE: dict[str, Any] = {"type": "date"}

_LINEAGE_ENTRY: dict[str, Any] = {
    "properties": {
        "status": {"type": "keyword"},
        "reason": {"type": "text"},
        "processed_at": _DATE,
        "event_type": _KEYWORD,
    }
}

#: The explicit mapping. ``dynamic: strict``: a field that is not here is refused, so the
#: mapping can never grow by accident (the payload is stored, not indexed, for that reason).
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        # No ignore_above: these are sorted and looked up, and a dead letter's id can be
        # longer than 256 characters (it contains a topic name).
        "doc_id": {"type": "keyword"},
        "kind": _KEYWORD,
        "event_id": {"type": "keyword"},
        "type": _KEYWORD,
        "schema_version": {"type": "integer"},
        "occurred_at": _DATE,
        "key": _KEYWORD,
        "source": _KEYWORD,
        "trace_id": _KEYWORD,
        **{name: _KEYWORD for name in EXTRACTED_IDS},
        "topic": _KEYWORD,
        "partition": {"type": "integer"},
        "offset": {"type": "long"},
        "indexed_at": _DATE,
        "payload": {"type": "object", "enabled": False},
        "text": {"type": "text"},
        "erased": {"type": "boolean"},
        # Keyed by sink. Not strict: a sink added later must not make receipts fail; its
        # entries are kept in _source until the mapping names it.
        "lineage": {
            "type": "object",
            "dynamic": False,
            "properties": {sink.value: _LINEAGE_ENTRY for sink in Sink},
        },
        "dead_letter": {
            "properties": {
                "reason": _KEYWORD,
                "detail": {"type": "text"},
                "consumer": _KEYWORD,
                "original_topic": _KEYWORD,
                "original_partition": {"type": "integer"},
                "original_offset": {"type": "long"},
                "event_type": _KEYWORD,
                "event_occurred_at": _DATE,
                "size_bytes": {"type": "long"},
                "hmac_sha256": {"type": "keyword", "index": False},
                "preview": {"type": "object", "enabled": False},
            }
        },
    },
}

ERASURE_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {"erased_at": _DATE},
}

# The Painless twin of documents.apply_item. Keep the two in step: the contract tests run the
# same cases against both.
MERGE_SCRIPT = """
String rank(def e) {
  return (e.status == 'duplicate' ? '1' : '0') + '|' + e.processed_at + '|' + e.status + '|'
    + (e.reason == null ? '' : e.reason);
}
boolean mergeLineage(Map s, String sink, Map entry) {
  def lineage = s.get('lineage');
  if (!(lineage instanceof Map)) { lineage = new HashMap(); s.put('lineage', lineage); }
  def current = lineage.get(sink);
  if (current != null && rank(entry).compareTo(rank(current)) >= 0) { return false; }
  lineage.put(sink, entry);
  return true;
}
Map s = ctx._source;
boolean changed = false;
if (params.doc != null) {
  if (s.get('erased') == true && params.doc.get('erased') != true) { ctx.op = 'noop'; return; }
  for (def e : params.doc.entrySet()) {
    if (params.preserved.contains(e.getKey())) { continue; }
    if (!s.containsKey(e.getKey()) || s.get(e.getKey()) != e.getValue()) {
      s.put(e.getKey(), e.getValue()); changed = true;
    }
  }
  for (def k : new ArrayList(s.keySet())) {
    if (!params.preserved.contains(k) && !params.doc.containsKey(k)) {
      s.remove(k); changed = true;
    }
  }
  if (s.get('indexed_at') == null) { s.put('indexed_at', params.now); changed = true; }
} else if (s.get('doc_id') == null) {
  s.put('doc_id', params.doc_id); s.put('event_id', params.doc_id); changed = true;
}
for (def e : params.lineage.entrySet()) {
  if (mergeLineage(s, e.getKey(), e.getValue())) { changed = true; }
}
if (!changed) { ctx.op = 'noop'; }
"""

ANONYMISE_SCRIPT = """
for (def k : params.away) { ctx._source.remove(k); }
if (ctx._source.get('dead_letter') instanceof Map) { ctx._source.dead_letter.put('preview', null); }
ctx._source.put('erased', true);
"""

# Per-item bulk failures worth retrying: overload, a shard moving, a concurrent writer.
_RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
#: One encoder for every ``_bulk`` line: ``json.dumps`` with options builds a new encoder per
#: call, two calls per document.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# Error messages may quote a field's value; ours are already redacted, but logs and
# dead-letter headers get no values at all.
_VALUE_PREVIEW = re.compile(r"Preview of field's value:.*", re.S)


def _clean_reason(error: Any) -> str:
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    else:
        text = str(error)
    return _VALUE_PREVIEW.sub("Preview of field's value: (withheld)", text)[:500]


def _translate(what: str, exc: Exception) -> AuditIndexError:
    if isinstance(exc, OSConnectionError):
        return AuditIndexUnavailable(f"{what}: opensearch unreachable ({type(exc).__name__})")
    if isinstance(exc, TransportError):
        status = exc.status_code
        if not isinstance(status, int) or status in _RETRYABLE_STATUS:
            return AuditIndexUnavailable(f"{what}: opensearch answered {status}")
        return AuditIndexError(f"{what}: opensearch refused ({status}: {_clean_reason(exc.info)})")
    return AuditIndexUnavailable(f"{what}: {type(exc).__name__}: {exc}")


def opensearch_client(settings: OpenSearchSettings) -> OpenSearch:
    """A client for the settings' cluster: TLS verified for https:// URLs (against
    ``ca_file`` when set), basic authentication when a user is set."""
    options: dict[str, Any] = {}
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        options["http_auth"] = (settings.username, password)
    if settings.url.startswith("https://"):
        options["verify_certs"] = True
        if settings.ca_file is not None:
            options["ca_certs"] = str(settings.ca_file.expanduser())
    # No client-side retries: the worker owns retrying (with backoff, and rewinding the
    # consumer), and a hidden retry loop here would only delay its decisions.
    return OpenSearch(settings.url, timeout=settings.timeout_s, max_retries=0,
                      retry_on_timeout=False, **options)


class OpenSearchAuditIndex(KeywordSearch):
    def __init__(
        self,
        settings: OpenSearchSettings,
        *,
        retention_days: int = 90,
        shards: int | None = None,
        replicas: int | None = None,
        refresh_interval: str = "1s",
        client: OpenSearch | None = None,
        read_only: bool = False,
    ) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        self.retention_days = retention_days
        # Readers (CLI, API) never create templates or scripts: they may hold read-only
        # credentials, and setup belongs to the auditor.
        self.read_only = read_only
        self.prefix = settings.index_prefix
        self.alias = f"{self.prefix}-events"
        self.pattern = f"{self.prefix}-events-*"
        self.erasures = f"{self.prefix}-erasures"
        self.merge_script = f"{self.prefix}-merge"
        self.anonymise_script = f"{self.prefix}-anonymise"
        self._shards = settings.shards if shards is None else shards
        self._replicas = settings.replicas if replicas is None else replicas
        self._refresh_interval = refresh_interval
        self._own_client = client is None
        self.client = client or opensearch_client(settings)

    def index_name(self, bucket: str) -> str:
        return f"{self.alias}-{bucket}"

    def _call(self, what: str, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(**kwargs)
        except (TransportError, OSConnectionError) as exc:
            raise _translate(what, exc) from exc

    # -- setup --------------------------------------------------------------------------------

    def template_body(self) -> dict[str, Any]:
        return {
            "index_patterns": [self.pattern],
            # Above OpenSearch's built-in templates; test prefixes never overlap ours.
            "priority": 100,
            "version": TEMPLATE_VERSION,
            "template": {
                "settings": {
                    "number_of_shards": self._shards,
                    "number_of_replicas": self._replicas,
                    "refresh_interval": self._refresh_interval,
                },
                "mappings": MAPPINGS,
                "aliases": {self.alias: {}},
            },
            "_meta": {"managed_by": "polystream audit", "doc": "docs/audit.md"},
        }

    def ensure(self) -> None:
        if self.read_only:
            return
        client = self.client
        self._call("storing the merge script", client.put_script, id=self.merge_script,
                   body={"script": {"lang": "painless", "source": MERGE_SCRIPT}})
        self._call("storing the anonymise script", client.put_script, id=self.anonymise_script,
                   body={"script": {"lang": "painless", "source": ANONYMISE_SCRIPT}})
        self._call("putting the index template", client.indices.put_index_template,
                   name=self.alias, body=self.template_body())
        # Indices created under an older template get the fields added since (adding is the
        # only change a mapping allows; anything else needs a reindex, see docs/audit.md).
        existing = self._indices()
        if existing:
            self._call("updating mappings", client.indices.put_mapping,
                       index=",".join(existing), body=MAPPINGS)
        try:
            client.indices.create(index=self.erasures, body={
                "settings": {"number_of_shards": 1, "number_of_replicas": self._replicas},
                "mappings": ERASURE_MAPPINGS})
        except TransportError as exc:
            if exc.error != "resource_already_exists_exception":
                raise _translate("creating the erasures index", exc) from exc
        except OSConnectionError as exc:
            raise _translate("creating the erasures index", exc) from exc

    def _indices(self) -> list[str]:
        rows = self._call("listing indices", self.client.cat.indices, index=self.pattern,
                          format="json", h="index", params={"expand_wildcards": "all"})
        return sorted(row["index"] for row in rows)

    # -- writes -------------------------------------------------------------------------------

    def _action(self, item: IndexItem, now: str) -> tuple[dict[str, Any], dict[str, Any]]:
        params: dict[str, Any] = {
            "now": now, "preserved": sorted(PRESERVED), "doc_id": item.doc_id,
            "doc": dict(item.fields) if isinstance(item, EventDoc) else None,
            "lineage": {sink: dict(entry) for sink, entry in item.lineage.items()},
        }
        head = {"update": {"_index": self.index_name(item.bucket), "_id": item.doc_id,
                           "retry_on_conflict": 5}}
        body = {"script": {"id": self.merge_script, "params": params},
                "scripted_upsert": True, "upsert": {}}
        return head, body

    def _create_action(self, item: EventDoc, now: str) -> tuple[dict[str, Any],
                                                                dict[str, Any]]:
        """A plain ``create`` of what the merge script would make of a new document."""
        source = {name: value for name, value in item.fields.items() if name not in PRESERVED}
        source["indexed_at"] = now
        if item.lineage:
            source["lineage"] = {sink: dict(entry) for sink, entry in item.lineage.items()}
        head = {"create": {"_index": self.index_name(item.bucket), "_id": item.doc_id}}
        return head, source

    def _bulk(self, actions: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[
            tuple[int, Any]]:
        """(status, error) per action; errors only when some action failed."""
        lines: list[str] = []
        encode = _COMPACT.encode
        for head, body in actions:
            lines.append(encode(head))
            lines.append(encode(body))
        response = self._call(
            "bulk", self.client.bulk, body="\n".join(lines) + "\n",
            params={"filter_path": "errors,items.*.status,items.*.error"})
        if not response.get("errors"):
            return [(200, None)] * len(actions)
        results = []
        for result in response.get("items", []):
            outcome = next(iter(result.values()))
            results.append((int(outcome.get("status", 500)), outcome.get("error")))
        if len(results) != len(actions):
            raise AuditIndexUnavailable("bulk answered for fewer items than it was sent")
        return results

    def index_batch(self, items: Sequence[IndexItem]) -> list[IndexFailure]:
        """Two passes. First a plain ``create`` per new event document (three times faster
        than a scripted update, measured) and the scripted merge for receipts; then the merge
        for the documents that already existed (a replay, or a receipt that came first)."""
        if not items:
            return []
        if self.read_only:
            raise AuditIndexError("this audit index was opened read-only")
        now = iso(datetime.now(UTC))
        first = [self._create_action(item, now) if isinstance(item, EventDoc)
                 else self._action(item, now) for item in items]
        failures: list[IndexFailure] = []
        existing: list[IndexItem] = []
        for item, (status, error) in zip(items, self._bulk(first), strict=True):
            if status == 409 and isinstance(item, EventDoc):
                existing.append(item)
            elif status >= 300:
                failures.append(self._failure(item, status, error))
        if existing:
            second = [self._action(item, now) for item in existing]
            for item, (status, error) in zip(existing, self._bulk(second), strict=True):
                if status >= 300:
                    failures.append(self._failure(item, status, error))
        return failures

    @staticmethod
    def _failure(item: IndexItem, status: int, error: Any) -> IndexFailure:
        retryable = status in _RETRYABLE_STATUS or (
            isinstance(error, dict) and "rejected_execution" in str(error.get("type")))
        return IndexFailure(item, status, _clean_reason(error), retryable)

    # -- reads --------------------------------------------------------------------------------

    def _query(self, query: AuditQuery) -> dict[str, Any]:
        filters: list[dict[str, Any]] = []
        if query.kind is None:
            filters.append({"exists": {"field": "kind"}})
        else:
            filters.append({"term": {"kind": query.kind.value}})
        for field, value in (("user_id", query.user_id), ("type", query.type),
                             ("event_id", query.event_id)):
            if value is not None:
                filters.append({"term": {field: value}})
        if query.since is not None or query.until is not None:
            bounds: dict[str, Any] = {"format": "strict_date_optional_time"}
            if query.since is not None:
                bounds["gte"] = iso(query.since)
            if query.until is not None:
                bounds["lt"] = iso(query.until)
            filters.append({"range": {"occurred_at": bounds}})
        must: list[dict[str, Any]] = []
        if query.text and query.text.strip():
            must.append({"match": {"text": {"query": query.text, "operator": "and"}}})
        return {"bool": {"filter": filters, "must": must}}

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "search", self.client.search, index=self.pattern, body=body,
            params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        return result

    def _page(self, query: AuditQuery, size: int, after: tuple[int, str] | None) -> AuditPage:
        body: dict[str, Any] = {
            "query": self._query(query),
            "sort": [{"occurred_at": {"order": "desc"}}, {"doc_id": {"order": "desc"}}],
            # One more than asked: tells whether there is a next page without a second query.
            "size": size + 1,
            "track_total_hits": True,
            "_source": {"excludes": ["text"]},
        }
        if after is not None:
            body["search_after"] = list(after)
        hits = self._search(body)["hits"]
        rows = hits["hits"]
        page = rows[:size]
        next_cursor = None
        if len(rows) > size:
            ms, doc_id = page[-1]["sort"]
            next_cursor = encode_cursor((int(ms), str(doc_id)))
        items = [AuditRecord.model_validate(row["_source"]) for row in page]
        return AuditPage(items, int(hits["total"]["value"]), next_cursor)

    def get(self, event_id: str | UUID) -> AuditRecord | None:
        doc_id = str(event_id)
        try:
            found = self.client.get(index=self.index_name(bucket_for_event(doc_id)), id=doc_id,
                                    params={"_source_excludes": "text"})
        except NotFoundError:
            return None
        except (TransportError, OSConnectionError) as exc:
            raise _translate("get", exc) from exc
        record = AuditRecord.model_validate(found["_source"])
        letters = self._search({
            "query": self._query(AuditQuery(kind=DocKind.DEAD_LETTER, event_id=doc_id)),
            "sort": [{"occurred_at": {"order": "desc"}}, {"doc_id": {"order": "desc"}}],
            "size": 20, "_source": {"excludes": ["text"]}})
        record.dead_letters = [AuditRecord.model_validate(row["_source"])
                               for row in letters["hits"]["hits"]]
        return record

    def count(self, query: AuditQuery | None = None) -> int:
        result = self._call(
            "count", self.client.count, index=self.pattern,
            body={"query": self._query(query or AuditQuery(kind=DocKind.EVENT))},
            params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        return int(result["count"])

    # -- erasure ------------------------------------------------------------------------------

    def erase_user(self, user_id: str) -> int:
        key = erasure_key(user_id)
        # The record first: a concurrent auditor that indexes this user's documents after this
        # point sees it (and anonymises them itself); one that indexed before is covered by the
        # refresh + update below.
        try:
            self.client.index(index=self.erasures, id=key,
                              body={"erased_at": iso(datetime.now(UTC))},
                              params={"op_type": "create"})
        except TransportError as exc:
            if exc.status_code != 409:  # already erased earlier: keep the first time
                raise _translate("recording an erasure", exc) from exc
        except OSConnectionError as exc:
            raise _translate("recording an erasure", exc) from exc
        self._call("refresh", self.client.indices.refresh, index=self.pattern,
                   params={"ignore_unavailable": "true", "allow_no_indices": "true"})
        changed = 0
        for _ in range(10):
            result = self._call(
                "anonymising a user's documents", self.client.update_by_query,
                index=self.pattern,
                body={"query": {"term": {"user_id": user_id}},
                      "script": {"id": self.anonymise_script,
                                 "params": {"away": sorted(ANONYMISED_AWAY)}}},
                params={"conflicts": "proceed", "refresh": "true",
                        "ignore_unavailable": "true", "allow_no_indices": "true"})
            changed += int(result.get("updated", 0))
            if not result.get("version_conflicts") and not result.get("failures"):
                return changed
        # Documents kept changing under us (a writer of the same user): the caller retries the
        # whole batch, and erasure is idempotent.
        raise AuditIndexUnavailable(f"erasing user documents did not settle ({changed} done)")

    def erased_users(self, user_ids: Iterable[str]) -> set[str]:
        by_key = {erasure_key(user): user for user in set(user_ids)}
        if not by_key:
            return set()
        result = self._call("reading erasures", self.client.mget, index=self.erasures,
                            body={"ids": sorted(by_key)}, params={"_source": "false"})
        return {by_key[doc["_id"]] for doc in result["docs"] if doc.get("found")}

    # -- housekeeping -------------------------------------------------------------------------

    def apply_retention(self, now: datetime) -> list[str]:
        cutoff = now - timedelta(days=self.retention_days)
        head = f"{self.alias}-"
        old: list[str] = []
        for name in self._indices():
            bucket = name[len(head):] if name.startswith(head) else UNDATED
            end = bucket_end(bucket)
            if end is not None and end <= cutoff:
                old.append(bucket)
        for bucket in old:
            try:
                self.client.indices.delete(index=self.index_name(bucket))
            except NotFoundError:
                continue  # deleted concurrently by another auditor
            except (TransportError, OSConnectionError) as exc:
                raise _translate("deleting an old index", exc) from exc
            log.info("audit retention: deleted %s", self.index_name(bucket))
        return old

    def refresh(self) -> None:
        self._call("refresh", self.client.indices.refresh, index=f"{self.pattern},{self.erasures}",
                   params={"ignore_unavailable": "true", "allow_no_indices": "true"})

    def drop_everything(self) -> None:
        """Delete the indices, template and scripts of this prefix (tests, a fresh start)."""
        client = self.client
        for name in self._indices():
            client.indices.delete(index=name, params={"ignore_unavailable": "true"})
        client.indices.delete(index=self.erasures, params={"ignore_unavailable": "true"})
        with contextlib.suppress(NotFoundError):
            client.indices.delete_index_template(name=self.alias)
        for script in (self.merge_script, self.anonymise_script):
            with contextlib.suppress(NotFoundError):
                client.delete_script(id=script)

    def close(self) -> None:
        if self._own_client:
            self.client.close()
