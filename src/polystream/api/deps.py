"""What the write API needs from the outside world, and how a request reaches it.

`ApiDeps` is built by `bootstrap.py` from settings (Kafka + Redis) or by a test (in-memory
broker + in-memory receipts); `create_app` never builds adapters itself, so the same app runs
embedded, against the real stack, or under test without a single `if`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, cast

from argon2 import PasswordHasher
from fastapi import Depends, Request

from polystream.audit.ports import AuditIndex
from polystream.bus.ports import EventPublisher
from polystream.observe.observatory import Observatory
from polystream.settings import Settings
from polystream.sinks.receipts import ReceiptLog


def _default_hash_threads() -> int:
    # Each argon2id hash holds 64 MiB and runs 4 lanes; a couple in parallel keep the CPU busy
    # without letting a burst of sign-ups take all the memory.
    return max(1, min(4, (os.cpu_count() or 2) // 2))


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
    #: The envelope's ``source``.
    source: str = "api"
    hash_threads: int = field(default_factory=_default_hash_threads)


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

    async def hash_password(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._hash_pool, self.deps.password_hasher.hash, password
        )

    def close(self) -> None:
        self._hash_pool.shutdown(wait=True, cancel_futures=True)


def get_runtime(request: Request) -> ApiRuntime:
    return cast(ApiRuntime, request.app.state.runtime)


Runtime = Annotated[ApiRuntime, Depends(get_runtime)]
