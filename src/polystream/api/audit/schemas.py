"""Response bodies of the audit endpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field

from polystream.audit.documents import AuditRecord


class AuditEventsPage(BaseModel):
    items: list[AuditRecord]
    total: int = Field(description="Documents matching the filters (all pages).")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; absent on the last page.")
