"""GET /me, /me/subscription, /me/payments, /me/ratings (PostgreSQL) and
/me/continue-watching (Redis). Identity from the token only: there is no id to pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Annotated, Final, TypeVar

from fastapi import APIRouter, Query

from polystream.api.auth import CurrentUser
from polystream.api.deps import ApiRuntime, Runtime
from polystream.api.errors import ErrorBody
from polystream.api.me.schemas import (
    ContinueWatching,
    ContinueWatchingItem,
    PaymentsPage,
    PaymentView,
    PreferencesView,
    Profile,
    RatingsPage,
    RatingView,
    SubscriptionView,
)
from polystream.api.refusals import Busy, Missing
from polystream.domain.reads import AccountReader

router = APIRouter(tags=["me"])

T = TypeVar("T")
MAX_PAGE: Final = 100
#: A store that does not answer within this is reported as unavailable.
READ_TIMEOUT_S: Final = 2.0

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
    403: {"model": ErrorBody, "description": "The operator token stands for no user."},
    503: {"model": ErrorBody, "description": "The store this reads is unavailable."},
}
_PAGED_ERRORS = {**_ERRORS, 422: {"model": ErrorBody, "description": "Bad `limit` or "
                                  "`cursor`."}}

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")]
# An offset, opaque to clients; digits only, so nothing else can reach a query.
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$", description="`next_cursor` of "
                                     "the previous page.")]


async def _read(name: str, call: Callable[[], T]) -> T:
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), READ_TIMEOUT_S)
    except Exception as exc:
        raise Busy(f"the {name} store is unavailable; retry later", retry_after_s=5) from exc


def _accounts(runtime: ApiRuntime) -> AccountReader:
    if runtime.deps.accounts is None:
        raise Busy("the account store is unavailable; retry later", retry_after_s=5)
    return runtime.deps.accounts


def _page(items: Sequence[T], limit: int, cursor: str | None) -> tuple[list[T], str | None]:
    start = int(cursor or 0)
    chunk = list(items[start:start + limit])
    more = start + limit < len(items)
    return chunk, str(start + limit) if more else None


@router.get("/me", response_model=Profile, responses={**_ERRORS, 404: {
    "model": ErrorBody, "description": "The account is gone (erased)."}},
    summary="My profile and preferences")
async def me(principal: CurrentUser, runtime: Runtime) -> Profile:
    accounts = _accounts(runtime)
    user_id = principal.user_id or ""
    user = await _read("account", lambda: accounts.get_user(user_id))
    if user is None or user.erased:
        raise Missing("not found")
    prefs = await _read("account", lambda: accounts.get_preferences(user_id))
    return Profile(
        user_id=user.user_id, email=user.email or "", display_name=user.display_name or "",
        country=user.country or "", birth_year=user.birth_year or 0, role=principal.role,
        created_at=user.created_at, updated_at=user.updated_at,
        preferences=None if prefs is None else PreferencesView(
            genres=list(prefs.genres), languages=list(prefs.languages),
            subtitles=prefs.subtitles, subtitle_language=prefs.subtitle_language,
            autoplay_next_episode=prefs.autoplay_next_episode,
            autoplay_previews=prefs.autoplay_previews, maturity_limit=prefs.maturity_limit,
            updated_at=prefs.updated_at),
    )


@router.get("/me/subscription", response_model=SubscriptionView, responses={**_ERRORS, 404: {
    "model": ErrorBody, "description": "The user never subscribed."}},
    summary="My subscription", description="The active subscription, or else the latest one.")
async def my_subscription(principal: CurrentUser, runtime: Runtime) -> SubscriptionView:
    accounts = _accounts(runtime)
    user_id = principal.user_id or ""
    found = await _read("account", lambda: accounts.get_subscriptions(user_id))
    if not found:
        raise Missing("no subscription")
    active = [s for s in found if s.status.value == "active"]
    s = active[-1] if active else found[-1]
    return SubscriptionView(
        subscription_id=s.subscription_id, plan=s.plan.value, status=s.status.value,
        period_start=s.period_start, period_end=s.period_end, started_at=s.started_at,
        canceled_at=s.canceled_at, ends_at=s.ends_at, cancel_reason=s.cancel_reason)


@router.get("/me/payments", response_model=PaymentsPage, responses=_PAGED_ERRORS,
            summary="My payments", description="Newest first; card brand and last four "
            "digits only.")
async def my_payments(principal: CurrentUser, runtime: Runtime, limit: Limit = 20,
                      cursor: Cursor = None) -> PaymentsPage:
    accounts = _accounts(runtime)
    user_id = principal.user_id or ""
    found = await _read("account", lambda: accounts.list_payments(user_id))
    items, next_cursor = _page(found[::-1], limit, cursor)
    return PaymentsPage(items=[PaymentView(
        payment_id=p.payment_id, subscription_id=p.subscription_id,
        amount_cents=p.amount_cents, currency=p.currency, card_brand=p.card_brand,
        card_last4=p.card_last4, status=p.status.value, failure_reason=p.failure_reason,
        occurred_at=p.occurred_at, refunded_cents=p.refunded_cents, refunded_at=p.refunded_at,
    ) for p in items], next_cursor=next_cursor)


@router.get("/me/ratings", response_model=RatingsPage, responses=_PAGED_ERRORS,
            summary="My ratings")
async def my_ratings(principal: CurrentUser, runtime: Runtime, limit: Limit = 50,
                     cursor: Cursor = None) -> RatingsPage:
    accounts = _accounts(runtime)
    user_id = principal.user_id or ""
    found = await _read("account", lambda: accounts.list_ratings(user_id))
    items, next_cursor = _page(found, limit, cursor)
    return RatingsPage(items=[RatingView(title_id=r.title_id, stars=r.stars, review=r.review,
                                         rated_at=r.rated_at) for r in items],
                       next_cursor=next_cursor)


@router.get("/me/continue-watching", response_model=ContinueWatching,
            responses={**_ERRORS, 422: {"model": ErrorBody, "description": "Bad `limit`."}},
            summary="Continue watching",
            description="Titles the user started and did not finish, from the live state.")
async def continue_watching(
    principal: CurrentUser, runtime: Runtime,
    limit: Annotated[int, Query(ge=1, le=50, description="At most 50.")] = 20,
) -> ContinueWatching:
    live = runtime.deps.live
    if live is None:
        raise Busy("the live store is unavailable; retry later", retry_after_s=5)
    user_id = principal.user_id or ""
    found = await _read("live", lambda: live.continue_watching(user_id, limit))
    return ContinueWatching(items=[ContinueWatchingItem(
        title_id=c.title_id, episode_id=c.episode_id, position_seconds=c.position_seconds,
        duration_seconds=c.duration_seconds, viewing_session_id=c.viewing_session_id,
        updated_at=c.updated_at) for c in found])
