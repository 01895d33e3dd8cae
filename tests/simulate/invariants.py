"""A referee for simulated streams: replays decoded events and fails on the first one that
could not have happened (what a store would reject as inconsistent)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from polystream.domain.events import PLANS, Envelope


class Inconsistent(AssertionError):
    pass


@dataclass
class _Sub:
    user_id: str
    plan: str
    period_start: datetime
    period_end: datetime
    ends_at: datetime | None = None
    reasons: list[str] = field(default_factory=list)

    def grants_access(self, now: datetime) -> bool:
        return self.ends_at is None or now < self.ends_at


@dataclass
class _Viewing:
    user_id: str
    title_id: str
    episode_id: str | None
    position: int
    over_limit: bool


@dataclass
class StreamModel:
    users: dict[str, bool] = field(default_factory=dict)  # user_id -> erased
    emails: set[str] = field(default_factory=set)
    subs: dict[str, _Sub] = field(default_factory=dict)
    current_sub: dict[str, str] = field(default_factory=dict)
    payments: dict[str, tuple[str, str, bool, int]] = field(default_factory=dict)
    refunded: set[str] = field(default_factory=set)
    sessions: dict[str, tuple[str, bool]] = field(default_factory=dict)
    viewings: dict[str, _Viewing] = field(default_factory=dict)
    open_viewings: dict[str, set[str]] = field(default_factory=dict)
    titles: dict[str, dict[str, Any]] = field(default_factory=dict)
    relations: set[tuple[str, str, str]] = field(default_factory=set)
    ratings: dict[tuple[str, str], int] = field(default_factory=dict)
    last_at: dict[str, datetime] = field(default_factory=dict)
    last_global: datetime | None = None
    counts: Counter[str] = field(default_factory=Counter)
    over_limit_starts: int = 0

    def fail(self, event: Envelope[Any], why: str) -> None:
        raise Inconsistent(f"{event.type} {event.event_id} at {event.occurred_at}: {why}")

    def apply(self, event: Envelope[Any]) -> None:
        now = event.occurred_at
        previous = self.last_at.get(event.key)
        if previous is not None and now < previous:
            self.fail(event, f"key {event.key} went back in time from {previous}")
        self.last_at[event.key] = now
        if self.last_global is not None and now < self.last_global:
            self.fail(event, "the stream is not in time order")
        self.last_global = now
        self.counts[event.type] += 1
        payload = event.payload
        user_id = getattr(payload, "user_id", None)
        if user_id is not None and event.type != "user.registered":
            if user_id not in self.users:
                self.fail(event, f"unknown user {user_id}")
            if self.users[user_id]:
                self.fail(event, f"user {user_id} was erased")
        handler = getattr(self, "_" + event.type.replace(".", "_"))
        handler(event, payload, now)

    # users ---------------------------------------------------------------------------------

    def _user_registered(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        if p.user_id in self.users:
            self.fail(event, "user registered twice")
        if p.email in self.emails:
            self.fail(event, "email already taken")
        self.users[p.user_id] = False
        self.emails.add(p.email)

    def _user_profile_updated(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        if p.email is not None:
            if p.email in self.emails:
                self.fail(event, "email already taken")
            self.emails.add(p.email)

    def _user_erased(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        if self.open_viewings.get(p.user_id):
            self.fail(event, "erased while streaming")
        self.users[p.user_id] = True

    def _preferences_updated(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        pass

    # billing -------------------------------------------------------------------------------

    def _sub(self, event: Envelope[Any], p: Any) -> _Sub:
        sub = self.subs.get(p.subscription_id)
        if sub is None:
            self.fail(event, f"unknown subscription {p.subscription_id}")
            raise AssertionError  # unreachable, for the type checker
        if sub.user_id != p.user_id:
            self.fail(event, "subscription belongs to another user")
        return sub

    def _subscription_started(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        current = self.current_sub.get(p.user_id)
        if current is not None and self.subs[current].grants_access(now):
            self.fail(event, "second active subscription for the user")
        if p.subscription_id in self.subs:
            self.fail(event, "subscription started twice")
        self.subs[p.subscription_id] = _Sub(p.user_id, p.plan.value, p.period_start, p.period_end)
        self.current_sub[p.user_id] = p.subscription_id

    def _payment(self, event: Envelope[Any], p: Any, succeeded: bool) -> None:
        sub = self._sub(event, p)
        if sub.ends_at is not None:
            self.fail(event, "payment for a canceled subscription")
        if p.amount_cents != PLANS[sub.plan].price_cents:  # type: ignore[index]
            self.fail(event, "amount is not the plan's price")
        if p.payment_id in self.payments:
            self.fail(event, "payment id reused")
        self.payments[p.payment_id] = (p.subscription_id, p.user_id, succeeded, p.amount_cents)

    def _payment_succeeded(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._payment(event, p, True)

    def _payment_failed(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._payment(event, p, False)

    def _payment_refunded(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        paid = self.payments.get(p.payment_id)
        if paid is None or not paid[2]:
            self.fail(event, "refund of a payment that did not succeed")
            return
        if paid[:2] != (p.subscription_id, p.user_id) or paid[3] != p.amount_cents:
            self.fail(event, "refund does not match its payment")
        if p.payment_id in self.refunded:
            self.fail(event, "refunded twice")
        self.refunded.add(p.payment_id)

    def _subscription_renewed(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        sub = self._sub(event, p)
        paid = self.payments.get(p.payment_id)
        if paid is None or not paid[2] or paid[0] != p.subscription_id:
            self.fail(event, "renewal without a successful payment of this subscription")
        if p.period_start != sub.period_end:
            self.fail(event, "renewal period does not continue the previous one")
        if sub.ends_at is not None:
            self.fail(event, "renewal of a canceled subscription")
        sub.period_start, sub.period_end = p.period_start, p.period_end

    def _subscription_canceled(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        sub = self._sub(event, p)
        if sub.ends_at is not None and p.reason.value != "account_erased":
            self.fail(event, "canceled twice")
        sub.ends_at = p.ends_at if sub.ends_at is None else min(sub.ends_at, p.ends_at)
        sub.reasons.append(p.reason.value)

    def _subscription_plan_changed(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        sub = self._sub(event, p)
        if sub.plan != p.from_plan.value:
            self.fail(event, "from_plan is not the current plan")
        if sub.ends_at is not None:
            self.fail(event, "plan change on a canceled subscription")
        sub.plan = p.to_plan.value

    # sessions ------------------------------------------------------------------------------

    def _session_login_started(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        if p.session_id in self.sessions:
            self.fail(event, "session id reused")
        if p.expires_at <= now:
            self.fail(event, "session expires before it starts")
        self.sessions[p.session_id] = (p.user_id, True)

    def _open_session(self, event: Envelope[Any], p: Any) -> None:
        state = self.sessions.get(p.session_id)
        if state is None or state[0] != p.user_id:
            self.fail(event, "unknown session for this user")
        elif not state[1]:
            self.fail(event, "session already ended")

    def _session_refreshed(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._open_session(event, p)

    def _session_ended(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._open_session(event, p)
        self.sessions[p.session_id] = (p.user_id, False)

    # playback ------------------------------------------------------------------------------

    def _playback_started(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        title = self.titles.get(p.title_id)
        if title is None or title["removed"]:
            self.fail(event, f"playback of unknown or removed title {p.title_id}")
            return
        if p.episode_id not in title["items"]:
            self.fail(event, "episode does not belong to the title")
        if title["items"][p.episode_id] != p.duration_seconds:
            self.fail(event, "duration does not match the catalogue")
        current = self.current_sub.get(p.user_id)
        sub = self.subs.get(current) if current else None
        if sub is None or not sub.grants_access(now):
            self.fail(event, "playback without an active subscription")
            return
        if p.viewing_session_id in self.viewings:
            self.fail(event, "viewing session id reused")
        counted = [v for v in self.open_viewings.get(p.user_id, set())
                   if not self.viewings[v].over_limit]  # fmt: skip
        over = len(counted) >= PLANS[sub.plan].max_streams  # type: ignore[index]
        self.over_limit_starts += over
        self.viewings[p.viewing_session_id] = _Viewing(
            p.user_id, p.title_id, p.episode_id, p.position_seconds, over
        )
        self.open_viewings.setdefault(p.user_id, set()).add(p.viewing_session_id)

    def _viewing(self, event: Envelope[Any], p: Any) -> _Viewing:
        viewing = self.viewings.get(p.viewing_session_id)
        if viewing is None or p.viewing_session_id not in self.open_viewings.get(p.user_id, ()):
            self.fail(event, "heartbeat of a viewing session that is not open")
            raise AssertionError
        if (viewing.user_id, viewing.title_id, viewing.episode_id) != (
            p.user_id, p.title_id, p.episode_id
        ):  # fmt: skip
            self.fail(event, "viewing session changed user, title or episode")
        if p.position_seconds < viewing.position:
            self.fail(event, "position went backwards")
        viewing.position = p.position_seconds
        return viewing

    def _playback_progress(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._viewing(event, p)

    def _playback_stopped(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        viewing = self._viewing(event, p)
        if viewing.over_limit != (p.reason.value == "stream_limit"):
            self.fail(event, "stream_limit stops must be exactly the over-limit attempts")
        self.open_viewings[p.user_id].discard(p.viewing_session_id)

    # ratings -------------------------------------------------------------------------------

    def _rating_submitted(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        title = self.titles.get(p.title_id)
        if title is None or title["removed"]:
            self.fail(event, "rating of an unknown or removed title")
        self.ratings[(p.user_id, p.title_id)] = p.stars

    def _rating_retracted(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        if self.ratings.pop((p.user_id, p.title_id), None) is None:
            self.fail(event, "retraction of a rating that does not exist")

    # catalogue -----------------------------------------------------------------------------

    def _catalog_title_upserted(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        known = self.titles.get(p.title_id)
        if known is not None and (known["removed"] or p.version <= known["version"]):
            self.fail(event, "version did not increase (or the title was removed)")
        if p.kind.value == "movie":
            items: dict[str | None, int] = {None: p.runtime_minutes * 60}
        else:
            items = {e.episode_id: e.runtime_minutes * 60 for s in p.seasons for e in s.episodes}
            if known is not None and not set(known["items"]) <= set(items):
                self.fail(event, "an edit removed episodes")
        self.titles[p.title_id] = {"version": p.version, "removed": False, "items": items}

    def _catalog_title_removed(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        known = self.titles.get(p.title_id)
        if known is None or known["removed"] or p.version <= known["version"]:
            self.fail(event, "removal of an unknown title or without a newer version")
            return
        if any(v.title_id == p.title_id for ids in self.open_viewings.values() for v in
               (self.viewings[i] for i in ids)):  # fmt: skip
            self.fail(event, "title removed while being watched")
        known.update(version=p.version, removed=True)

    def _live(self, event: Envelope[Any], title_id: str) -> None:
        title = self.titles.get(title_id)
        if title is None or title["removed"]:
            self.fail(event, f"title {title_id} is unknown or removed")

    def _catalog_relation_added(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._live(event, p.from_title_id)
        self._live(event, p.to_title_id)
        self.relations.add((p.from_title_id, p.to_title_id, p.kind.value))

    def _catalog_relation_removed(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        key = (p.from_title_id, p.to_title_id, p.kind.value)
        if key not in self.relations:
            self.fail(event, "removal of a relation that does not exist")
        self.relations.discard(key)

    def _catalog_asset_uploaded(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        self._live(event, p.title_id)

    def _flag_set(self, event: Envelope[Any], p: Any, now: datetime) -> None:
        if p.scope.startswith("user:"):
            user_id = p.scope.removeprefix("user:")
            if user_id not in self.users or self.users[user_id]:
                self.fail(event, "flag for an unknown or erased user")
