"""Health, readiness, OpenAPI, lifecycle and the `serve` command."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher, Type
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from polystream.api import ApiDeps, create_app
from polystream.api import app as app_module
from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.ports import AuditQuery
from polystream.bus.memory import InMemoryEventPublisher
from polystream.cli import api as api_cli
from polystream.domain.reads import User
from polystream.receipts import InMemoryReceiptLog
from polystream.sinks.memory_accounts import InMemoryAccountStore
from polystream.store_errors import TransientStoreError

from .conftest import FAST_HASHER, Harness, make_harness, make_settings, new_broker


def test_healthz_and_readyz(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok"}
    ready = harness.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready",
                            "checks": {"publisher": "ok", "receipts": "ok", "postgres": "ok"}}


class DownAccounts(InMemoryAccountStore):
    def get_user(self, user_id: str) -> User | None:
        raise TransientStoreError("postgres: connection refused")


class HangingAudit(InMemoryAuditIndex):
    """An index that accepts and never answers (until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.asked = 0

    def count(self, query: AuditQuery | None = None) -> int:
        self.asked += 1
        self.release.wait(30)
        return 0


def test_readyz_reports_postgres_and_the_audit_index_without_making_the_api_unready(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "_READY_TIMEOUT_S", 0.5)
    audit = HangingAudit()
    try:
        for harness in make_harness(accounts=DownAccounts(), audit=audit):
            for _ in range(3):
                started = time.monotonic()
                response = harness.client.get("/readyz")
                took = time.monotonic() - started
                assert response.status_code == 200 and took < 2.0, took
                checks = response.json()["checks"]
                assert checks["publisher"] == "ok" and checks["receipts"] == "ok"
                assert checks["postgres"] == "unavailable (TransientStoreError)"
                assert checks["audit"] == "unavailable (no answer within 0.5s)"
            assert audit.asked == 1  # the hung probe is awaited again, not asked again
            audit.release.set()
            deadline = time.monotonic() + 5
            while harness.client.get("/readyz").json()["checks"]["audit"] != "ok":
                assert time.monotonic() < deadline
    finally:
        audit.release.set()


def test_readyz_is_503_when_the_publisher_is_unusable() -> None:
    def broken() -> None:
        raise RuntimeError("brokers unreachable")

    for harness in make_harness(ready_check=broken):
        response = harness.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["publisher"] == "unusable: brokers unreachable"
        assert harness.client.get("/healthz").status_code == 200


def test_openapi_documents_every_command(harness: Harness) -> None:
    assert harness.client.get("/docs").status_code == 200
    spec = harness.client.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert routes >= {
        ("POST", "/users"), ("PATCH", "/users/{user_id}"),
        ("PUT", "/users/{user_id}/preferences"), ("POST", "/subscriptions"),
        ("POST", "/subscriptions/{subscription_id}/plan"),
        ("POST", "/subscriptions/{subscription_id}/cancel"), ("POST", "/payments"),
        ("POST", "/playback/sessions"), ("POST", "/playback/sessions/{session_id}/progress"),
        ("POST", "/playback/sessions/{session_id}/stop"),
        ("PUT", "/titles/{title_id}/ratings/{user_id}"),
        ("DELETE", "/titles/{title_id}/ratings/{user_id}"),
        ("PUT", "/catalog/titles/{title_id}"), ("DELETE", "/catalog/titles/{title_id}"),
        ("POST", "/catalog/relations"), ("DELETE", "/catalog/relations"),
        ("POST", "/catalog/titles/{title_id}/assets"), ("PUT", "/flags/{name}"),
        ("GET", "/events/{event_id}"), ("GET", "/healthz"), ("GET", "/readyz"),
    }
    register = spec["paths"]["/users"]["post"]
    assert "202" in register["responses"] and "201" not in register["responses"]
    assert "enumerat" not in register["description"] and "who has an account" in register[
        "description"]
    flag = spec["paths"]["/flags/{name}"]["put"]
    assert flag["security"] == [{"bearer": []}]
    for path, method in (("/me", "get"), ("/auth/logout", "post"), ("/payments", "post")):
        assert "401" in spec["paths"][path][method]["responses"], path
    password = spec["components"]["schemas"]["RegisterUser"]["properties"]["password"]
    assert password["format"] == "password" and password["minLength"] == 12


def test_shutdown_flushes_the_publisher_and_runs_the_closers() -> None:
    calls: list[str] = []

    class Recording(InMemoryEventPublisher):
        def flush(self, timeout_s: float = 30.0) -> None:
            calls.append("flush")
            super().flush(timeout_s)

    deps = ApiDeps(settings=make_settings(), publisher=Recording(new_broker()),
                   receipts=InMemoryReceiptLog(), password_hasher=FAST_HASHER,
                   closers=(lambda: calls.append("close"),))
    with TestClient(create_app(deps)):
        pass
    assert calls == ["flush", "close"]


def test_only_argon2id_hashers_are_accepted() -> None:
    deps = ApiDeps(settings=make_settings(), publisher=InMemoryEventPublisher(new_broker()),
                   receipts=InMemoryReceiptLog(), password_hasher=PasswordHasher(type=Type.I))
    with pytest.raises(ValueError, match="argon2id"):
        create_app(deps)


def test_serve_runs_uvicorn_in_factory_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: str, **kwargs: Any) -> None:
        seen.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)  # the module api_cli calls
    result = CliRunner().invoke(api_cli.app, ["serve", "--port", "8123", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert seen["app"] == "polystream.bootstrap_api:app_factory"
    assert seen["factory"] is True
    assert seen["port"] == 8123 and seen["workers"] == 3
    assert seen["access_log"] is False
    loggers = seen["log_config"]["loggers"]
    # Raw paths (client-controlled) never logged; the OpenSearch client quiet at INFO.
    assert loggers["uvicorn.access"]["level"] == "WARNING"
    assert loggers["opensearch"]["level"] == "WARNING"
    assert seen["log_config"]["root"]["handlers"] == ["stderr"]
