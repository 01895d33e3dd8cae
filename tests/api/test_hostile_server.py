"""Regression tests for the server-level holes of issue 12: ambiguous framing, the operator
check before the body, size limits while streaming, deadlines for slow clients, and the
bounded password-hashing pool."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send
from typer.testing import CliRunner

from polystream.api import ApiDeps, create_app
from polystream.api.deps import ApiRuntime, HashingBusy
from polystream.api.guard import RequestDeadline
from polystream.api.operator_gate import needs_operator
from polystream.bus.memory import InMemoryEventPublisher
from polystream.cli import api as api_cli
from polystream.domain.examples import TITLE_ID
from polystream.receipts import InMemoryReceiptLog

from .cases import REGISTER
from .conftest import FAST_HASHER, OPERATOR, Harness, make_settings, new_broker


def app_with(**api: Any) -> Any:
    return create_app(ApiDeps(
        settings=make_settings(**api),
        publisher=InMemoryEventPublisher(new_broker()),
        receipts=InMemoryReceiptLog(),
        password_hasher=FAST_HASHER,
    ))


def scope_for(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


class Recorder:
    """An ASGI client side: counts what the server read, keeps what it answered."""

    def __init__(self, chunks: int, chunk: bytes, delay_s: float = 0.0) -> None:
        self.left = chunks
        self.chunk = chunk
        self.delay_s = delay_s
        self.read = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> Message:
        if self.left == 0:
            await asyncio.sleep(3600)  # the client never sends the rest
        await asyncio.sleep(self.delay_s)
        self.left -= 1
        self.read += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": True}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            self.body += message.get("body", b"")


def run(app: Any, scope: Scope, client: Recorder, timeout_s: float = 5.0) -> None:
    async def main() -> None:
        await asyncio.wait_for(app(scope, client.receive, client.send), timeout_s)

    asyncio.run(main())


# --- framing -----------------------------------------------------------------------------


def test_content_length_and_transfer_encoding_together_are_a_400(harness: Harness) -> None:
    response = harness.client.post(
        "/users", content=b'{"email": "a@b.io"}',
        headers={"content-type": "application/json", "transfer-encoding": "chunked"},
    )
    assert response.status_code == 400
    assert "Transfer-Encoding" in response.json()["detail"]
    assert harness.total_records() == 0


def test_two_content_lengths_are_a_400(harness: Harness) -> None:
    app = harness.client.app
    client = Recorder(1, b"{}")
    run(app, scope_for("POST", "/users", [(b"content-length", b"2"),
                                          (b"content-length", b"2")]), client)
    assert client.status == 400


@pytest.mark.parametrize("value", ["-1", "1e3", "\u0661\u0662", "9" * 40])
def test_a_malformed_content_length_is_a_400(value: str) -> None:
    client = Recorder(1, b"{}")
    run(app_with(), scope_for("POST", "/users", [(b"content-length", value.encode())]), client)
    assert client.status == 400


# --- the operator check comes before the body ------------------------------------------


@pytest.mark.parametrize("path", [f"/catalog/titles/{TITLE_ID}", "/flags/x", "/audit/events"])
def test_anonymous_operator_requests_are_refused_before_reading_the_body(path: str) -> None:
    client = Recorder(16, b"x" * 65536)  # a 1 MiB body, never declared
    run(app_with(), scope_for("PUT", path, [(b"content-type", b"application/json")]), client)
    assert client.status == 401
    assert client.read == 0
    assert "www-authenticate" in client.headers


def test_a_wrong_operator_token_is_refused_before_reading_the_body() -> None:
    client = Recorder(16, b"x" * 65536)
    headers = [(b"authorization", b"Bearer nope"), (b"content-type", b"application/json")]
    run(app_with(), scope_for("PUT", f"/catalog/titles/{TITLE_ID}", headers), client)
    assert client.status == 401 and client.read == 0


def test_no_configured_token_refuses_operators_before_the_body() -> None:
    client = Recorder(16, b"x" * 65536)
    headers = [(b"authorization", OPERATOR["Authorization"].encode())]
    run(app_with(operator_token=SecretStr("")),
        scope_for("PUT", f"/catalog/titles/{TITLE_ID}", headers), client)
    assert client.status == 401 and client.read == 0


def test_a_user_session_is_refused_before_the_body_and_an_operator_session_is_not() -> None:
    from polystream.api.login.store import InMemorySessionStore, LoginSession
    from polystream.api.login.tokens import token_digest

    sessions = InMemorySessionStore()
    sessions.create(token_digest("user-token"), LoginSession("s1", "u1", "user", 0.0), 60)
    sessions.create(token_digest("op-token"), LoginSession("s2", "u2", "operator", 0.0), 60)
    app = create_app(ApiDeps(settings=make_settings(operator_token=SecretStr(""),
                                                    body_timeout_s=0.5),
                             publisher=InMemoryEventPublisher(new_broker()),
                             receipts=InMemoryReceiptLog(), password_hasher=FAST_HASHER,
                             sessions=sessions))
    user = Recorder(16, b"x" * 65536)
    run(app, scope_for("PUT", f"/catalog/titles/{TITLE_ID}",
                       [(b"authorization", b"Bearer user-token")]), user)
    assert user.status == 403 and user.read == 0
    operator = Recorder(16, b"x" * 65536)
    run(app, scope_for("PUT", f"/catalog/titles/{TITLE_ID}",
                       [(b"authorization", b"Bearer op-token")]), operator)
    # Past the gate: its body is read (this client never finishes it: 408).
    assert operator.read > 0 and operator.status == 408


def test_user_paths_are_not_operator_paths(harness: Harness) -> None:
    assert REGISTER.send(harness.client).status_code == 202


def test_which_requests_the_gate_checks() -> None:
    assert needs_operator("PUT", f"/catalog/titles/{TITLE_ID}")
    assert needs_operator("DELETE", "/catalog/relations")
    assert needs_operator("POST", "/flags/x")
    assert needs_operator("GET", "/audit/events")
    # Catalogue reads may be public (a read API); they carry no body worth refusing early.
    assert not needs_operator("GET", f"/catalog/titles/{TITLE_ID}")
    assert not needs_operator("POST", "/catalogue")
    assert not needs_operator("POST", "/users")


# --- size and time limits while streaming ----------------------------------------------


def test_an_undeclared_body_is_cut_off_at_the_limit_while_streaming() -> None:
    client = Recorder(1000, b"x" * 8192)  # 8 MB if read to the end
    run(app_with(), scope_for("POST", "/users", [(b"content-type", b"application/json")]),
        client)
    assert client.status == 413
    assert client.read <= 64 * 1024 + 8192


def test_a_trickling_body_is_timed_out_with_408() -> None:
    client = Recorder(1000, b" ", delay_s=0.05)
    started = time.monotonic()
    run(app_with(body_timeout_s=0.3),
        scope_for("POST", "/users", [(b"content-type", b"application/json")]), client)
    assert client.status == 408
    assert time.monotonic() - started < 2.0


def test_a_body_that_never_ends_is_timed_out_with_408() -> None:
    client = Recorder(1, b"{")
    run(app_with(body_timeout_s=0.2),
        scope_for("POST", "/users", [(b"content-type", b"application/json")]), client)
    assert client.status == 408


def test_a_request_past_its_deadline_answers_504() -> None:
    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(10)

    client = Recorder(0, b"")
    run(RequestDeadline(slow_app, timeout_s=0.2), scope_for("GET", "/x", []), client)
    assert client.status == 504
    assert client.headers.get("retry-after") == "1"


def test_serve_times_out_idle_keep_alive_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))  # api_cli calls it
    monkeypatch.setenv("POLYSTREAM_API__KEEP_ALIVE_TIMEOUT_S", "7")
    result = CliRunner().invoke(api_cli.app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen["timeout_keep_alive"] == 7


# --- password hashing is bounded ---------------------------------------------------------


class SlowHasher(PasswordHasher):
    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        time.sleep(0.3)
        return FAST_HASHER.hash(password)


def test_the_hashing_queue_is_bounded() -> None:
    runtime = ApiRuntime(ApiDeps(
        settings=make_settings(hash_queue_max=1),
        publisher=InMemoryEventPublisher(new_broker()),
        receipts=InMemoryReceiptLog(),
        password_hasher=SlowHasher(time_cost=1, memory_cost=1024, parallelism=1),
        hash_threads=1,
    ))

    async def main() -> list[object]:
        return await asyncio.gather(
            *(runtime.hash_password(f"password-{n}") for n in range(5)), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        runtime.close()
    busy = [r for r in results if isinstance(r, HashingBusy)]
    hashed = [r for r in results if isinstance(r, str)]
    assert len(hashed) == 2 and len(busy) == 3


def test_a_full_hashing_queue_answers_503_with_retry_after() -> None:
    app = create_app(ApiDeps(
        settings=make_settings(hash_queue_max=0),
        publisher=InMemoryEventPublisher(new_broker()),
        receipts=InMemoryReceiptLog(),
        password_hasher=SlowHasher(time_cost=1, memory_cost=1024, parallelism=1),
        hash_threads=1,
    ))

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await asyncio.gather(*(
                client.post("/users", json=REGISTER.with_json(
                    email=f"u{n}@example.com").json) for n in range(4)
            ))

    responses = asyncio.run(main())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 503, 503, 503]
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert set(refused.json()) == {"detail", "errors"}
