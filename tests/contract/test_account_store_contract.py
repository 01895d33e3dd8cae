"""The account store contract, run against the in-memory store and the real PostgreSQL one.

Every test receives a fresh, empty store. PostgreSQL runs in a database created for this test
session (``polystream_test_<random>``, migrated with the packaged migrations, dropped at the
end); between tests its data tables are truncated.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, get_args

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from polystream.bus.topology import topic_of
from polystream.domain.accounts import (
    ACCOUNT_EVENT_TYPES,
    DEFERRABLE_REASONS,
    AccountPayload,
    Reason,
)
from polystream.domain.accounts_rules import AccountState
from polystream.domain.events import (
    Envelope,
    FlagSet,
    ReceiptStatus,
    Sink,
    UserRegistered,
    event_types_for,
    find_card_data,
)
from polystream.domain.examples import EXAMPLE_PASSWORD_HASH, EXAMPLE_TIME, example_event
from polystream.domain.reads import AccountReader, SubscriptionStatus
from polystream.settings import PostgresSettings, Settings
from polystream.sinks.memory_accounts import InMemoryAccountStore
from polystream.sinks.ports import EventStore, Outcome, missing_prerequisite
from polystream.sinks.postgres import PostgresAccountStore, check, upgrade
from polystream.store_errors import PermanentStoreError, TransientStoreError

STORED, DUPLICATE, STALE, REJECTED = (
    ReceiptStatus.STORED,
    ReceiptStatus.DUPLICATE,
    ReceiptStatus.STALE,
    ReceiptStatus.REJECTED,
)


class AccountStore(EventStore, AccountReader, Protocol):
    """What both implementations are: the write port and the read side."""

    def set_role(self, email: str, role: str) -> str | None: ...


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_settings(settings: Settings) -> Iterator[PostgresSettings]:
    """A fresh, migrated database for this test session, dropped afterwards."""
    admin = settings.postgres
    name = f"polystream_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    test_settings = admin.model_copy(update={"database": name})
    try:
        assert not check(test_settings)
        upgrade(test_settings)
        yield test_settings
    finally:
        with psycopg.connect(admin.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(pg: PostgresSettings) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE users, subscriptions, payments, preferences, ratings, processed_events"
        )


StoreFactory = Callable[[], AccountStore]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.stack)])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Makes an empty store; for PostgreSQL, a new one empties the database again."""
    if request.param == "memory":
        yield InMemoryAccountStore
        return
    pg: PostgresSettings = request.getfixturevalue("pg_settings")
    opened: list[PostgresAccountStore] = []

    def fresh() -> AccountStore:
        _truncate(pg)
        store = PostgresAccountStore(pg)
        opened.append(store)
        return store

    yield fresh
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> AccountStore:
    return make_store()


# --- event builders ------------------------------------------------------------------------


def at(minutes: float) -> datetime:
    return EXAMPLE_TIME + timedelta(minutes=minutes)


def ev(event_type: str, t: float = 0, **fields: Any) -> Envelope[Any]:
    return example_event(event_type, occurred_at=at(t), **fields)


def registered(user: str, t: float = 0, email: str | None = None, **fields: Any) -> Envelope[Any]:
    return ev("user.registered", t, user_id=user, email=email or f"{user}@example.com", **fields)


def started(user: str, sub: str, t: float = 0, plan: str = "standard") -> Envelope[Any]:
    return ev(
        "subscription.started",
        t,
        user_id=user,
        subscription_id=sub,
        plan=plan,
        period_start=at(t),
        period_end=at(t) + timedelta(days=30),
    )


def canceled(user: str, sub: str, t: float = 0) -> Envelope[Any]:
    return ev("subscription.canceled", t, user_id=user, subscription_id=sub, ends_at=at(t))


def paid(user: str, sub: str, payment: str, t: float = 0, **fields: Any) -> Envelope[Any]:
    return ev(
        "payment.succeeded", t, user_id=user, subscription_id=sub, payment_id=payment, **fields
    )


def rated(user: str, title: str, stars: int, t: float = 0, **fields: Any) -> Envelope[Any]:
    fields.setdefault("review", None)
    return ev("rating.submitted", t, user_id=user, title_id=title, stars=stars, **fields)


def statuses(outcomes: Sequence[Outcome]) -> list[ReceiptStatus]:
    return [outcome.status for outcome in outcomes]


def apply_one(store: AccountStore, event: Envelope[Any]) -> Outcome:
    [outcome] = store.apply([event])
    return outcome


# --- users -----------------------------------------------------------------------------


def test_the_store_applies_exactly_the_postgres_event_types() -> None:
    models = {model.event_type for model in get_args(AccountPayload)}
    assert models == ACCOUNT_EVENT_TYPES == set(event_types_for(Sink.POSTGRES))


def test_other_event_types_are_refused_before_anything_is_applied(store: AccountStore) -> None:
    registered = example_event(UserRegistered)
    with pytest.raises(PermanentStoreError, match=r"flag\.set is not an account event"):
        store.apply([registered, example_event(FlagSet)])
    assert store.get_user(registered.payload.user_id) is None


def test_register_then_read(store: AccountStore) -> None:
    event = registered("u1", email="Ana.Silva@Example.com", display_name="Ana", country="PT")
    assert apply_one(store, event) == Outcome(STORED)

    user = store.get_user("u1")
    assert user is not None
    assert (user.email, user.display_name, user.country, user.birth_year) == (
        "ana.silva@example.com",
        "Ana",
        "PT",
        1990,
    )
    assert user.created_at == user.updated_at == event.occurred_at
    assert not user.erased
    credentials = store.get_user_by_email("ANA.SILVA@example.com ")
    assert credentials is not None
    assert (credentials.user_id, credentials.password_hash) == ("u1", EXAMPLE_PASSWORD_HASH)
    assert store.get_user("nobody") is None
    assert store.get_user_by_email("nobody@example.com") is None
    entry = store.get_processed_event(event.event_id)
    assert entry is not None
    assert (entry.event_type, entry.status, entry.reason) == ("user.registered", "stored", None)


