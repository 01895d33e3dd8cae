"""``/dashboard``: the page (public: it holds no data) and its operator-only feeds.

The page asks for the operator token once, keeps it in the tab's ``sessionStorage`` and sends
it as ``Authorization: Bearer`` on every fetch, the SSE stream included (read with ``fetch``
rather than ``EventSource``, which cannot send headers): the token never lands in a URL, a
proxy log or the browser history.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import SecretStr

from polystream.api.audit.router import _operator_check
from polystream.api.errors import ErrorBody
from polystream.api.packaged_files import packaged_file
from polystream.api.refusals import Busy, Invalid, Missing
from polystream.audit.ports import AuditIndexError
from polystream.observe.history import Recorder
from polystream.observe.observatory import Observatory

_STATIC = resources.files("polystream.api.dashboard") / "static"
_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_NO_STORE = {"Cache-Control": "no-store"}
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong operator token."},
    403: {"model": ErrorBody, "description": "No operator token is configured."},
}


def _page() -> str:
    return (_STATIC / "index.html").read_text(encoding="utf-8")


def sse(event: str, data: str) -> bytes:
    """One server-sent event; ``data`` is JSON, so it holds no newline."""
    return f"event: {event}\ndata: {data}\n\n".encode()


def make_router(observatory: Observatory, operator_token: SecretStr | None = None, *,
                guard: Any = None, interval_s: float = 1.0) -> APIRouter:
    """The dashboard on ``observatory``; its data for holders of ``operator_token``, or behind
    ``guard`` (the application's operator check, which also admits operator accounts)."""
    recorder = Recorder(observatory.snapshot, interval_s=interval_s)
    operator = [guard if guard is not None else Depends(
        _operator_check(operator_token or SecretStr("")))]
    router = APIRouter(prefix="/dashboard", tags=["dashboard"])

    @router.get("", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page(), headers=_NO_STORE)

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return packaged_file(_STATIC, _TYPES, name, what="dashboard", cache_control="no-cache")

    @router.get(
        "/stream", dependencies=operator, responses=_ERRORS,
        summary="Live platform snapshots (server-sent events)",
        description="`history` first (the frames of the last minutes), then one `frame` per "
        "interval: produced/consumed rates, lag per group and partition, dead letters, "
        "store health and sizes, rankings, active streams. `frames` ends the stream after "
        "that many frames (tests, scripts).",
    )
    async def stream(request: Request,
                     frames: Annotated[int | None, Query(ge=1, le=100_000)] = None,
                     ) -> StreamingResponse:
        async def feed() -> AsyncIterator[bytes]:
            first = await run_in_threadpool(recorder.latest)
            history = [{"t": f.snapshot.taken_at, "produced": f.produced_rate,
                        "consumed": f.consumed_rate} for f in list(recorder.frames)]
            yield sse("history", json.dumps(history))
            sent, last = 0, first
            frame = first
            while True:
                yield sse("frame", frame.model_dump_json())
                sent += 1
                last = frame
                if frames is not None and sent >= frames:
                    return
                while frame is last:
                    await asyncio.sleep(recorder.interval_s / 2)
                    if await request.is_disconnected():
                        return
                    frame = await run_in_threadpool(recorder.latest)

        return StreamingResponse(feed(), media_type="text/event-stream",
                                 headers={**_NO_STORE, "X-Accel-Buffering": "no"})

    @router.get("/lineage/{event_id}", dependencies=operator, summary="An event across the "
                "stores", responses={**_ERRORS, 404: {"model": ErrorBody,
                                                      "description": "Not in the audit trail."}})
    async def lineage(event_id: str) -> JSONResponse:
        if not 1 <= len(event_id) <= 64:
            raise Invalid("event_id must be 1 to 64 characters")
        try:
            view = await run_in_threadpool(observatory.lineage, event_id)
        except AuditIndexError as exc:
            raise Busy(f"the audit index is unavailable: {exc}", retry_after_s=5) from None
        if view is None:
            raise Missing("no audit document for this event id")
        return JSONResponse(view.model_dump(mode="json"), headers=_NO_STORE)

    @router.get("/search", dependencies=operator, responses=_ERRORS,
                summary="Free-text search over the audit trail (newest first)")
    async def search(q: Annotated[str, Query(min_length=1, max_length=200)],
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JSONResponse:
        try:
            found = await run_in_threadpool(observatory.search, q, limit)
        except AuditIndexError as exc:
            raise Busy(f"the audit index is unavailable: {exc}", retry_after_s=5) from None
        return JSONResponse([r.model_dump(mode="json") for r in found], headers=_NO_STORE)

    @router.get("/posters/{asset_id}", dependencies=operator, response_class=Response,
                responses={**_ERRORS,
                           200: {"description": "The image as uploaded.",
                                 "content": {"image/png": {}, "image/jpeg": {},
                                             "image/webp": {}}},
                           404: {"model": ErrorBody, "description": "No such asset."}},
                summary="A poster from the catalogue (GridFS)")
    async def poster(asset_id: str) -> Response:
        if not 1 <= len(asset_id) <= 128:
            raise Invalid("asset_id must be 1 to 128 characters")
        found = await run_in_threadpool(observatory.poster, asset_id)
        if found is None:
            raise Missing("no such asset")
        content_type, data = found
        return Response(data, media_type=content_type,
                        headers={"Cache-Control": "private, max-age=3600"})

    return router
