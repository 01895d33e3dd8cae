"""A user acts only on what is theirs: ids in paths and bodies are checked against the token.

A foreign id answers 404, exactly like an id that does not exist, so ids cannot be probed.
Resources the API can look up (subscriptions in PostgreSQL, viewing sessions in Redis) are
checked there; one not found yet (its creation still on its way to the store) passes, because
the stores refuse any event whose user does not own the resource, and the event's user now
always comes from the token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

from polystream.api.auth import Principal
from polystream.api.deps import ApiRuntime
from polystream.api.refusals import Conflict, Missing
from polystream.domain.events import PLANS

log = logging.getLogger("polystream.api.ownership")

NOT_FOUND: Final = "not found"
USER_ID_NOTE: Final = (
    "Optional: the caller's own id (from the token) is used; another id answers 404."
)


def not_found() -> Missing:
    return Missing(NOT_FOUND)


def own_user_id(principal: Principal, given: str | None) -> str:
    assert principal.user_id is not None
    if given is not None and given != principal.user_id:
        raise not_found()
    return principal.user_id


class _Owned(Protocol):
    @property
    def user_id(self) -> str: ...


async def _check_owner(runtime: ApiRuntime, principal: Principal, what: str,
                       find: Callable[[str], _Owned | None] | None, resource_id: str) -> None:
    """404 unless the resource ``find`` returns is the principal's; a store that is not
    configured or does not answer skips the check (the store decides then; see above)."""
    if find is None:
        return
    try:
        found = await runtime.lookup(find, resource_id)
    except Exception as exc:
        log.warning("%s ownership check skipped: %s", what, type(exc).__name__)
        return
    if found is not None and found.user_id != principal.user_id:
        raise not_found()


async def check_subscription(runtime: ApiRuntime, principal: Principal,
                             subscription_id: str) -> None:
    accounts = runtime.deps.accounts
    await _check_owner(runtime, principal, "subscription",
                       accounts.get_subscription if accounts else None, subscription_id)


async def check_viewing_session(runtime: ApiRuntime, principal: Principal,
                                viewing_session_id: str) -> None:
    live = runtime.deps.live
    await _check_owner(runtime, principal, "viewing session",
                       live.viewing_session if live else None, viewing_session_id)


async def check_stream_limit(runtime: ApiRuntime, user_id: str) -> None:
    """The plan's concurrent-stream limit, checked against the live state before a start is
    published (the Redis store checks it again when it applies the start: two starts racing
    here can both pass, and the later one is then refused there)."""
    live = runtime.deps.live
    if live is None:
        return
    try:
        plan = await runtime.lookup(live.plan_of, user_id)
        active = await runtime.lookup(live.active_streams, user_id) if plan else []
    except Exception as exc:
        log.warning("stream limit check skipped: %s", type(exc).__name__)
        return
    if plan is None:
        return
    allowed = PLANS[plan].max_streams
    if len(active) >= allowed:
        raise Conflict(f"the {plan.value} plan allows {allowed} concurrent stream"
            f"{'s' if allowed != 1 else ''}; stop one before starting another",
        )
