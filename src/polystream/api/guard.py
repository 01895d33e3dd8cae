"""ASGI middleware that runs before any routing or parsing: request framing, the operator
check, body size limits and deadlines, the card-data refusal, and an access log that cannot
leak.

Order matters against hostile clients: everything that can be decided from the headers alone
(ambiguous framing, the operator token, a declared size over the limit) is decided before a
single body byte is read; the body is then read against both a size limit (counted as it
streams, whatever Content-Length said) and a deadline (a client trickling bytes is cut off);
large bodies are scanned for card data off the event loop, so that a few of them cannot stall
every other request.

Card data is checked on the raw request (URL and body, parsed as JSON when it is JSON) before
any model sees it, so no validation error, log line or exception can ever carry a card number:
the request is refused as a whole, and only the *locations* of the offending data are returned.
Image uploads are not scanned here (the file is binary, and a run of digits inside an image
means nothing); the upload endpoint checks its text fields itself (`catalog/service.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polystream.api.errors import FieldProblem, error_response, refusal_response
from polystream.api.http_middleware import HttpMiddleware, WatchedSend, route_template
from polystream.api.operator_gate import Resolve, needs_operator, operator_refusal
from polystream.domain.events import contains_card_data, find_card_data
from polystream.domain.events.cards import DIGIT_RUN, normalise_digits
from polystream.observe.metrics import HTTP_SECONDS

log = logging.getLogger("polystream.api.access")

CARD_DATA_DETAIL = "card numbers and CVVs are not accepted; send a payment token"


LimitFor = Callable[[str, str, str], int]

#: Bodies up to this size are scanned on the event loop (a thread hop costs more than the
#: scan); larger ones in a worker thread.
INLINE_SCAN_BYTES = 16 * 1024


def _mask(name: str) -> str:
    # A field *name* can itself be a card number ({"4111.1111.1111.1111": 1}); reported names
    # are masked so that the refusal does not echo what it refuses.
    return DIGIT_RUN.sub("***", normalise_digits(name))


def _parse_float(text: str) -> float | int:
    # JSON floats are not scanned by find_card_data, but 4111111111111111.0 and
    # 4.111111111111111e15 are the same card number: integral floats become ints first.
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - json only hands over valid numbers
        return float(text)
    if value == value.to_integral_value() and 10**12 <= abs(value) < 10**19:
        return int(value)
    return float(text)


class BodyTooDeep(ValueError):
    pass


def is_upload(path: str) -> bool:
    return path.rstrip("/").endswith("/assets")


def card_data_fields(path: str, query_string: bytes, body: bytes, content_type: str) -> list[str]:
    """Request locations (``path``, ``query.<name>``, ``body.<path>``) holding card data.

    Bodies that are not JSON (form posts, multipart sent to a JSON endpoint) are scanned as
    text, except image uploads.
    """
    fields: list[str] = []
    if contains_card_data([segment for segment in path.split("/") if segment]):
        fields.append("path")
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if contains_card_data({name: value}):
            fields.append(f"query.{_mask(name)}")
    if body and not (content_type.startswith("multipart/form-data") and is_upload(path)):
        data: object
        try:
            data = json.loads(body, parse_float=_parse_float)
        except RecursionError:
            raise BodyTooDeep from None
        except ValueError:  # not JSON (or not UTF-8): scan it as text, it is refused anyway
            data = body.decode("utf-8", errors="replace")
        fields.extend(f"body{_mask(found[1:])}" for found in find_card_data(data))
    return fields


class RequestGuard(HttpMiddleware):
    """Refuses ambiguous framing (400), anonymous operator requests (401/403), oversized
    (413) or too slow (408) bodies, and any request carrying card data (422)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_for: LimitFor,
        operator_token: str = "",
        resolve_operator: Resolve | None = None,
        body_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(app)
        self.limit_for = limit_for
        self.operator_token = operator_token
        self.resolve_operator = resolve_operator
        self.body_timeout_s = body_timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        # Two framings at once is how requests are smuggled past a proxy that reads the
        # other one (RFC 9112 section 6.3): refused rather than guessed.
        if "transfer-encoding" in headers and "content-length" in headers:
            await _refuse(400, "a request must not carry both Content-Length and "
                          "Transfer-Encoding", scope, receive, send, field="header")
            return
        if len(headers.getlist("content-length")) > 1:
            await _refuse(400, "more than one Content-Length header", scope, receive, send,
                          field="header.content-length")
            return
        if needs_operator(scope["method"], scope["path"]):
            try:
                refusal = await operator_refusal(self.operator_token,
                                                 headers.get("authorization"),
                                                 self.resolve_operator)
            except Exception:  # the session store did not answer
                response = error_response(503, "the session store is unavailable; retry later",
                                          headers={"Retry-After": "1", "Connection": "close"})
                await response(scope, receive, send)
                return
            if refusal is not None:
                response = refusal_response(refusal)
                response.headers["Connection"] = "close"
                await response(scope, receive, send)
                return
        content_type = headers.get("content-type", "").lower()
        limit = self.limit_for(scope["method"], scope["path"], content_type)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit() or not declared.isascii() or len(declared) > 19:
                await _refuse(400, "invalid Content-Length header", scope, receive, send,
                              field="header.content-length")
                return
            if int(declared) > limit:
                await self._too_large(limit, scope, receive, send)
                return
        try:
            body = await asyncio.wait_for(self._read_body(receive, limit), self.body_timeout_s)
        except TimeoutError:
            await _refuse(408, f"the request body did not arrive within "
                          f"{self.body_timeout_s:g}s", scope, receive, send,
                          headers={"Connection": "close"})
            return
        if body is None:  # the client went away
            return
        if isinstance(body, int):
            await self._too_large(limit, scope, receive, send)
            return
        try:
            if len(body) > INLINE_SCAN_BYTES:
                fields = await asyncio.to_thread(
                    card_data_fields, scope["path"], scope.get("query_string", b""), body,
                    content_type,
                )
            else:
                fields = card_data_fields(
                    scope["path"], scope.get("query_string", b""), body, content_type
                )
        except BodyTooDeep:
            await error_response(400, "the request body nests too deeply")(scope, receive, send)
            return
        if fields:
            problems = [
                FieldProblem(field=field, message="looks like card data", type="card_data")
                for field in fields
            ]
            await error_response(422, CARD_DATA_DETAIL, problems)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> bytes | int | None:
        """The body; its size so far (an int) once it passes ``limit``, whatever
        Content-Length said; None if the client disconnected."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > limit:
                return len(body)
            if not message.get("more_body", False):
                return bytes(body)

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"the request body is larger than {limit} bytes",
            [FieldProblem(field="body", message=f"at most {limit} bytes", type="too_large")],
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


async def _refuse(
    status: int,
    detail: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    problems = [] if field is None else [FieldProblem(field=field, message=detail,
                                                      type="bad_framing")]
    await error_response(status, detail, problems, headers=headers)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # Later calls are the app listening for a disconnect.
        return await receive()

    return replay


class RequestDeadline(HttpMiddleware):
    """Bounds the time a request may hold a worker: past ``timeout_s`` it is cancelled and,
    if nothing was sent yet, answered 504 (a response already started is cut short)."""

    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        super().__init__(app)
        self.timeout_s = timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        watched = WatchedSend(send)
        try:
            await asyncio.wait_for(self.app(scope, receive, watched), self.timeout_s)
        except TimeoutError:
            if watched.started:
                raise
            response = error_response(
                504, f"the request was not answered within {self.timeout_s:g}s; retry later",
                headers={"Retry-After": "1", "Connection": "close"},
            )
            await response(scope, receive, send)


class AccessLog(HttpMiddleware):
    """One line per request with the *route template* (``/users/{user_id}``), never the raw
    path or query: those are client-controlled and may carry personal or card data; and the
    request's latency in the ``polystream_http_request_seconds`` histogram."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            route = route_template(scope)
            elapsed = time.perf_counter() - started
            log.info("%s %s %d %.1fms", scope["method"], route, watched.status, elapsed * 1000)
            # The latency histogram shares this wrapper: one timing per request, not two.
            HTTP_SECONDS.labels(scope["method"], route, str(watched.status)).observe(elapsed)
