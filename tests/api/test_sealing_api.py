"""The API seals personal fields (crypto-shredding, docs/operations.md "Erasure") without
holding its event loop: a user's first key is read or created in PostgreSQL off the loop.
In-memory keys here, made slow on purpose; the real key store: tests/api/test_erasure_stack.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import Future

import httpx

from polystream.api import ApiDeps, create_app
from polystream.bus.memory import InMemoryEventPublisher
from polystream.bus.ports import Delivered
from polystream.receipts import InMemoryReceiptLog
from polystream.shred.bus import KeyCache, ShreddingPublisher
from polystream.shred.fields import PREFIX
from polystream.shred.keys import KeyStoreError, MemoryKeyStore

from .cases import REGISTER
from .conftest import FAST_HASHER, make_settings, new_broker

EMAIL = "slow.key@example.com"


class SlowKeys(MemoryKeyStore):
    """Key creation blocks until the test releases it (a slow PostgreSQL round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def issue(self, users: Collection[str]) -> dict[str, bytes | None]:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        # Generous: without the fix this wait runs on the event loop and the test fails on
        # the order of the answers below, not on this bound.
        self.release.wait(10)
        return super().issue(users)


class Recording(InMemoryEventPublisher):
    def __init__(self) -> None:
        super().__init__(new_broker())
        self.values: list[bytes] = []

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None = None) -> Future[Delivered]:
        self.values.append(value)
        return super().publish(topic, key, value, headers)


def _app(keys: MemoryKeyStore, published: Recording) -> ApiDeps:
    return ApiDeps(settings=make_settings(), publisher=ShreddingPublisher(
        published, KeyCache(keys)), receipts=InMemoryReceiptLog(), password_hasher=FAST_HASHER)


def test_healthz_answers_while_a_users_key_is_being_created() -> None:
    keys, published = SlowKeys(), Recording()
    app = create_app(_app(keys, published))

    async def main() -> tuple[httpx.Response, bool, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            register = asyncio.create_task(
                client.post("/users", json=REGISTER.with_json(email=EMAIL).json))
            for _ in range(1000):  # argon2 first (its own pool), then the key
                if keys.entered.is_set() or register.done():
                    break
                await asyncio.sleep(0.01)
            health = await asyncio.wait_for(client.get("/healthz"), 30)
            pending = not register.done()
            keys.release.set()
            return health, pending, await register

    health, pending_when_healthy, registered = asyncio.run(main())
    assert keys.entered.is_set()
    assert health.status_code == 200
    assert pending_when_healthy, "/healthz waited for the key creation: the loop was blocked"
    assert registered.status_code == 202, registered.text
    assert keys.threads and all(name.startswith("store-io") for name in keys.threads)
    [value] = published.values
    assert EMAIL.encode() not in value and PREFIX.encode() in value


def test_only_a_users_first_personal_event_asks_the_key_store() -> None:
    keys, published = SlowKeys(), Recording()
    keys.release.set()
    deps = _app(keys, published)
    publisher = deps.publisher
    assert isinstance(publisher, ShreddingPublisher)
    assert publisher.ready("catalog.title_upserted", "anyone")  # no personal field
    assert not publisher.ready("user.registered", "ann")
    publisher.prepare("ann")
    assert publisher.ready("user.registered", "ann") and keys.threads == ["MainThread"]
    publisher.keys.erase(["bo"])
    assert publisher.ready("user.registered", "bo")  # erased: known to have no key

    async def main() -> int:
        transport = httpx.ASGITransport(app=create_app(deps))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return (await client.post("/users", json=REGISTER.with_json(email=EMAIL).json)
                    ).status_code

    assert asyncio.run(main()) == 202
    assert len(published.values) == 1
    assert len(keys.threads) == 2 and keys.threads[1].startswith("store-io")


def test_a_key_store_that_does_not_answer_fails_the_command_with_503() -> None:
    class Down(MemoryKeyStore):
        def issue(self, users: Collection[str]) -> dict[str, bytes | None]:
            raise KeyStoreError("down")

    published = Recording()
    app = create_app(_app(Down(), published))

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/users", json=REGISTER.with_json(email=EMAIL).json)

    refused = asyncio.run(main())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert set(refused.json()) == {"detail", "errors"}
    assert published.values == []  # nothing in clear, nothing at all
