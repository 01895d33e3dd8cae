"""``/audit/events``: the audit trail for operators (filter, page, one event's lineage).

Operators only: ``Authorization: Bearer <operator token>``, compared in constant time; with no
token configured nobody gets in. Documents are already redacted and pseudonymised when they are
indexed, so what is served here holds no secret and no personal field in clear. Responses are
``Cache-Control: no-store``: an audit answer must not linger in a proxy.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from polystream.api.audit.schemas import AuditEventsPage
from polystream.api.errors import ErrorBody, FieldProblem
from polystream.api.fields import Instant, SearchText
from polystream.api.refusals import (
    Busy,
    Forbidden,
    Invalid,
    Missing,
    Unauthenticated,
    UpstreamRefused,
)
from polystream.audit.documents import AuditRecord, DocKind
from polystream.audit.ports import (
    MAX_PAGE_SIZE,
    AuditIndex,
    AuditIndexError,
    AuditIndexUnavailable,
    InvalidCursor,
)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="operator",
    description="The operator token (`POLYSTREAM_API__OPERATOR_TOKEN`).",
)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
    403: {"model": ErrorBody, "description": "Not an operator."},
    503: {"model": ErrorBody, "description": "The audit index is unavailable."},
}


def _digest(token: str) -> bytes:
    # compare_digest leaks the length of its inputs through timing; equal-length digests
    # leave nothing to learn about the configured token.
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).digest()


def _operator_check(
    operator_token: SecretStr,
) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    expected = operator_token.get_secret_value()
    expected_digest = _digest(expected) if expected else b""

    def require_operator(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not expected:
            raise Forbidden("operator endpoints are disabled: no operator token is "
                           "configured (set POLYSTREAM_API__OPERATOR_TOKEN)")
        if credentials is None:
            raise Unauthenticated("operator token required: send 'Authorization: Bearer "
                                  "<operator token>'", realm="polystream-operator")
        if not hmac.compare_digest(_digest(credentials.credentials), expected_digest):
            raise Unauthenticated("invalid operator token", "invalid_token",
                                  realm="polystream-operator")

    return require_operator


def _unavailable() -> Busy:
    return Busy("the audit index is unavailable; retry later", retry_after_s=5)


def make_router(
    index: AuditIndex, operator_token: SecretStr | None = None, *, guard: Any = None
) -> APIRouter:
    """The audit endpoints on ``index``, for holders of ``operator_token`` only, or guarded
    by ``guard`` (a FastAPI dependency: the application passes its operator check, which
    also admits operator accounts)."""
    check = guard if guard is not None else Depends(
        _operator_check(operator_token or SecretStr("")))
    router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[check],
                       responses=_ERRORS)

    @router.get(
        "/events",
        response_model=AuditEventsPage,
        summary="Search the audit trail",
        description="Events and dead letters, newest first, filtered by user, type, time range "
        "(`since` inclusive, `until` exclusive, on the event's time) and free text (every word "
        "must appear). Paginated with an opaque `cursor`: pass back `next_cursor`.",
    )
    async def list_events(
        user: Annotated[str | None, Query(max_length=64, description="A user id.")] = None,
        type: Annotated[str | None, Query(max_length=64, description="e.g. rating.submitted")]
        = None,
        since: Annotated[Instant | None, Query(description="ISO 8601 with offset")]
        = None,
        until: Annotated[Instant | None, Query(description="ISO 8601 with offset")]
        = None,
        text: Annotated[SearchText | None, Query(max_length=200, description="Free text")] = None,
        kind: Annotated[DocKind | None, Query(description="Only events or dead letters")]
        = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> JSONResponse:
        if since is not None and until is not None and since >= until:
            raise Invalid("the time range is empty", [FieldProblem(
                field="query.until", message="must be after since", type="range")])
        try:
            page = await run_in_threadpool(
                index.search, user_id=user, type=type, since=since, until=until, text=text,
                kind=kind, size=limit, cursor=cursor)
        except InvalidCursor:
            raise Invalid("invalid cursor", [FieldProblem(
                field="query.cursor", message="not a cursor from this API",
                type="cursor")]) from None
        except AuditIndexUnavailable:
            raise _unavailable() from None
        except AuditIndexError as exc:
            raise UpstreamRefused(f"the audit index refused the query: {exc}") from None
        body = AuditEventsPage(items=page.items, total=page.total, next_cursor=page.next_cursor)
        return JSONResponse(body.model_dump(mode="json", exclude_none=False),
                            headers={"Cache-Control": "no-store"})

    @router.get(
        "/events/{event_id}",
        response_model=AuditRecord,
        responses={404: {"model": ErrorBody, "description": "Not in the audit trail."}},
        summary="One event with its lineage",
        description="The event's audit document: when it happened, each store's receipt "
        "(`lineage`: status, reason, processed_at) and the dead letters that name it. `kind` "
        "is null while only receipts have been indexed (the event is on its way).",
    )
    async def get_event(event_id: UUID) -> JSONResponse:
        try:
            record = await run_in_threadpool(index.get, event_id)
        except AuditIndexUnavailable:
            raise _unavailable() from None
        except AuditIndexError as exc:
            raise UpstreamRefused(f"the audit index refused the query: {exc}") from None
        if record is None:
            raise Missing("no audit document for this event id")
        return JSONResponse(record.model_dump(mode="json"),
                            headers={"Cache-Control": "no-store"})

    return router

