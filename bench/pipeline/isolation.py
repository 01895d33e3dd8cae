"""Per-run names for everything the workers and the API write, and their cleanup.

The processes under test are started the way users start them (``polystream worker all``,
``polystream api serve``) and are pointed at the run's own names through settings only:

* PostgreSQL: ``POLYSTREAM_POSTGRES__DATABASE`` = ``bench_<tag>`` (created here, migrated by
  the worker itself, dropped afterwards);
* FerretDB: ``POLYSTREAM_MONGO__DATABASE`` = ``bench_<tag>`` (dropped afterwards);
* Redis: ``POLYSTREAM_REDIS__DB`` = a logical database that was empty when the run claimed it
  (the stores' key prefix is not a setting); its keys are deleted between phases and at the
  end (SCAN + UNLINK);
* OpenSearch: ``POLYSTREAM_OPENSEARCH__INDEX_PREFIX`` = ``bench-<tag>`` (indices, template and
  scripts of that prefix dropped afterwards);
* Kafka consumer groups: ``POLYSTREAM_KAFKA__GROUP_PREFIX`` = ``bench-<tag>``, positioned at
  the topics' end before the workers start, deleted afterwards.

What cannot be isolated by a setting: the topic names. The run's events are published to the
shared ``polystream.*`` topics (as the simulator and the API always do) and stay there; see
:func:`default_groups_in_use`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import psycopg
import redis
from psycopg import errors as pgerrors
from pymongo import MongoClient

from polystream.settings import PostgresSettings, Settings

#: Logical Redis databases tried, highest first (Redis has 16 unless configured otherwise);
#: database 0 is where users keep their data, so it is never used.
REDIS_DATABASES: Final = range(15, 0, -1)
REDIS_CLAIM_KEY: Final = "polystream-bench:claim"
DROP_ATTEMPTS: Final = 10


@dataclass(frozen=True, slots=True)
class Names:
    """Where one phase's processes keep their data."""

    tag: str
    redis_db: int
    #: The data keys' database (crypto-shredding): the base deployment's, as for the chaos
    #: drills' copies, so that keys outlive the phase's own database (the naive baseline
    #: opens the full phase's records after it was dropped).
    keys_database: str

    @property
    def database(self) -> str:
        return f"bench_{self.tag}"

    @property
    def index_prefix(self) -> str:
        return f"bench-{self.tag}"

    @property
    def group_prefix(self) -> str:
        return f"bench-{self.tag}"

    def env(self) -> dict[str, str]:
        """Settings for a child process (environment variables win over ``.env``)."""
        return {
            "POLYSTREAM_POSTGRES__DATABASE": self.database,
            "POLYSTREAM_MONGO__DATABASE": self.database,
            "POLYSTREAM_REDIS__DB": str(self.redis_db),
            "POLYSTREAM_OPENSEARCH__INDEX_PREFIX": self.index_prefix,
            "POLYSTREAM_KAFKA__GROUP_PREFIX": self.group_prefix,
            "POLYSTREAM_PRIVACY__KEYS_DATABASE": self.keys_database,
        }

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(
            update={
                "postgres": base.postgres.model_copy(update={"database": self.database}),
                "mongo": base.mongo.model_copy(update={"database": self.database}),
                "redis": base.redis.model_copy(update={"db": self.redis_db}),
                "opensearch": base.opensearch.model_copy(
                    update={"index_prefix": self.index_prefix}
                ),
                "kafka": base.kafka.model_copy(update={"group_prefix": self.group_prefix}),
                "privacy": base.privacy.model_copy(
                    update={"keys_database": self.keys_database}),
            }
        )


def redis_client(settings: Settings, db: int) -> redis.Redis:
    return redis.Redis(
        host=settings.redis.host,
        port=settings.redis.port,
        db=db,
        password=(
            settings.redis.password.get_secret_value() if settings.redis.password else None
        ),
        socket_timeout=30,
    )


def claim_redis_db(settings: Settings, run_id: str) -> int:
    """A logical database with no key at all, marked as this run's."""
    for db in REDIS_DATABASES:
        client = redis_client(settings, db)
        try:
            if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, run_id, nx=True):
                return db
        except redis.ResponseError:  # fewer databases configured on this server
            continue
        finally:
            client.close()
    raise RuntimeError(
        "no empty Redis logical database (1-15) to run the benchmark in; the bench never "
        "writes into one that holds keys"
    )


