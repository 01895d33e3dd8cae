"""One OpenTelemetry span per HTTP request, named by route template (``POST /users``), when
spans are exported (`observe.tracing`); the app does not install it otherwise."""

from __future__ import annotations

from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polystream.observe.metrics import NOT_ROUTED
from polystream.observe.tracing import TRACEPARENT, request_span

_TRACEPARENT = TRACEPARENT.encode()


class RequestSpans:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == _TRACEPARENT), None)
        method = scope["method"]
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with request_span(method, header.decode("latin-1") if header else None) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                if span is not None:
                    # Known only once routed; raw paths are client-controlled, never recorded.
                    route = getattr(scope.get("route"), "path", None) or NOT_ROUTED
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.route": route,
                                         "http.response.status_code": status})
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
