"""One OpenTelemetry span per HTTP request, named by route template (``POST /users``), when
spans are exported (`observe.tracing`); the app does not install it otherwise."""

from __future__ import annotations

from opentelemetry.trace import Status, StatusCode
from starlette.types import Receive, Scope, Send

from polystream.api.http_middleware import HttpMiddleware, WatchedSend, route_template
from polystream.observe.tracing import TRACEPARENT, request_span

_TRACEPARENT = TRACEPARENT.encode()


class RequestSpans(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = next((v for k, v in scope["headers"] if k == _TRACEPARENT), None)
        method = scope["method"]
        watched = WatchedSend(send)
        with request_span(method, header.decode("latin-1") if header else None) as span:
            try:
                await self.app(scope, receive, watched)
            finally:
                if span is not None:
                    # Known only once routed.
                    route = route_template(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.route": route,
                                         "http.response.status_code": watched.status})
                    if watched.status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