def clear_redis_db(settings: Settings, db: int, *, keep_claim: bool) -> int:
    """Delete every key of the claimed database (it was empty when claimed)."""
    client = redis_client(settings, db)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(count=5000):
            if keep_claim and key == REDIS_CLAIM_KEY.encode():
                continue
            batch.append(key)
            if len(batch) >= 5000:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


def create_database(pg: PostgresSettings, name: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(pg: PostgresSettings, name: str) -> None:
    """Plain DROP first (it stops an autovacuum worker in that database); ``WITH (FORCE)``
    only while a connection lingers."""
    force = False
    for attempt in range(DROP_ATTEMPTS):
        try:
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"{" WITH (FORCE)" if force else ""}')
            return
        except (pgerrors.ObjectInUse, pgerrors.InsufficientPrivilege) as exc:
            if attempt == DROP_ATTEMPTS - 1:
                raise
            force = isinstance(exc, pgerrors.ObjectInUse)
            time.sleep(0.5)


def drop_mongo_database(settings: Settings, name: str) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(
        settings.mongo.url, serverSelectionTimeoutMS=5000
    )
    try:
        client.drop_database(name)
    finally:
        client.close()


def drop_audit_prefix(settings: Settings, prefix: str) -> None:
    if not settings.opensearch.enabled:
        return
    from polystream.audit.opensearch import OpenSearchAuditIndex

    index = OpenSearchAuditIndex(settings.opensearch.model_copy(update={"index_prefix": prefix}))
    try:
        index.drop_everything()
    finally:
        index.close()


@dataclass
class Workspace:
    """Every name a run created, so that one ``cleanup`` deletes all of it, also after a
    failure half-way."""

    settings: Settings
    run_id: str
    redis_db: int | None = None
    phases: list[Names] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    indices: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def phase(self, label: str) -> Names:
        if self.redis_db is None:
            self.redis_db = claim_redis_db(self.settings, self.run_id)
        else:
            clear_redis_db(self.settings, self.redis_db, keep_claim=True)
        names = Names(f"{self.run_id}_{label}", self.redis_db,
                      self.settings.privacy.keys_database or self.settings.postgres.database)
        create_database(self.settings.postgres, names.database)
        self.databases.append(names.database)
        self.phases.append(names)
        return names

    def drop_phase(self, names: Names) -> None:
        """Delete a finished phase's stores (the next phase starts from empty ones)."""
        if names not in self.phases:
            return
        self.phases.remove(names)
        with self._noting(f"dropping {names.database}"):
            drop_database(self.settings.postgres, names.database)
            self.databases.remove(names.database)
        with self._noting(f"dropping FerretDB database {names.database}"):
            drop_mongo_database(self.settings, names.database)
        with self._noting(f"dropping OpenSearch prefix {names.index_prefix}"):
            drop_audit_prefix(self.settings, names.index_prefix)
        if self.redis_db is not None:
            with self._noting(f"clearing Redis db {self.redis_db}"):
                clear_redis_db(self.settings, self.redis_db, keep_claim=True)

    def cleanup(self) -> None:
        for names in list(self.phases):
            self.drop_phase(names)
        for name in list(self.databases):
            with self._noting(f"dropping {name}"):
                drop_database(self.settings.postgres, name)
                self.databases.remove(name)
        for name in list(self.indices):
            with self._noting(f"deleting index {name}"):
                _delete_index(self.settings, name)
                self.indices.remove(name)
        if self.groups:
            from bench.pipeline.kafka_offsets import delete_groups

            with self._noting("deleting consumer groups"):
                delete_groups(self.settings, self.groups)
                self.groups.clear()
        if self.redis_db is not None:
            with self._noting(f"releasing Redis db {self.redis_db}"):
                clear_redis_db(self.settings, self.redis_db, keep_claim=False)
                self.redis_db = None

    @contextlib.contextmanager
    def _noting(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # cleanup goes on; the problem is reported with the result
            self.problems.append(f"cleanup: {what}: {type(exc).__name__}: {exc}")


def _delete_index(settings: Settings, name: str) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(settings.opensearch.url, timeout=settings.opensearch.timeout_s)
    try:
        client.indices.delete(index=name, params={"ignore_unavailable": "true"})
    finally:
        client.close()
