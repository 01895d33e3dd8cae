"""What every ASGI middleware of the API shares: other traffic (lifespan) passes untouched,
and a `send` wrapper tells whether, and with which status, the response started."""

from __future__ import annotations

from abc import ABC, abstractmethod

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polystream.observe.metrics import NOT_ROUTED


class HttpMiddleware(ABC):
    """Runs `handle` for each HTTP request; lifespan messages go straight to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class WatchedSend:
    """`send`, noting the response's start. Until it starts ``status`` is 500: a request
    that raises before answering is counted as the server error it becomes."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
        await self._send(message)


def route_template(scope: Scope) -> str:
    """The matched route's template (``/users/{user_id}``), known only once routed; never the
    raw path, which is client-controlled and may carry personal or card data."""
    return getattr(scope.get("route"), "path", None) or NOT_ROUTED