def test_duplicate_delivery_changes_nothing(store: AccountStore) -> None:
    register = registered("u1")
    assert statuses(store.apply([register, register])) == [STORED, DUPLICATE]
    before = store.dump()
    assert store.apply([register]) == [Outcome(DUPLICATE)]
    # Even a rejected event stays what it was: its replay is a duplicate, not a new attempt.
    clash = registered("u2", email="u1@example.com")
    assert apply_one(store, clash) == Outcome(REJECTED, Reason.EMAIL_TAKEN)
    after_rejection = store.dump()
    assert apply_one(store, clash) == Outcome(DUPLICATE)
    assert store.dump() == after_rejection
    assert after_rejection["users"] == before["users"]


def test_email_belongs_to_one_account(store: AccountStore) -> None:
    assert statuses(store.apply([registered("u1"), registered("u2")])) == [STORED, STORED]
    outcomes = store.apply(
        [
            registered("u3", email="U1@example.com"),
            registered("u1", email="other@example.com"),
            ev("user.profile_updated", 1, user_id="u2", email="u1@example.com"),
        ]
    )
    assert outcomes == [
        Outcome(REJECTED, Reason.EMAIL_TAKEN),
        Outcome(REJECTED, Reason.USER_EXISTS),
        Outcome(REJECTED, Reason.EMAIL_TAKEN),
    ]
    assert store.get_user("u3") is None
    u2 = store.get_user("u2")
    assert u2 is not None and u2.email == "u2@example.com"
    # An email given up (changed, or erased) is free for the next account, in one batch.
    outcomes = store.apply(
        [
            ev("user.profile_updated", 2, user_id="u1", email="new-u1@example.com"),
            registered("u3", 3, email="u1@example.com"),
            ev("user.erased", 4, user_id="u2"),
            registered("u4", 5, email="u2@example.com"),
        ]
    )
    assert statuses(outcomes) == [STORED] * 4
    credentials = store.get_user_by_email("u1@example.com")
    assert credentials is not None and credentials.user_id == "u3"
    credentials = store.get_user_by_email("u2@example.com")
    assert credentials is not None and credentials.user_id == "u4"


def test_users_can_swap_emails_within_one_batch(store: AccountStore) -> None:
    store.apply([registered("a"), registered("b")])
    outcomes = store.apply(
        [
            ev("user.profile_updated", 1, user_id="a", email="tmp@example.com"),
            ev("user.profile_updated", 2, user_id="b", email="a@example.com"),
            ev("user.profile_updated", 3, user_id="a", email="b@example.com"),
        ]
    )
    assert statuses(outcomes) == [STORED] * 3
    a, b = store.get_user("a"), store.get_user("b")
    assert a is not None and a.email == "b@example.com"
    assert b is not None and b.email == "a@example.com"
    assert store.get_user_by_email("tmp@example.com") is None


def test_profile_updates_are_guarded_by_event_time(store: AccountStore) -> None:
    store.apply([registered("u1", display_name="Ana", country="PT")])
    outcomes = store.apply(
        [
            ev("user.profile_updated", 10, user_id="u1", display_name="Ana S.", country=None),
            ev("user.profile_updated", 5, user_id="u1", display_name="Old", country="ES"),
            ev("user.profile_updated", 10, user_id="nobody", country="ES"),
        ]
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(STALE, Reason.NEWER_STATE),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
    ]
    user = store.get_user("u1")
    assert user is not None
    assert (user.display_name, user.country, user.updated_at) == ("Ana S.", "PT", at(10))
    assert user.created_at == at(0)


# --- subscriptions ---------------------------------------------------------------------


def test_subscription_lifecycle_and_one_active_per_user(store: AccountStore) -> None:
    # allow_defer=False here and in the other rule tests: the rules' final verdicts, with
    # nothing held back (deferral has tests of its own below).
    store.apply([registered("u1")])
    outcomes = store.apply(
        [
            started("u1", "s1", 1),
            started("u1", "s2", 2),
            ev(
                "subscription.plan_changed",
                3,
                user_id="u1",
                subscription_id="s1",
                from_plan="standard",
                to_plan="premium",
            ),
            ev(
                "subscription.plan_changed",
                4,
                user_id="u1",
                subscription_id="s1",
                from_plan="basic",
                to_plan="standard",
            ),
            ev(
                "subscription.renewed",
                5,
                user_id="u1",
                subscription_id="s1",
                plan="premium",
                period_start=at(5),
                period_end=at(5) + timedelta(days=30),
                payment_id="p1",
            ),
            ev(
                "subscription.renewed",
                4.5,
                user_id="u1",
                subscription_id="s1",
                plan="basic",
                period_start=at(4),
                period_end=at(4) + timedelta(days=30),
            ),
            started("nobody", "s9", 1),
            started("u1", "s1", 6),
        ],
        allow_defer=False,
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(REJECTED, Reason.ALREADY_SUBSCRIBED),
        Outcome(STORED),
        Outcome(REJECTED, Reason.PLAN_MISMATCH),
        Outcome(STORED),
        Outcome(STALE, Reason.NEWER_STATE),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
        Outcome(REJECTED, Reason.SUBSCRIPTION_EXISTS),
    ]
    active = store.get_active_subscription("u1")
    assert active is not None
    assert (active.subscription_id, active.plan, active.status) == ("s1", "premium", "active")
    assert (active.period_start, active.last_payment_id) == (at(5), "p1")
    assert store.get_subscription("s2") is None

    # Cancel and subscribe again in one batch: the old row must be canceled before the new
    # one is active, or the one-active-per-user index would refuse the batch.
    outcomes = store.apply(
        [
            canceled("u1", "s1", 10),
            started("u1", "s2", 11, plan="basic"),
            canceled("u1", "s1", 12),
            ev(
                "subscription.renewed",
                13,
                user_id="u1",
                subscription_id="s1",
                plan="premium",
                period_start=at(13),
                period_end=at(13) + timedelta(days=30),
            ),
            canceled("u1", "s9", 14),
            canceled("u2", "s2", 15),
        ],
        allow_defer=False,
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(STORED),
        Outcome(STALE, Reason.ALREADY_CANCELED),
        Outcome(REJECTED, Reason.SUBSCRIPTION_CANCELED),
        Outcome(REJECTED, Reason.UNKNOWN_SUBSCRIPTION),
        Outcome(REJECTED, Reason.NOT_SUBSCRIPTION_OWNER),
    ]
    s1 = store.get_subscription("s1")
    assert s1 is not None
    assert (s1.status, s1.canceled_at, s1.ends_at, s1.cancel_reason) == (
        SubscriptionStatus.CANCELED,
        at(10),
        at(10),
        "user_request",
    )
    assert [s.subscription_id for s in store.get_subscriptions("u1")] == ["s1", "s2"]
    active = store.get_active_subscription("u1")
    assert active is not None and active.subscription_id == "s2"


