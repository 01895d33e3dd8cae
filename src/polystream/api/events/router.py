"""/events/{event_id}: an event's status per store."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from polystream.api.auth import MaybePrincipal, Principal
from polystream.api.commands import owner_digest
from polystream.api.deps import ApiRuntime, Runtime
from polystream.api.errors import ErrorBody, FieldProblem
from polystream.api.events.schemas import EventStatus
from polystream.api.events.service import ReceiptsUnavailable, read_status
from polystream.api.ownership import not_found
from polystream.api.refusals import Busy, Invalid, Unauthenticated
from polystream.domain.events import EVENT_TYPES

router = APIRouter(tags=["events"])


@router.get(
    "/events/{event_id}",
    response_model=EventStatus,
    responses={
        401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
        404: {"model": ErrorBody, "description": "Not an event the caller sent (unknown, "
              "expired, or another user's): the same answer for all three."},
        422: {"model": ErrorBody, "description": "Not a UUID, or an unknown `type`."},
        503: {"model": ErrorBody, "description": "The receipt store is unavailable."},
    },
    summary="An event's status in each store",
    description="Each store that processes the event type (the audit trail aside) with its "
    "receipt (stored, duplicate, stale, rejected with a reason, dead-lettered) or `pending`. "
    "The type is learnt from the first receipt; before any receipt exists only the `type` "
    "hint (included in every command's `status_url`) says which stores to expect, and without "
    "it the answer is 200 with status `unknown`. Receipts are kept for 24 hours.\n\n"
    "Only the user who sent the command reads it (anybody else gets 404, as for an unknown "
    "id); operators (an operator account or the operator token) read any event.",
)
async def event_status(
    event_id: UUID,
    runtime: Runtime,
    principal: MaybePrincipal,
    type: Annotated[
        str | None,
        Query(max_length=64, description="The event's type, e.g. user.registered."),
    ] = None,
) -> JSONResponse:
    if type is not None and type not in EVENT_TYPES:
        raise Invalid("unknown event type", [
            FieldProblem(field="query.type", message="not a known event type",
                         type="unknown_event_type")
        ])
    await _check_owner(runtime, principal, event_id)
    try:
        status = await read_status(runtime.deps.receipts, event_id, type)
    except ReceiptsUnavailable:
        raise Busy("the receipt store is unavailable; retry later", retry_after_s=1) from None
    return JSONResponse(status.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


async def _check_owner(runtime: ApiRuntime, principal: Principal | None, event_id: UUID) -> None:
    if principal is None:
        raise Unauthenticated("login required: send 'Authorization: Bearer <access_token>' "
                           "from POST /auth/login")
    if principal.operator:
        return
    try:
        owner = await runtime.lookup(runtime.deps.receipts.owner_of, event_id)
    except Exception:
        raise Busy("the receipt store is unavailable; retry later", retry_after_s=1) from None
    if owner is None or principal.user_id is None or owner != owner_digest(principal.user_id):
        raise not_found()
