"""The audit trail (S3): every event, receipt and dead letter, searchable, with lineage.

`AuditIndex` is the port; `OpenSearchAuditIndex`, `JsonlAuditIndex` and `InMemoryAuditIndex`
implement it; `AuditWorker` feeds it from Kafka. See docs/audit.md.
Adapters with drivers are imported lazily by `bootstrap.open_audit_index`, so importing this
package connects to nothing and needs no server library.
"""

from __future__ import annotations

from polystream.audit.documents import AuditRecord, DeadLetterInfo, DocKind, LineageEntry
from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.ports import (
    AuditIndex,
    AuditIndexError,
    AuditIndexUnavailable,
    AuditPage,
    AuditQuery,
    IndexFailure,
    InvalidCursor,
)
from polystream.audit.worker import (
    AuditConfig,
    AuditWorker,
    audit_secret,
)

__all__ = [
    "AuditConfig",
    "AuditIndex",
    "AuditIndexError",
    "AuditIndexUnavailable",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditWorker",
    "DeadLetterInfo",
    "DocKind",
    "InMemoryAuditIndex",
    "IndexFailure",
    "InvalidCursor",
    "LineageEntry",
    "audit_secret",
]
