"""Login, logout and "log out everywhere".

Every failed login answers the same 401 after the same work (one argon2id verification,
against a dummy hash when the email is unknown); rate limits are checked before any of it.
Sessions are created in the store first and the ``session.login_started`` event published
after: authentication cannot wait for a queue. If the event cannot be published the
session is removed again and the login answers 503, so the audit never misses a session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import TypeVar

from uuid6 import uuid7

from polystream.api.auth import STORE_DOWN, Principal
from polystream.api.commands import publish
from polystream.api.deps import ApiRuntime
from polystream.api.login.schemas import AccessToken, Login
from polystream.api.login.store import LoginSession
from polystream.api.login.tokens import account_key, new_token, token_digest
from polystream.api.refusals import Busy, TooMany, Unauthenticated
from polystream.domain.events import (
    Device,
    DeviceKind,
    LoginMethod,
    SessionEnded,
    SessionEndReason,
    SessionLoginStarted,
    new_event,
)
from polystream.domain.reads import Credentials

log = logging.getLogger("polystream.api.login")

LOGIN_FAILED = "invalid email or password"
ACCOUNTS_DOWN = "the account store is unavailable; retry later"
TOO_MANY = "too many login attempts; retry later"
# A client whose address is not an IP (a test client, a Unix socket) is recorded as this.
UNKNOWN_ADDRESS = "0.0.0.0"

T = TypeVar("T")


def _address(host: str | None) -> str:
    try:
        return str(ip_address(host or ""))
    except ValueError:
        return UNKNOWN_ADDRESS


async def _check_rate(runtime: ApiRuntime, email: str, address: str) -> None:
    api = runtime.settings.api
    counter = runtime.deps.login_attempts
    try:
        by_address = await asyncio.to_thread(counter.hit, f"ip:{address}", api.login_window_s)
        by_account = await asyncio.to_thread(
            counter.hit, f"acct:{account_key(email)}", api.login_window_s
        )
    except Exception as exc:
        # Without the counters there is no brute-force protection: refuse rather than
        # verify passwords unthrottled.
        raise Busy(STORE_DOWN, retry_after_s=1) from exc
    for (count, retry), limit in (
        (by_address, api.login_attempts_per_address),
        (by_account, api.login_attempts_per_account),
    ):
        if count > limit:
            raise TooMany(TOO_MANY, retry_after_s=retry)


async def login(runtime: ApiRuntime, body: Login, client_host: str | None) -> AccessToken:
    email = body.email.strip().lower()
    address = _address(client_host)
    await _check_rate(runtime, email, address)
    accounts = runtime.deps.accounts
    if accounts is None:
        raise Busy(ACCOUNTS_DOWN, retry_after_s=5)
    try:
        # PostgreSQL text cannot hold NUL, so no account has such an email; asking would be
        # an error of the store, not a failed login.
        credentials: Credentials | None = None if "\x00" in email else await asyncio.to_thread(
            accounts.get_user_by_email, email
        )
    except Exception as exc:
        log.warning("login: account lookup failed: %s", type(exc).__name__)
        raise Busy(ACCOUNTS_DOWN, retry_after_s=5) from exc
    password = body.password.get_secret_value()
    stored_hash = credentials.password_hash if credentials is not None else None
    if not await runtime.verify_password(stored_hash, password) or credentials is None:
        raise Unauthenticated(LOGIN_FAILED)
    ttl = runtime.settings.api.session_ttl_s
    token = new_token()
    digest = token_digest(token)
    session = LoginSession(str(uuid7()), credentials.user_id, credentials.role,
                           time.time() + ttl)
    sessions = runtime.deps.sessions
    try:
        await asyncio.to_thread(sessions.create, digest, session, ttl)
        await asyncio.to_thread(runtime.deps.login_attempts.clear,
                                f"acct:{account_key(email)}")
    except Exception as exc:
        raise Busy(STORE_DOWN, retry_after_s=1) from exc
    device = body.device or Device(kind=DeviceKind.WEB, device_id=str(uuid7()))
    event = new_event(
        SessionLoginStarted(
            session_id=session.session_id,
            user_id=session.user_id,
            method=LoginMethod.PASSWORD,
            device=device,
            ip_address=ip_address(address),
            expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        ),
        source=runtime.deps.source,
    )
    try:
        await publish(runtime, event)
    except Busy:
        await asyncio.to_thread(sessions.revoke, digest)
        raise
    return AccessToken(access_token=token, expires_in=ttl)


async def _ended(runtime: ApiRuntime, sessions: list[LoginSession],
                 reason: SessionEndReason) -> None:
    for session in sessions:
        event = new_event(
            SessionEnded(session_id=session.session_id, user_id=session.user_id,
                         reason=reason),
            source=runtime.deps.source,
        )
        await publish(runtime, event)


async def _sessions_call(call: Callable[[str], T], arg: str) -> T:
    """A session store call off the event loop; the store down answers 503."""
    try:
        return await asyncio.to_thread(call, arg)
    except Exception as exc:
        raise Busy(STORE_DOWN, retry_after_s=1) from exc


async def logout(runtime: ApiRuntime, principal: Principal) -> None:
    assert principal.digest is not None
    ended = await _sessions_call(runtime.deps.sessions.revoke, principal.digest)
    # The session is over whether or not the event gets out; a publish failure is a 503 the
    # client may retry (the second logout then finds nothing and publishes nothing).
    await _ended(runtime, [ended] if ended else [], SessionEndReason.LOGOUT)


async def revoke_all(runtime: ApiRuntime, principal: Principal) -> int:
    assert principal.user_id is not None
    ended = await _sessions_call(runtime.deps.sessions.revoke_all, principal.user_id)
    await _ended(runtime, ended, SessionEndReason.REVOKED)
    return len(ended)


async def end_every_session(runtime: ApiRuntime, user_id: str) -> int:
    """Erasure: every login session of the user ends at once (``session.ended`` with reason
    ``user_erased`` for each)."""
    ended = await _sessions_call(runtime.deps.sessions.revoke_all, user_id)
    await _ended(runtime, ended, SessionEndReason.USER_ERASED)
    return len(ended)


async def list_sessions(runtime: ApiRuntime, principal: Principal) -> list[LoginSession]:
    assert principal.user_id is not None
    return await _sessions_call(runtime.deps.sessions.list, principal.user_id)