# --- payments --------------------------------------------------------------------------


def test_payments_need_a_live_subscription(store: AccountStore) -> None:
    store.apply([registered("u1"), started("u1", "s1", 1), registered("u2")])
    outcomes = store.apply(
        [
            paid("u1", "s1", "p1", 2),
            paid("u1", "nope", "p2", 3),
            paid("u2", "s1", "p3", 4),
            paid("u1", "s1", "p1", 5),
            ev(
                "payment.failed",
                6,
                user_id="u1",
                subscription_id="s1",
                payment_id="p4",
                failure_reason="card_declined",
            ),
            canceled("u1", "s1", 7),
            paid("u1", "s1", "p5", 8),
        ],
        allow_defer=False,
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(REJECTED, Reason.UNKNOWN_SUBSCRIPTION),
        Outcome(REJECTED, Reason.NOT_SUBSCRIPTION_OWNER),
        Outcome(REJECTED, Reason.PAYMENT_EXISTS),
        Outcome(STORED),
        Outcome(STORED),
        Outcome(REJECTED, Reason.SUBSCRIPTION_CANCELED),
    ]
    payments = store.list_payments("u1")
    assert [(p.payment_id, p.status, p.failure_reason) for p in payments] == [
        ("p1", "succeeded", None),
        ("p4", "failed", "card_declined"),
    ]
    assert (payments[0].amount_cents, payments[0].currency) == (1299, "EUR")
    assert (payments[0].card_brand, payments[0].card_last4) == ("visa", "4242")
    assert store.list_payments("u2") == []


def test_refunds(store: AccountStore) -> None:
    store.apply([registered("u1"), started("u1", "s1", 1), paid("u1", "s1", "p1", 2)])
    store.apply(
        [
            ev(
                "payment.failed",
                3,
                user_id="u1",
                subscription_id="s1",
                payment_id="p2",
                failure_reason="card_declined",
            )
        ]
    )

    def refund(payment: str, t: float, amount: int = 1299, **fields: Any) -> Envelope[Any]:
        return ev(
            "payment.refunded",
            t,
            user_id="u1",
            subscription_id="s1",
            payment_id=payment,
            refund_id=f"r-{payment}-{t}".replace(".", "-"),
            amount_cents=amount,
            **fields,
        )

    outcomes = store.apply(
        [
            refund("p1", 4, amount=5000),
            refund("p1", 5, currency="USD"),
            refund("p2", 6),
            refund("p9", 7),
            refund("p1", 8, amount=500),
            refund("p1", 9),
        ],
        allow_defer=False,
    )
    assert outcomes == [
        Outcome(REJECTED, Reason.REFUND_TOO_LARGE),
        Outcome(REJECTED, Reason.REFUND_CURRENCY),
        Outcome(REJECTED, Reason.PAYMENT_NOT_SUCCEEDED),
        Outcome(REJECTED, Reason.UNKNOWN_PAYMENT),
        Outcome(STORED),
        Outcome(REJECTED, Reason.ALREADY_REFUNDED),
    ]
    [p1, _] = store.list_payments("u1")
    assert (p1.status, p1.refunded_cents, p1.refunded_at, p1.refund_reason) == (
        "refunded",
        500,
        at(8),
        "requested_by_customer",
    )


def _text_values(dump: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, str]]:
    for table, rows in dump.items():
        for row in rows:
            for column, value in row.items():
                if isinstance(value, str):
                    yield f"{table}.{column}", value


def test_no_card_number_is_stored(store: AccountStore, request: pytest.FixtureRequest) -> None:
    events = [registered("u1"), started("u1", "s1", 1)]
    for n in range(20):
        events.append(
            paid(
                "u1",
                "s1",
                f"p{n}",
                2 + n,
                card_token=f"tok_{uuid.uuid4().hex}",
                card_last4=f"{n:04d}",
                card_brand="mastercard",
            )
        )
    assert set(statuses(store.apply(events))) == {STORED}
    scanned = dict(_text_values(store.dump()))
    if isinstance(store, PostgresAccountStore):
        # Every text-like column of every table, not just those the dump knows about.
        pg: PostgresSettings = request.getfixturevalue("pg_settings")
        scanned = _every_text_column(pg)
    assert any(name.startswith("payments.") for name in scanned)
    assert [name for name, value in scanned.items() if find_card_data(value)] == []
    for name in scanned:
        assert not any(word in name for word in ("card_number", "cvv", "cvc", "pan")), name


def _every_text_column(pg: PostgresSettings) -> dict[str, str]:
    found: dict[str, str] = {}
    with psycopg.connect(pg.dsn()) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
            " AND data_type IN ('text', 'character varying', 'character', 'ARRAY')"
        ).fetchall()
        for table, column in columns:
            rows = conn.execute(f'SELECT "{column}"::text FROM "{table}"').fetchall()
            for n, (value,) in enumerate(rows):
                if value is not None:
                    found[f"{table}.{column}#{n}"] = value
    return found


# --- preferences and ratings -------------------------------------------------------------


