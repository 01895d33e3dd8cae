"""6. Audit: ``OpenSearchAuditIndex.index_batch`` against ``opensearchpy.helpers.bulk``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from opensearchpy import helpers

from bench import data
from bench.core import Sample, Stopwatch, Variant, batches
from polystream.audit.documents import PRESERVED, EventDoc, event_document, iso
from polystream.audit.opensearch import OpenSearchAuditIndex
from polystream.settings import Settings

BATCH: Final = 1_000  # the auditor's default batch (AuditConfig.batch_size)
SECRET: Final = b"polystream-bench-secret"


class AuditBench:
    name = "audit"
    title = "Audit index on OpenSearch"
    unit = "docs/s"

    def __init__(self, settings: Settings, run_id: str, quick: bool) -> None:
        self.settings = settings
        self.prefix = f"bench-audit-{run_id}"
        self.count = 2_000 if quick else 20_000
        self.docs: list[EventDoc] = []
        self.open: list[OpenSearchAuditIndex] = []

    def describe(self) -> str:
        return (
            "Event documents of the default simulator mix (built beforehand with "
            "audit.documents.event_document: pseudonymised payload, extracted ids, free text, "
            "the auditor's own lineage entry) indexed by OpenSearchAuditIndex.index_batch in "
            f"batches of {BATCH}, the auditor's batch size (one _bulk of create actions; the "
            "scripted merge only for documents that exist, none here). Baseline: "
            f"opensearchpy.helpers.bulk of plain index actions with the same _id and _source, "
            f"chunk_size {BATCH}. Both into a fresh index with the audit mapping (1 shard, "
            "0 replicas, refresh 1 s), created before the clock; every document counted after "
            "a refresh. Own index prefix per repetition, deleted afterwards."
        )

    def size(self) -> dict[str, Any]:
        return {"docs_per_rep": self.count, "batch": BATCH}

    def setup(self) -> None:
        now = datetime.now(UTC)
        envelopes = data.decoded(data.stream(self.count))
        self.docs = [event_document(env, None, secret=SECRET, now=now) for env in envelopes]

    def variants(self) -> list[Variant]:
        return [
            Variant("ours", "ours", self._ours, f"OpenSearchAuditIndex.index_batch, {BATCH}/batch"),
            Variant(
                "baseline",
                "baseline",
                self._baseline,
                f"helpers.bulk of index actions, chunk {BATCH}",
            ),
        ]

    def _index(self, label: str) -> OpenSearchAuditIndex:
        settings = self.settings.opensearch.model_copy(
            update={"index_prefix": f"{self.prefix}-{label}"}
        )
        index = OpenSearchAuditIndex(settings)
        self.open.append(index)
        index.ensure()
        for bucket in sorted({doc.bucket for doc in self.docs}):
            index.client.indices.create(index=index.index_name(bucket))
        return index

    def _close(self, index: OpenSearchAuditIndex) -> None:
        try:
            index.drop_everything()
        finally:
            index.close()
            self.open.remove(index)

    def _ours(self, rep: int) -> Sample:
        index = self._index(f"{rep}-ours")
        try:
            failed = 0
            with Stopwatch() as watch:
                for batch in batches(self.docs, BATCH):
                    failed += len(index.index_batch(batch))
            index.refresh()
            counted = index.count()
        finally:
            self._close(index)
        return Sample.of(
            len(self.docs), watch, _problems(counted, len(self.docs), failed), failed=failed
        )

    def _baseline(self, rep: int) -> Sample:
        index = self._index(f"{rep}-base")
        try:
            now = iso(datetime.now(UTC))
            actions = [
                {
                    "_op_type": "index",
                    "_index": index.index_name(doc.bucket),
                    "_id": doc.doc_id,
                    "_source": _source(doc, now),
                }
                for doc in self.docs
            ]
            with Stopwatch() as watch:
                ok, errors = helpers.bulk(
                    index.client, actions, chunk_size=BATCH, raise_on_error=False
                )
            index.refresh()
            counted = int(index.client.count(index=index.alias)["count"])
        finally:
            self._close(index)
        failed = len(errors) if isinstance(errors, list) else int(errors)
        return Sample.of(
            len(self.docs),
            watch,
            _problems(counted, len(self.docs), failed),
            indexed=ok,
            failed=failed,
        )

    def teardown(self) -> None:
        for index in list(self.open):
            self._close(index)
        self.docs = []


def _source(doc: EventDoc, now: str) -> dict[str, Any]:
    """Exactly the document ``index_batch`` creates for a new event."""
    source = {name: value for name, value in doc.fields.items() if name not in PRESERVED}
    source["indexed_at"] = now
    if doc.lineage:
        source["lineage"] = {sink: dict(entry) for sink, entry in doc.lineage.items()}
    return source


def _problems(counted: int, expected: int, failed: int) -> list[str]:
    problems = [f"{failed} documents failed"] if failed else []
    if counted != expected:
        problems.append(f"{counted} documents searchable of {expected}")
    return problems
