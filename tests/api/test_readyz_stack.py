"""`/readyz` on the real stack with one store missing: PostgreSQL or OpenSearch frozen
(SIGSTOP: accepts, never answers), then stopped (`Stack.down`) and started again. Its check
says so within the readiness timeout, the API stays ready, and every other store's check is
ok (but MongoDB's when PostgreSQL is missing: FerretDB keeps its data in PostgreSQL).

These stop servers of this worktree's own stack (its `.env` ports), and always start them
again."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from polystream.api import create_app
from polystream.api.app import _READY_TIMEOUT_S
from polystream.bootstrap_api import build_deps
from polystream.bus.admin import ensure_topics
from polystream.bus.topology import topic_specs
from polystream.settings import Settings
from polystream.sinks.postgres.migrate import upgrade
from polystream.stack.manager import Stack
from polystream.stack.process import StackError

pytestmark = [pytest.mark.stack, pytest.mark.slow]

#: The timeout, plus the request's own work on a loaded 2-core machine.
ANSWER_S = _READY_TIMEOUT_S + 1.0
#: server -> (its check, checks that fail with it)
CASES = {"postgres": ("postgres", {"mongo"}), "opensearch": ("audit", set())}


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    if not settings.opensearch.enabled:
        pytest.fail("the stack tests need OpenSearch (POLYSTREAM_OPENSEARCH__ENABLED=true)")
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    upgrade(settings.postgres)  # as a worker does at start: the probe reads the users table
    with TestClient(create_app(build_deps(settings))) as c:
        yield c


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc: Linux only, like the stack)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def ready(client: TestClient) -> tuple[int, float, dict[str, str]]:
    started = time.monotonic()
    response = client.get("/readyz")
    took = time.monotonic() - started
    checks = response.json()["checks"]
    assert isinstance(checks, dict)
    return response.status_code, took, checks


def assert_missing(client: TestClient, check: str, also: set[str]) -> str:
    status, took, checks = ready(client)
    assert status == 200, checks  # a store down degrades; it does not make the API unready
    assert took < ANSWER_S, took
    print(f"[readyz] {check}: {checks[check]} in {took:.2f}s")
    assert checks[check].startswith("unavailable"), checks
    assert {k for k, v in checks.items() if v != "ok"} <= {check} | also, checks
    return checks[check]


def wait_ok(client: TestClient, check: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while ready(client)[2].get(check) != "ok":
        assert time.monotonic() < deadline, f"{check} still not ok"
        time.sleep(0.5)


def start_again(stack: Stack, server: str, within_s: float = 60) -> None:
    # A PostgreSQL killed after its shutdown grace leaves postmaster.pid until its last
    # backend exits: the first start can fail on it.
    deadline = time.monotonic() + within_s
    while True:
        try:
            stack.up([server])
            return
        except StackError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)


@pytest.mark.parametrize("server", sorted(CASES))
def test_a_missing_store_is_reported_within_the_timeout(client: TestClient, settings: Settings,
                                                        server: str) -> None:
    check, also = CASES[server]
    status, _, checks = ready(client)
    assert status == 200 and all(v == "ok" for v in checks.values()), checks
    assert check in checks

    stack = Stack(settings)
    record = stack.servers[server].process.running()
    assert record is not None, f"{server} is not running in this stack"
    # The server and its children: PostgreSQL serves each open connection from a child process
    # (in a session of its own, so the process group would not reach it).
    frozen = [record.pid, *children(record.pid)]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        why = assert_missing(client, check, also)
        assert why == f"unavailable (no answer within {_READY_TIMEOUT_S:g}s)"
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    wait_ok(client, check)

    try:
        stack.down([server])
        assert_missing(client, check, also)
        assert_missing(client, check, also)  # and again: a probe of a stopped server ends
    finally:
        start_again(stack, server)
    wait_ok(client, check)
    wait_ok(client, "mongo")