def test_preferences_keep_the_newest_snapshot(store: AccountStore) -> None:
    store.apply([registered("u1")])
    outcomes = store.apply(
        [
            ev("preferences.updated", 10, user_id="u1", genres=["comedy"], subtitles=False),
            ev("preferences.updated", 5, user_id="u1", genres=["horror", "war"]),
            ev("preferences.updated", 5, user_id="nobody"),
        ]
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(STALE, Reason.NEWER_STATE),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
    ]
    preferences = store.get_preferences("u1")
    assert preferences is not None
    assert (preferences.genres, preferences.subtitles, preferences.updated_at) == (
        ("comedy",),
        False,
        at(10),
    )
    assert preferences.languages == ("pt-BR", "en")
    assert apply_one(store, ev("preferences.updated", 11, user_id="u1", genres=[])) == Outcome(
        STORED
    )
    preferences = store.get_preferences("u1")
    assert preferences is not None and preferences.genres == ()


def test_ratings_upsert_and_retract_with_event_time_guard(store: AccountStore) -> None:
    store.apply([registered("u1"), registered("u2")])
    outcomes = store.apply(
        [
            rated("u1", "t1", 3, 1),
            rated("u1", "t1", 5, 3, review="Better the second time."),
            rated("u1", "t1", 1, 2),
            rated("u2", "t1", 4, 1),
            rated("u1", "t2", 2, 1),
            rated("nobody", "t1", 5, 1),
        ],
        allow_defer=False,
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(STORED),
        Outcome(STALE, Reason.NEWER_STATE),
        Outcome(STORED),
        Outcome(STORED),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
    ]
    assert [(r.title_id, r.stars, r.review) for r in store.list_ratings("u1")] == [
        ("t1", 5, "Better the second time."),
        ("t2", 2, None),
    ]
    assert (store.get_rating_stats("t1").count, store.get_rating_stats("t1").total) == (2, 9)

    retract = ev("rating.retracted", 4, user_id="u1", title_id="t1")
    outcomes = store.apply(
        [
            retract,
            rated("u1", "t1", 4, 3.5),  # submitted before the retraction, delivered after
            ev("rating.retracted", 3.9, user_id="u1", title_id="t2"),
            ev("rating.retracted", 0.5, user_id="u1", title_id="t2"),
            ev("rating.retracted", 1, user_id="u2", title_id="t-never-rated"),
        ]
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(STALE, Reason.NEWER_STATE),
        Outcome(STORED),
        Outcome(STALE, Reason.NEWER_STATE),
        Outcome(STORED),
    ]
    assert store.list_ratings("u1") == []
    assert store.get_rating_stats("t1").count == 1
    assert store.get_rating_stats("t2").count == 0
    assert store.get_rating_stats("t2").mean is None
    assert apply_one(store, rated("u1", "t1", 2, 5)) == Outcome(STORED)
    assert store.list_rating_stats()["t1"].total == 6
    assert apply_one(store, rated("u2", "t-never-rated", 3, 0.5)) == Outcome(
        STALE, Reason.NEWER_STATE
    )


# --- erasure ---------------------------------------------------------------------------


def test_erasure_anonymises_and_keeps_referential_integrity(store: AccountStore) -> None:
    store.apply(
        [
            registered("u1"),
            ev("preferences.updated", 1, user_id="u1"),
            rated("u1", "t1", 4, 2, review="Loved it."),
            started("u1", "s1", 3),
            paid("u1", "s1", "p1", 4),
        ]
    )
    # Rows the erasing batch never mentions must be anonymised too.
    erase = ev("user.erased", 10, user_id="u1")
    outcomes = store.apply(
        [
            rated("u1", "t2", 5, 9, review="Also good."),
            erase,
            ev("user.profile_updated", 11, user_id="u1", display_name="Back"),
            ev("preferences.updated", 12, user_id="u1"),
            rated("u1", "t3", 5, 13),
            started("u1", "s2", 14),
            ev("user.erased", 15, user_id="u1"),
            ev("user.erased", 15, user_id="nobody"),
        ]
    )
    assert outcomes == [
        Outcome(STORED),
        Outcome(STORED),
        Outcome(REJECTED, Reason.USER_ERASED),
        Outcome(REJECTED, Reason.USER_ERASED),
        Outcome(REJECTED, Reason.USER_ERASED),
        Outcome(REJECTED, Reason.USER_ERASED),
        Outcome(STALE, Reason.ALREADY_ERASED),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
    ]
    user = store.get_user("u1")
    assert user is not None and user.erased and user.erased_at == at(10)
    assert (user.email, user.display_name, user.country, user.birth_year) == (None,) * 4
    assert store.get_user_by_email("u1@example.com") is None
    assert store.get_preferences("u1") is None
    assert [(r.title_id, r.stars, r.review) for r in store.list_ratings("u1")] == [
        ("t1", 4, None),
        ("t2", 5, None),
    ]
    [payment] = store.list_payments("u1")
    assert payment.card_last4 == "4242"
    dump = store.dump()
    assert [row["card_token"] for row in dump["payments"]] == [None]
    assert [row["password_hash"] for row in dump["users"]] == [None]
    # The subscription stays until the billing system cancels it (account_erased).
    assert apply_one(store, canceled("u1", "s1", 16)) == Outcome(STORED)
    # And the email is free again.
    assert apply_one(store, registered("u9", 20, email="u1@example.com")) == Outcome(STORED)


# --- order across topics: deferral -------------------------------------------------------
# The sink reads three topics and Kafka orders them per partition only: an event may arrive
# before what it refers to. With allow_defer (the default) the store defers it, leaving no
# trace; the worker offers it again and, after a deadline, applies it with allow_defer=False.

WAITING = missing_prerequisite(Reason.WAITING)


def refunded(user: str, sub: str, payment: str, t: float = 0) -> Envelope[Any]:
    return ev(
        "payment.refunded",
        t,
        user_id=user,
        subscription_id=sub,
        payment_id=payment,
        refund_id=f"r-{payment}",
    )


def plan_changed(user: str, sub: str, t: float = 0) -> Envelope[Any]:
    return ev(
        "subscription.plan_changed",
        t,
        user_id=user,
        subscription_id=sub,
        from_plan="standard",
        to_plan="premium",
    )


