"""A store that stops answering: its endpoints answer 503 within 2 s, the others keep
working, /readyz reports each store. The store is frozen (SIGSTOP: the worst case, a server
that accepts and never answers) in our own stack, and thawed afterwards whatever happens."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from polystream.settings import Settings
from polystream.stack.manager import Stack

from .conftest import ReadHarness

pytestmark = pytest.mark.stack

BUDGET_S = 2.0


@contextmanager
def frozen(settings: Settings, server: str) -> Iterator[None]:
    record = Stack(settings).servers[server].process.running()
    assert record is not None, f"{server} is not running in this stack"
    os.kill(record.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(record.pid, signal.SIGCONT)


def timed_get(reads: ReadHarness, url: str) -> tuple[int, float, dict[str, object]]:
    started = time.monotonic()
    response = reads.client.get(url)
    return response.status_code, time.monotonic() - started, response.json()


def test_mongo_down(stack_reads: ReadHarness, settings: Settings) -> None:
    reads = stack_reads
    assert reads.client.get("/titles/t02").headers["x-cache"] == "miss"  # now cached
    with frozen(settings, "ferretdb"):
        for url in ("/titles/t01", "/titles?genre=drama", "/titles/t01/related",
                    "/titles/t01/poster"):
            status, took, body = timed_get(reads, url)
            assert status == 503, (url, body)
            assert took < BUDGET_S, (url, took)
            assert "MongoDB" in str(body["detail"])
        # Served by Redis alone: the cached title, the rankings, the flags.
        for url in ("/titles/t02", "/rankings/top-rated", "/flags"):
            status, took, _ = timed_get(reads, url)
            assert status == 200 and took < BUDGET_S, url
        status, took, body = timed_get(reads, "/readyz")
        assert took < BUDGET_S
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["redis"] == "ok" and checks["mongo"].startswith("unavailable")
    status, _, body = timed_get(reads, "/titles/t01")
    assert status == 200 and body["title_id"] == "t01"


def test_redis_down(stack_reads: ReadHarness, settings: Settings) -> None:
    reads = stack_reads
    with frozen(settings, "redis"):
        for url in ("/rankings/trending", "/rankings/top-rated?genre=drama", "/flags"):
            status, took, body = timed_get(reads, url)
            assert status == 503, (url, body)
            assert took < BUDGET_S, (url, took)
            assert "Redis" in str(body["detail"])
        # The catalog answers from MongoDB without its cache.
        for url in ("/titles/t01", "/titles?kind=series", "/titles/t01/related"):
            status, took, _ = timed_get(reads, url)
            assert status == 200 and took < BUDGET_S, (url, took)
        status, took, body = timed_get(reads, "/readyz")
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["mongo"] == "ok" and checks["redis"].startswith("unavailable")
        assert took < BUDGET_S
    assert reads.client.get("/rankings/top-rated").status_code == 200
