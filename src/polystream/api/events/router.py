"""/events/{event_id}: an event's status per store."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from polystream.api.deps import Runtime
from polystream.api.errors import ApiError, ErrorBody, FieldProblem
from polystream.api.events.schemas import EventStatus
from polystream.api.events.service import ReceiptsUnavailable, read_status
from polystream.domain.events import EVENT_TYPES

router = APIRouter(tags=["events"])


@router.get(
    "/events/{event_id}",
    response_model=EventStatus,
    responses={503: {"model": ErrorBody, "description": "The receipt store is unavailable."}},
    summary="An event's status in each store",
    description="Each store that processes the event type (the audit trail aside) with its "
    "receipt (stored, duplicate, stale, rejected with a reason, dead-lettered) or `pending`. "
    "The type is learnt from the first receipt; before any receipt exists only the `type` "
    "hint (included in every command's `status_url`) says which stores to expect, and without "
    "it the answer is 200 with status `unknown`. Receipts are kept for 24 hours.",
)
async def event_status(
    event_id: UUID,
    runtime: Runtime,
    type: Annotated[
        str | None,
        Query(max_length=64, description="The event's type, e.g. user.registered."),
    ] = None,
) -> JSONResponse:
    if type is not None and type not in EVENT_TYPES:
        raise ApiError(422, "unknown event type", [
            FieldProblem(field="query.type", message="not a known event type",
                         type="unknown_event_type")
        ])
    try:
        status = await read_status(runtime.deps.receipts, event_id, type)
    except ReceiptsUnavailable:
        raise ApiError(503, "the receipt store is unavailable; retry later",
                       headers={"Retry-After": "1"}) from None
    return JSONResponse(status.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