def renewed(user: str, sub: str, t: float = 0) -> Envelope[Any]:
    return ev(
        "subscription.renewed",
        t,
        user_id=user,
        subscription_id=sub,
        plan="standard",
        period_start=at(t),
        period_end=at(t) + timedelta(days=30),
    )


def test_an_event_before_its_user_waits_without_a_trace(store: AccountStore) -> None:
    early = [started("u1", "s1", 1), rated("u1", "t1", 4, 2)]
    assert store.apply(early) == [missing_prerequisite(Reason.UNKNOWN_USER)] * 2
    assert all(outcome.retryable for outcome in store.apply(early))  # offered again: same
    assert store.dump() == InMemoryAccountStore().dump()  # nothing at all, not even the ledger
    assert store.get_processed_event(early[0].event_id) is None

    assert store.apply([registered("u1")]) == [Outcome(STORED)]
    assert store.apply(early) == [Outcome(STORED)] * 2
    assert store.get_active_subscription("u1") is not None
    assert [r.title_id for r in store.list_ratings("u1")] == ["t1"]
    assert store.apply(early) == [Outcome(DUPLICATE)] * 2


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (paid("u1", "s1", "p1", 1), Reason.UNKNOWN_SUBSCRIPTION),
        (
            ev("payment.failed", 1, user_id="u1", subscription_id="s1", payment_id="p1"),
            Reason.UNKNOWN_SUBSCRIPTION,
        ),
        (plan_changed("u1", "s1", 1), Reason.UNKNOWN_SUBSCRIPTION),
        (renewed("u1", "s1", 1), Reason.UNKNOWN_SUBSCRIPTION),
        (canceled("u1", "s1", 1), Reason.UNKNOWN_SUBSCRIPTION),
        (refunded("u1", "s1", "p1", 1), Reason.UNKNOWN_PAYMENT),
        (ev("rating.retracted", 1, user_id="u1", title_id="t1"), Reason.UNKNOWN_USER),
    ],
    ids=lambda value: value.type if isinstance(value, Envelope) else None,
)
def test_each_missing_prerequisite_is_retryable_then_final(
    store: AccountStore, event: Envelope[Any], reason: Reason
) -> None:
    if reason is not Reason.UNKNOWN_USER:
        store.apply([registered("u1")])
    before = store.dump()
    assert store.apply([event]) == [missing_prerequisite(reason)]
    assert store.dump() == before
    # At the deadline: the same verdict, final and recorded; a redelivery is a duplicate.
    final = store.apply([event], allow_defer=False)
    assert final == [Outcome(REJECTED, reason)] and not final[0].retryable
    entry = store.get_processed_event(event.event_id)
    assert entry is not None and (entry.status, entry.reason) == ("rejected", reason)
    recorded = store.dump()
    assert store.apply([event]) == [Outcome(DUPLICATE)]
    assert store.apply([event], allow_defer=False) == [Outcome(DUPLICATE)]
    assert store.dump() == recorded


def test_deferred_subscription_then_its_payment_and_refund_apply_in_order(
    store: AccountStore,
) -> None:
    store.apply([registered("u1")])
    history = [
        paid("u1", "s1", "p1", 2),
        refunded("u1", "s1", "p1", 3),
        plan_changed("u1", "s1", 4),
        canceled("u1", "s1", 5),
    ]
    assert (
        store.apply(history) == [missing_prerequisite(Reason.UNKNOWN_SUBSCRIPTION)] + [WAITING] * 3
    )
    assert store.apply([started("u1", "s1", 1), *history]) == [Outcome(STORED)] * 5
    [payment] = store.list_payments("u1")
    assert payment.status == "refunded"
    subscription = store.get_subscription("s1")
    assert subscription is not None
    assert (subscription.plan, subscription.status) == ("premium", "canceled")


def test_later_events_of_a_waiting_user_wait_too_on_the_same_topic_only(
    store: AccountStore,
) -> None:
    store.apply([registered("u2")])
    batch = [
        started("u1", "s1", 1),  # u1 is not registered yet
        rated("u1", "t1", 5, 2),  # nor here: waits on its own account
        paid("u1", "s1", "p1", 3),  # would find s1 if it were applied first: must wait
        registered("u1", 4),  # another topic: goes on (it is what the others wait for)
        rated("u1", "t1", 2, 5),  # behind the deferred rating of the same stream
        ev("preferences.updated", 6, user_id="u1"),  # users topic: not held back
        started("u2", "s2", 7),  # another user: not held back
        ev("user.profile_updated", 8, user_id="nobody"),  # same partition as its registration
    ]
    outcomes = store.apply(batch)
    assert outcomes == [
        missing_prerequisite(Reason.UNKNOWN_USER),
        missing_prerequisite(Reason.UNKNOWN_USER),
        WAITING,
        Outcome(STORED),
        WAITING,
        Outcome(STORED),
        Outcome(STORED),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
    ]
    assert not outcomes[-1].retryable
    assert store.get_active_subscription("u1") is None and store.list_ratings("u1") == []
    # Offered again, first, as the worker does: in their order, with nothing overtaken.
    again = [event for event, outcome in zip(batch, outcomes, strict=True) if outcome.retryable]
    assert store.apply(again) == [Outcome(STORED)] * 4
    assert [(r.title_id, r.stars) for r in store.list_ratings("u1")] == [("t1", 2)]
    assert [p.payment_id for p in store.list_payments("u1")] == ["p1"]


