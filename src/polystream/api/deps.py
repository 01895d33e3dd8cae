"""What the write API needs from the outside world, and how a request reaches it.

`ApiDeps` is built by `bootstrap.py` from settings (Kafka + Redis) or by a test (in-memory
broker + in-memory receipts); `create_app` never builds adapters itself, so the same app runs
embedded, against the real stack, or under test without a single `if`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request

from polystream.api.login.ratelimit import AttemptCounter, InMemoryAttemptCounter
from polystream.api.login.store import InMemorySessionStore, SessionStore
from polystream.audit.ports import AuditIndex
from polystream.bus.ports import EventPublisher
from polystream.domain.events import PlanCode
from polystream.domain.reads import AccountReader, ContinueItem, ViewingSession
from polystream.observe.observatory import Observatory
from polystream.receipts import ReceiptLog
from polystream.settings import Settings


class LiveReader(Protocol):
    """The reads of the live store (Redis, or its in-memory twin) the API needs."""

    def viewing_session(self, viewing_session_id: str) -> ViewingSession | None: ...

    def active_streams(self, user_id: str, now: datetime | None = None) -> list[str]: ...

    def continue_watching(self, user_id: str, limit: int = 20) -> list[ContinueItem]: ...

    def plan_of(self, user_id: str, now: datetime | None = None) -> PlanCode | None: ...


T = TypeVar("T")

if TYPE_CHECKING:
    from polystream.reads.service import ReadService


def _default_hash_threads() -> int:
    # Each argon2id hash holds 64 MiB and runs 4 lanes; a couple in parallel keep the CPU busy
    # without letting a burst of sign-ups take all the memory.
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class HashingBusy(Exception):
    """Every password-hashing worker is busy and the queue in front of them is full."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"{capacity} password hashes are already running or queued")


@dataclass(frozen=True, slots=True)
class ApiDeps:
    """The adapters the API runs on. Nothing here is created by the API itself."""

    settings: Settings
    publisher: EventPublisher
    receipts: ReceiptLog
    #: argon2-cffi's default type is argon2id (RFC 9106 parameters); only the hash is published.
    password_hasher: PasswordHasher = field(default_factory=PasswordHasher)
    #: Raises (any exception, its message is shown) when the publisher cannot be used; None
    #: means "usable while the app is running" (the in-memory broker).
    ready_check: Callable[[], None] | None = None
    #: Called once at shutdown, after the publisher was flushed (close Kafka, Redis, ...).
    closers: Sequence[Callable[[], None]] = ()
    #: The audit trail for the operators' `/audit/events` endpoints; None leaves them out.
    audit: AuditIndex | None = None
    #: What the operators' `/dashboard` shows; None leaves the dashboard out.
    observatory: Observatory | None = None
    #: The public reads (``/titles``, ``/rankings``, ``GET /flags``); None leaves them out.
    #: Closed by the app at shutdown.
    reads: ReadService | None = None
    #: The envelope's ``source``.
    source: str = "api"
    hash_threads: int = field(default_factory=_default_hash_threads)
    #: Accounts (PostgreSQL, or the in-memory store): login, /me reads, ownership checks.
    #: None: login and the /me reads answer 503.
    accounts: AccountReader | None = None
    #: Live state (Redis): viewing-session ownership, the stream limit, continue-watching.
    live: LiveReader | None = None
    sessions: SessionStore = field(default_factory=InMemorySessionStore)
    login_attempts: AttemptCounter = field(default_factory=InMemoryAttemptCounter)


class ApiRuntime:
    """Per-app state shared by the requests: the deps plus the password-hashing pool.

    Hashing gets its own bounded pool rather than the default executor so that a burst of
    registrations queues behind a few argon2 workers instead of starving the receipt lookups
    (which use the default executor) or blocking the event loop.
    """

    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.shutting_down = False
        self._hash_pool = ThreadPoolExecutor(
            max_workers=deps.hash_threads, thread_name_prefix="argon2"
        )
        # Store lookups on the request path (session, ownership) wait on the network, not the
        # CPU: a pool of their own, wide enough for the concurrent requests, keeps them from
        # queueing behind each other in the default executor (6 threads on 2 cores), which
        # halved the heartbeat rate when a heartbeat needed two lookups.
        self._io_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="store-io")
        # Made up front: computing it on the first unknown email would make that one answer
        # slower than a wrong password.
        self._dummy_hash = deps.password_hasher.hash(secrets.token_urlsafe(16))
        # The pool's own queue is unbounded: 40 parallel sign-ups made the last one wait
        # 8.5 s. Hashes running plus waiting are counted here (one event loop, no lock).
        self._hash_capacity = deps.hash_threads + deps.settings.api.hash_queue_max
        self._hashes_in_flight = 0

    async def hash_password(self, password: str) -> str:
        """The argon2id hash, computed in the bounded pool. Raises :class:`HashingBusy`
        when the pool and its queue are full."""
        if self._hashes_in_flight >= self._hash_capacity:
            raise HashingBusy(self._hash_capacity)
        self._hashes_in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._hash_pool, self.deps.password_hasher.hash, password
            )
        finally:
            self._hashes_in_flight -= 1

    async def lookup(self, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking store read in the lookup pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_pool, call, *args)

    async def verify_password(self, password_hash: str | None, password: str) -> bool:
        """Constant work whether or not the account exists: an unknown account is checked
        against a dummy hash made with the same parameters, so timing tells nothing."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._hash_pool, self._verify, password_hash, password
        )

    def _verify(self, password_hash: str | None, password: str) -> bool:
        hasher = self.deps.password_hasher
        real = password_hash is not None
        password_hash = password_hash or self._dummy_hash
        try:
            return hasher.verify(password_hash, password) and real
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._hash_pool.shutdown(wait=True, cancel_futures=True)
        self._io_pool.shutdown(wait=True, cancel_futures=True)


def get_runtime(request: Request) -> ApiRuntime:
    return cast(ApiRuntime, request.app.state.runtime)


Runtime = Annotated[ApiRuntime, Depends(get_runtime)]
