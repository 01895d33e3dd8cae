"""PostgreSQL specifics of the accounts store: array parameters, migrations, the constraints
the database enforces on its own, concurrent writers and the per-event fallback.

The behaviour shared with the in-memory store is in ``tests/contract``; these tests are about
what only the SQL implementation can get wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.adapt import Transformer
from psycopg.pq import Format

from polystream.domain.events import PLANS, Envelope, ReceiptStatus
from polystream.domain.examples import EXAMPLE_PASSWORD_HASH, EXAMPLE_TIME, example_event
from polystream.settings import PostgresSettings, Settings
from polystream.sinks.memory_accounts import InMemoryAccountStore
from polystream.sinks.ports import Outcome
from polystream.sinks.postgres import (
    PostgresAccountStore,
    batch_sql,
    check,
    migrate,
    store,
    upgrade,
)
from polystream.sinks.postgres.schema import metadata
from polystream.store_errors import PermanentStoreError

# --- array literals (no server needed) -------------------------------------------------


def _load_array(type_name: str, literal: str) -> list[Any]:
    oid = {"text": 1009, "timestamptz": 1185, "int8": 1016, "bool": 1000, "uuid": 2951}[type_name]
    loader = Transformer().get_loader(oid, Format.TEXT)
    loaded: list[Any] = loader.load(literal.encode())
    return loaded


# Everything an event's text can hold and PostgreSQL can store: any character but NUL (and
# lone surrogates, which pydantic refuses and UTF-8 cannot encode).
_text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
    max_size=30,
)


@given(st.lists(st.none() | _text, max_size=20))
def test_text_arrays_round_trip(values: list[str | None]) -> None:
    assert _load_array("text", batch_sql.texts(values)) == values


@given(st.lists(st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=20))
def test_number_arrays_round_trip(values: list[int | None]) -> None:
    assert _load_array("int8", batch_sql.plain(values)) == values


@given(st.lists(st.none() | st.datetimes(timezones=st.just(UTC)), max_size=20))
def test_time_arrays_round_trip(values: list[datetime | None]) -> None:
    assert _load_array("timestamptz", batch_sql.times(values)) == values


def test_uuid_and_bool_arrays() -> None:
    ids = [uuid.uuid4(), None, uuid.uuid4()]
    assert _load_array("uuid", batch_sql.plain(ids)) == ids
    assert _load_array("bool", batch_sql.bools([True, False])) == [True, False]


# --- against the server -------------------------------------------------------------------


@contextmanager
def _fresh_database(admin: PostgresSettings) -> Iterator[PostgresSettings]:
    name = f"polystream_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.model_copy(update={"database": name})
    finally:
        with psycopg.connect(admin.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg(settings: Settings) -> Iterator[PostgresSettings]:
    with _fresh_database(settings.postgres) as database:
        yield database


@pytest.fixture
def migrated(pg: PostgresSettings) -> PostgresSettings:
    upgrade(pg)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE users, subscriptions, payments, preferences, ratings, processed_events"
        )
    return pg


@pytest.mark.stack
def test_concurrent_upgrades_then_schema_equals_metadata(settings: Settings) -> None:
    with _fresh_database(settings.postgres) as pg:
        _upgrade_concurrently_and_compare(pg)


def _upgrade_concurrently_and_compare(pg: PostgresSettings) -> None:
    assert not check(pg)
    # Workers are separate processes (Alembic's context is process-global), all starting at
    # once on an empty database: the advisory lock lets one migrate while the others wait.
    env = {
        **os.environ,
        "POLYSTREAM_POSTGRES__DATABASE": pg.database,
        "POLYSTREAM_POSTGRES__HOST": pg.host,
        "POLYSTREAM_POSTGRES__PORT": str(pg.port),
    }
    command = [sys.executable, "-m", "polystream.sinks.postgres", "upgrade"]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(3)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output.decode()
    assert check(pg)
    assert migrate.current_revision(pg) == migrate.head_revision()

    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(pg.sqlalchemy_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


@pytest.mark.stack
def test_plans_are_seeded_from_the_contract(migrated: PostgresSettings) -> None:
    with psycopg.connect(migrated.dsn()) as conn:
        rows = conn.execute(
            "SELECT code, name, price_cents, currency, max_streams, max_resolution FROM plans"
        ).fetchall()
    assert sorted(rows) == sorted(
        (p.code.value, p.name, p.price_cents, p.currency, p.max_streams, p.max_resolution)
        for p in PLANS.values()
    )


_NOW = "'2025-01-15T12:00:00Z'"
_USER = (
    "INSERT INTO users (user_id, email, display_name, country, birth_year, password_hash,"
    " created_at, updated_at) VALUES ('u1', 'u1@example.com', 'U', 'PT', 1990, %s,"
    f" {_NOW}, {_NOW})"
)
_SUB = (
    "INSERT INTO subscriptions (subscription_id, user_id, plan, status, period_start,"
    " period_end, started_at, updated_at) VALUES ('{sub}', 'u1', 'basic', 'active',"
    f" {_NOW}, '2025-02-15T12:00:00Z', {_NOW}, {_NOW})"
)
_PAYMENT = (
    "INSERT INTO payments (payment_id, subscription_id, user_id, amount_cents, currency,"
    " card_token, card_brand, card_last4, status, occurred_at, updated_at)"
    " VALUES ('p{n}', 's1', 'u1', {amount}, 'EUR', '{token}', 'visa', '{last4}', 'succeeded',"
    f" {_NOW}, {_NOW})"
)


@pytest.mark.stack
@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (_SUB.format(sub="s2"), psycopg.errors.UniqueViolation),  # second active subscription
        (_PAYMENT.format(n=1, amount=0, token="tok_abcdefgh", last4="4242"), "amount_positive"),
        (_PAYMENT.format(n=2, amount=5, token="4111111111111111", last4="1111"), "token_shape"),
        (_PAYMENT.format(n=3, amount=5, token="tok_abcdefgh", last4="42a2"), "last4_digits"),
        ("UPDATE users SET password_hash = 'hunter2'", "password_hash_argon2id"),
        ("UPDATE users SET email = 'U1@example.com'", "email_lowercase"),
        (f"UPDATE users SET erased_at = {_NOW}", "erasure_complete"),
        (
            "INSERT INTO ratings (user_id, title_id, stars, updated_at)"
            f" VALUES ('u1', 't1', 6, {_NOW})",
            "stars_range",
        ),
        (
            "INSERT INTO ratings (user_id, title_id, stars, updated_at)"
            f" VALUES ('nobody', 't1', 3, {_NOW})",
            psycopg.errors.ForeignKeyViolation,
        ),
        ("UPDATE subscriptions SET plan = 'gold'", psycopg.errors.ForeignKeyViolation),
    ],
)
def test_the_database_enforces_the_invariants_itself(
    migrated: PostgresSettings, statement: str, error: type[Exception] | str
) -> None:
    with psycopg.connect(migrated.dsn(), autocommit=True) as conn:
        conn.execute(_USER, (EXAMPLE_PASSWORD_HASH,))
        conn.execute(_SUB.format(sub="s1"))
        if isinstance(error, str):
            with pytest.raises(psycopg.errors.CheckViolation) as raised:
                conn.execute(statement)
            assert (raised.value.diag.constraint_name or "").endswith(error)
        else:
            with pytest.raises(error):
                conn.execute(statement)
        # Ratings name titles that live in MongoDB: no foreign key on title_id.
        conn.execute(
            "INSERT INTO ratings (user_id, title_id, stars, updated_at)"
            f" VALUES ('u1', 'any-title', 3, {_NOW})"
        )


def _users(n: int, prefix: str) -> list[Envelope[Any]]:
    return [
        example_event(
            "user.registered",
            occurred_at=EXAMPLE_TIME,
            user_id=f"{prefix}{i}",
            email=f"{prefix}{i}@example.com",
        )
        for i in range(n)
    ]


@pytest.mark.stack
def test_two_workers_on_the_same_batch_apply_each_event_once(migrated: PostgresSettings) -> None:
    # A rebalance can hand a partition to a new worker while the old one still finishes its
    # batch: both apply the same events at the same time.
    events = _users(200, "c")
    stores = [PostgresAccountStore(migrated) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[list[Outcome]] = [[], []]

    def run(index: int) -> None:
        barrier.wait()
        results[index] = stores[index].apply(events)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for first, second in zip(*results, strict=True):
            assert {first.status, second.status} == {ReceiptStatus.STORED, ReceiptStatus.DUPLICATE}
        memory = InMemoryAccountStore()
        memory.apply(events)
        assert stores[0].dump() == memory.dump()
    finally:
        for s in stores:
            s.close()


@pytest.mark.stack
def test_an_email_swap_falls_back_to_one_event_per_savepoint(
    migrated: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = PostgresAccountStore._apply_one_by_one

    def spy(self: PostgresAccountStore, events: Any) -> list[Outcome]:
        calls.append(len(events))
        return original(self, events)

    monkeypatch.setattr(PostgresAccountStore, "_apply_one_by_one", spy)
    accounts = PostgresAccountStore(migrated)
    try:
        accounts.apply(_users(2, "w"))
        assert calls == []

        def change(user: str, email: str, minute: int) -> Envelope[Any]:
            return example_event(
                "user.profile_updated",
                occurred_at=EXAMPLE_TIME.replace(minute=minute),
                user_id=user,
                email=email,
            )

        outcomes = accounts.apply(
            [
                change("w0", "tmp@example.com", 1),
                change("w1", "w0@example.com", 2),
                change("w0", "w1@example.com", 3),
            ]
        )
        assert outcomes == [Outcome(ReceiptStatus.STORED)] * 3
        assert calls == [3]
    finally:
        accounts.close()


@pytest.mark.stack
def test_a_value_the_database_refuses_names_its_event(
    migrated: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the up-front check, PostgreSQL itself refuses the NUL character; the store
    # must still say which event it was, and apply nothing.
    monkeypatch.setattr(store, "check_batch", lambda events: None)
    good, bad = _users(1, "g")[0], _users(1, "b")[0]
    bad = bad.model_copy(
        update={"payload": bad.payload.model_copy(update={"display_name": "B\x00"})}
    )
    accounts = PostgresAccountStore(migrated)
    try:
        with pytest.raises(PermanentStoreError) as raised:
            accounts.apply([good, bad])
        assert raised.value.event_id == bad.event_id
        assert accounts.get_user(good.payload.user_id) is None
        assert accounts.apply([good]) == [Outcome(ReceiptStatus.STORED)]
    finally:
        accounts.close()