def test_deferral_holds_on_the_one_event_per_savepoint_path(store: AccountStore) -> None:
    # An email swap inside one batch sends PostgreSQL down its per-event savepoint path.
    store.apply([registered("a"), registered("b")])

    def email(user: str, address: str, t: float) -> Envelope[Any]:
        return ev("user.profile_updated", t, user_id=user, email=address)

    batch = [
        email("a", "tmp@example.com", 1),
        started("c", "sc", 1),
        email("b", "a@example.com", 2),
        paid("c", "sc", "pc", 2),
        email("a", "b@example.com", 3),
    ]
    assert store.apply(batch) == [
        Outcome(STORED),
        missing_prerequisite(Reason.UNKNOWN_USER),
        Outcome(STORED),
        WAITING,
        Outcome(STORED),
    ]
    assert store.get_processed_event(batch[1].event_id) is None
    assert store.get_processed_event(batch[3].event_id) is None
    # And without deferral, on the same path: final and recorded.
    swap_back = [
        email("a", "tmp@example.com", 4),
        started("d", "sd", 4),
        email("b", "b@example.com", 5),
        paid("d", "sd", "pd", 5),
        email("a", "a@example.com", 6),
    ]
    assert store.apply(swap_back, allow_defer=False) == [
        Outcome(STORED),
        Outcome(REJECTED, Reason.UNKNOWN_USER),
        Outcome(STORED),
        Outcome(REJECTED, Reason.UNKNOWN_SUBSCRIPTION),
        Outcome(STORED),
    ]
    entry = store.get_processed_event(swap_back[3].event_id)
    assert entry is not None and entry.reason == Reason.UNKNOWN_SUBSCRIPTION


def test_an_erased_user_is_final_not_deferred(store: AccountStore) -> None:
    store.apply([registered("u1"), ev("user.erased", 1, user_id="u1")])
    late = [started("u1", "s1", 2), rated("u1", "t1", 3, 2)]
    assert store.apply(late) == [Outcome(REJECTED, Reason.USER_ERASED)] * 2
    assert store.apply(late) == [Outcome(DUPLICATE)] * 2


def test_without_deferral_the_verdicts_are_unchanged(make_store: StoreFactory) -> None:
    """allow_defer=False gives, event for event, the verdicts of the rules alone."""
    events = [event for event, _ in scenario(12, prefix="f")]
    rng = random.Random(5)
    rng.shuffle(events)  # plenty of missing prerequisites
    store = make_store()
    outcomes = store.apply(events, allow_defer=False)
    reference = AccountState()
    assert outcomes == [reference.apply(event) for event in events]
    assert not any(outcome.retryable for outcome in outcomes)
    assert store.dump() == reference.dump()
    assert len(store.dump()["processed_events"]) == len({e.event_id for e in events})


def test_only_the_documented_reasons_are_retryable(make_store: StoreFactory) -> None:
    events = [event for event, _ in scenario(12, prefix="q")]
    random.Random(9).shuffle(events)
    outcomes = make_store().apply(events)
    reasons = {outcome.reason for outcome in outcomes if outcome.retryable}
    assert reasons and reasons <= DEFERRABLE_REASONS
    assert all(outcome.status is REJECTED for outcome in outcomes if outcome.retryable)


# A property: whatever the interleaving of the topics (each stream in its own order), with
# deferred events offered again first in the next batch, as the worker does, and once more at
# the end, the store ends in the state of the history applied in its own order.


@st.composite
def account_histories(draw: st.DrawFn) -> list[Envelope[Any]]:
    """Per-user histories over the three topics, in an order where each event applies.
    Nothing whose verdict depends on another *user's* partition (an email taken, an erasure
    racing a rating): those depend on the interleaving by nature, not on deferral."""
    events: list[Envelope[Any]] = []
    for n in range(draw(st.integers(1, 4))):
        u, t = f"h{n}", float(n)
        s1, s2 = f"{u}-s1", f"{u}-s2"
        events.append(registered(u, t))
        steps = draw(st.lists(st.sampled_from(["profile", "prefs", "rate", "retract"]), max_size=4))
        billing = draw(st.integers(0, 4))
        titles = ["t1", "t2"]
        for i, step in enumerate(steps):
            when = t + 1 + i
            title = titles[i % 2]
            if step == "profile":
                events.append(ev("user.profile_updated", when, user_id=u, country="FR"))
            elif step == "prefs":
                events.append(ev("preferences.updated", when, user_id=u))
            elif step == "rate":
                events.append(rated(u, title, 1 + (n + i) % 5, when))
            else:
                events.append(ev("rating.retracted", when, user_id=u, title_id=title))
        chain = [
            started(u, s1, t + 10),
            paid(u, s1, f"{s1}-p1", t + 11),
            refunded(u, s1, f"{s1}-p1", t + 12),
            plan_changed(u, s1, t + 13),
            canceled(u, s1, t + 14),
            started(u, s2, t + 15),
            paid(u, s2, f"{s2}-p1", t + 16),
        ]
        events.extend(chain[: 2 + billing])
    return events


def topic_streams(events: Sequence[Envelope[Any]]) -> list[list[Envelope[Any]]]:
    """The events per partition: every account topic is keyed by user id."""
    streams: dict[tuple[str, str], list[Envelope[Any]]] = {}
    for event in events:
        partition = (topic_of(event.type).value, event.payload.user_id)
        streams.setdefault(partition, []).append(event)
    return list(streams.values())


def interleave(streams: Sequence[list[Envelope[Any]]], rng: random.Random) -> list[Envelope[Any]]:
    """A random merge that keeps each stream's order (what a consumer of several partitions
    and topics may see)."""
    queues = [list(stream) for stream in streams if stream]
    merged: list[Envelope[Any]] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return merged


def deliver_like_the_worker(
    store: EventStore, events: Sequence[Envelope[Any]], rng: random.Random
) -> list[Envelope[Any]]:
    """Random batches, deferred events first in the next batch, then offered again until
    nothing moves; returns what was still waiting then (applied with allow_defer=False)."""
    waiting: list[Envelope[Any]] = []
    position = 0
    while position < len(events) or waiting:
        size = rng.randint(1, 6)
        fresh = list(events[position : position + size])
        position += len(fresh)
        batch = waiting + fresh
        outcomes = store.apply(batch)
        still = [e for e, o in zip(batch, outcomes, strict=True) if o.retryable]
        if not fresh and len(still) == len(waiting):
            store.apply(still, allow_defer=False)
            return still
        waiting = still
    return []


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=account_histories(), rng=st.randoms(use_true_random=False))
def test_any_interleaving_of_the_topics_ends_in_the_same_state(
    make_store: StoreFactory, events: list[Envelope[Any]], rng: random.Random
) -> None:
    reference = InMemoryAccountStore()
    assert {o.status for o in reference.apply(events)} <= {STORED}
    delivered = interleave(topic_streams(events), rng)
    store = make_store()
    assert deliver_like_the_worker(store, delivered, rng) == []
    assert store.dump() == reference.dump()


# --- batches, order and replay -----------------------------------------------------------


def scenario(users: int, prefix: str = "m") -> list[tuple[Envelope[Any], ReceiptStatus]]:
    """Per-user histories with every kind of outcome, interleaved round-robin (as a sink
    sees several keys of one partition), each paired with the status it must get."""
    histories: list[list[tuple[Envelope[Any], ReceiptStatus]]] = []
    for i in range(users):
        u, s, t0 = f"{prefix}{i}", f"{prefix}{i}-s", float(i)
        register = registered(u, t0)
        h = [
            (register, STORED),
            (ev("user.profile_updated", t0 + 1, user_id=u, country="FR"), STORED),
            (ev("preferences.updated", t0 + 2, user_id=u), STORED),
            (started(u, s, t0 + 3), STORED),
            (paid(u, s, f"{s}-p1", t0 + 4), STORED),
            (rated(u, f"title-{i % 7}", 1 + i % 5, t0 + 5, review=f"Review {i}."), STORED),
        ]
        kind = i % 5
        if kind == 0:
            h += [
                (ev("user.profile_updated", t0 + 0.5, user_id=u, country="DE"), STALE),
                (ev("preferences.updated", t0 + 1.5, user_id=u), STALE),
            ]
        elif kind == 1:
            h += [
                (registered(f"{u}-twin", t0 + 6, email=f"{u}@example.com"), REJECTED),
                (paid(u, f"{s}-x", f"{s}-p2", t0 + 6), REJECTED),
            ]
        elif kind == 2:
            h += [
                (canceled(u, s, t0 + 6), STORED),
                (paid(u, s, f"{s}-p2", t0 + 7), REJECTED),
                (started(u, f"{s}2", t0 + 8, plan="premium"), STORED),
                (paid(u, f"{s}2", f"{s}-p3", t0 + 9), STORED),
            ]
        elif kind == 3:
            plan_change = ev(
                "subscription.plan_changed",
                t0 + 7,
                user_id=u,
                subscription_id=s,
                from_plan="standard",
                to_plan="basic",
            )
            h += [
                (started(u, f"{s}2", t0 + 6), REJECTED),
                (plan_change, STORED),
                (plan_change, DUPLICATE),
                (
                    ev(
                        "payment.refunded",
                        t0 + 8,
                        user_id=u,
                        subscription_id=s,
                        payment_id=f"{s}-p1",
                        refund_id=f"{s}-r1",
                    ),
                    STORED,
                ),
            ]
        else:
            h += [
                (ev("rating.retracted", t0 + 6, user_id=u, title_id=f"title-{i % 7}"), STORED),
                (rated(u, f"title-{i % 7}", 5, t0 + 5.5), STALE),
                (ev("user.erased", t0 + 9, user_id=u), STORED),
                (ev("preferences.updated", t0 + 10, user_id=u), REJECTED),
                (registered(f"{u}-new", t0 + 11, email=f"{u}@example.com"), STORED),
            ]
        if i % 7 == 0:
            h.append((register, DUPLICATE))
        histories.append(h)
    interleaved: list[tuple[Envelope[Any], ReceiptStatus]] = []
    for step in range(max(len(h) for h in histories)):
        interleaved.extend(h[step] for h in histories if step < len(h))
    return interleaved


def test_mixed_batch_of_500_applies_in_order(make_store: StoreFactory) -> None:
    pairs = scenario(60)[:500]
    assert len(pairs) == 500
    events = [event for event, _ in pairs]

    store = make_store()
    outcomes = store.apply(events)
    assert statuses(outcomes) == [expected for _, expected in pairs]
    # Only the payments for a subscription that does not exist (yet) wait, unrecorded.
    waiting = [event for event, outcome in zip(events, outcomes, strict=True) if outcome.retryable]
    assert waiting and {event.type for event in waiting} == {"payment.succeeded"}
    unique = len({e.event_id for e in events})
    assert len(store.dump()["processed_events"]) == unique - len(waiting)
    # At the worker's deadline they are final, and recorded.
    assert store.apply(waiting, allow_defer=False) == [
        Outcome(REJECTED, Reason.UNKNOWN_SUBSCRIPTION)
    ] * len(waiting)
    in_one_batch = store.dump()
    assert len(in_one_batch["processed_events"]) == unique

    # The same events one by one, and in uneven batches, end in exactly the same state.
    for batch_size in (1, 37):
        store = make_store()
        outcomes = []
        for start in range(0, len(events), batch_size):
            outcomes += store.apply(events[start : start + batch_size])
        assert statuses(outcomes) == [expected for _, expected in pairs]
        late = [event for event, outcome in zip(events, outcomes, strict=True) if outcome.retryable]
        assert late == waiting
        store.apply(late, allow_defer=False)
        assert store.dump() == in_one_batch


def test_replaying_everything_changes_nothing(store: AccountStore) -> None:
    events = [event for event, _ in scenario(25, prefix="r")]
    for start in range(0, len(events), 50):
        # Final verdicts (a deferred event is not recorded, so its replay would not be a
        # duplicate but a new attempt).
        store.apply(events[start : start + 50], allow_defer=False)
    first = store.dump()
    assert first["users"] and first["ratings"] and first["payments"]
    assert set(statuses(store.apply(events))) == {DUPLICATE}
    for start in range(0, len(events), 7):
        assert set(statuses(store.apply(events[start : start + 7]))) == {DUPLICATE}
    assert store.dump() == first


@pytest.mark.stack
def test_postgres_and_memory_end_in_the_same_state(pg_settings: PostgresSettings) -> None:
    events = [event for event, _ in scenario(40, prefix="x")]
    memory = InMemoryAccountStore()
    _truncate(pg_settings)
    postgres = PostgresAccountStore(pg_settings)
    try:
        for start in range(0, len(events), 64):
            batch = events[start : start + 64]
            assert postgres.apply(batch) == memory.apply(batch)
        assert postgres.dump() == memory.dump()
        for user_id in ("x0", "x1", "x2", "x4", "x4-new"):
            assert postgres.get_user(user_id) == memory.get_user(user_id)
            assert postgres.get_subscriptions(user_id) == memory.get_subscriptions(user_id)
            assert postgres.list_payments(user_id) == memory.list_payments(user_id)
            assert postgres.get_preferences(user_id) == memory.get_preferences(user_id)
            assert postgres.list_ratings(user_id) == memory.list_ratings(user_id)
        assert postgres.list_rating_stats() == memory.list_rating_stats()
    finally:
        postgres.close()


# --- errors ------------------------------------------------------------------------------


def test_an_event_no_store_can_hold_is_a_permanent_error(store: AccountStore) -> None:
    good = registered("u1")
    # The contract refuses NUL now; an event from before that rule can still be on a topic,
    # so the store keeps refusing it on its own (built here without validation).
    valid = registered("u2")
    bad = valid.model_copy(
        update={"payload": valid.payload.model_copy(update={"display_name": "Bad\x00Name"})}
    )
    with pytest.raises(PermanentStoreError) as raised:
        store.apply([good, bad])
    assert raised.value.event_id == bad.event_id
    assert "NUL" in raised.value.reason
    # Nothing of the batch was applied: the worker retries the others, which are still new.
    assert store.get_user("u1") is None
    assert store.apply([good]) == [Outcome(STORED)]

    not_mine = ev("playback.progress")
    with pytest.raises(PermanentStoreError) as raised:
        store.apply([not_mine])
    assert raised.value.event_id == not_mine.event_id


def test_every_account_event_type_has_a_rule() -> None:
    state = AccountState()
    for event_type in event_types_for(Sink.POSTGRES):
        outcome = state.apply(ev(event_type))
        assert outcome.status in {STORED, STALE, REJECTED}, event_type


@pytest.mark.stack
def test_unreachable_server_is_a_transient_error(pg_settings: PostgresSettings) -> None:
    nowhere = pg_settings.model_copy(update={"port": 1, "connect_timeout_s": 1.0})
    store = PostgresAccountStore(nowhere)  # nothing connects yet
    with pytest.raises(TransientStoreError):
        store.apply([registered("u1")])
    with pytest.raises(TransientStoreError):
        store.get_user("u1")
    store.close()


@pytest.mark.stack
def test_lost_connection_is_transient_then_recovers(pg_settings: PostgresSettings) -> None:
    _truncate(pg_settings)
    store = PostgresAccountStore(pg_settings, application_name="polystream-contract-kill")
    try:
        assert store.apply([registered("u1")]) == [Outcome(STORED)]
        with psycopg.connect(pg_settings.dsn(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'polystream-contract-kill'"
            ).fetchall()
        assert killed == [(True,)]
        batch = [registered("u2")]
        with pytest.raises(TransientStoreError):
            store.apply(batch)
        # The worker retries the same batch: a new connection, and nothing half-applied.
        assert store.apply(batch) == [Outcome(STORED)]
    finally:
        store.close()


# --- throughput (measured, reported; the floor only catches a pathological regression) -----


def throughput_events(users: int) -> list[Envelope[Any]]:
    """Eight events per user: register, preferences, subscribe, pay, renew, three ratings."""
    histories = []
    for i in range(users):
        u, s, t0 = f"b{i}", f"b{i}-s", float(i % 1000)
        histories.append(
            [
                registered(u, t0),
                ev("preferences.updated", t0 + 1, user_id=u),
                started(u, s, t0 + 2),
                paid(u, s, f"{s}-p1", t0 + 3),
                ev(
                    "subscription.renewed",
                    t0 + 4,
                    user_id=u,
                    subscription_id=s,
                    plan="standard",
                    period_start=at(t0 + 4),
                    period_end=at(t0 + 4) + timedelta(days=30),
                    payment_id=f"{s}-p1",
                ),
                rated(u, f"title-{i % 101}", 1 + i % 5, t0 + 5),
                rated(u, f"title-{(i + 1) % 101}", 1 + (i + 2) % 5, t0 + 6, review="Fine."),
                rated(u, f"title-{(i + 2) % 101}", 1 + (i + 3) % 5, t0 + 7),
            ]
        )
    # Keys interleave in blocks of 62 users (~500 events), like a partition's batch.
    events: list[Envelope[Any]] = []
    for block in range(0, users, 62):
        group = histories[block : block + 62]
        for step in range(8):
            events.extend(h[step] for h in group)
    return events


@pytest.mark.stack
@pytest.mark.slow
def test_throughput_of_500_event_batches(pg_settings: PostgresSettings) -> None:
    events = throughput_events(2500)  # 20,000 events
    _truncate(pg_settings)
    store = PostgresAccountStore(pg_settings)
    try:
        started_at = time.perf_counter()
        for start in range(0, len(events), 500):
            outcomes = store.apply(events[start : start + 500])
            assert {o.status for o in outcomes} == {STORED}
        elapsed = time.perf_counter() - started_at
    finally:
        store.close()
    rate = len(events) / elapsed
    print(f"\nPostgresAccountStore.apply: {len(events)} events in {elapsed:.2f}s = {rate:,.0f}/s")
    assert rate > 1000


def test_roles_are_granted_by_email_and_read_at_login(store: AccountStore) -> None:
    store.apply([ev("user.registered", user_id="u1", email="role@example.com")])
    credentials = store.get_user_by_email("role@example.com")
    assert credentials is not None and credentials.role == "user"
    assert store.set_role("ROLE@example.com", "operator") == "u1"
    credentials = store.get_user_by_email("role@example.com")
    assert credentials is not None and credentials.role == "operator"
    assert store.set_role("nobody@example.com", "operator") is None
    with pytest.raises(ValueError, match="role must be one of"):
        store.set_role("role@example.com", "admin")
    # Not an event-sourced field: the dump (what verify compares) does not show it.
    assert "role" not in store.dump()["users"][0]
