"""An isolated deployment over the shared topics: its own consumer groups, PostgreSQL and
MongoDB databases, Redis key prefix and audit indices, so several can drain the same events side
by side (and be dropped afterwards) without touching the default deployment's data."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import psycopg
import redis
from pymongo import MongoClient

from polystream.settings import Settings, load_settings

#: A drill replays simulated events whose ids date from the simulator's calendar (months or
#: years ago): with the default retention, an auditor restarted by the drill would delete the
#: months it has just written, and verify would count them lost.
DRILL_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class Deployment:
    name: str  # lower-case letters, digits and dashes

    @property
    def _flat(self) -> str:
        return self.name.replace("-", "_")

    @staticmethod
    def keys_database(base: Settings) -> str:
        """The data keys' database: the base deployment's, whose producers (the drills'
        publishers, the API) sealed the records every copy reads (docs/operations.md,
        "Kafka: crypto-shredding")."""
        return base.privacy.keys_database or base.postgres.database

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(update={
            "privacy": base.privacy.model_copy(
                update={"keys_database": self.keys_database(base)}),
            "postgres": base.postgres.model_copy(update={"database": self._flat}),
            "mongo": base.mongo.model_copy(update={"database": self._flat}),
            "redis": base.redis.model_copy(update={"key_prefix": self._flat}),
            "kafka": base.kafka.model_copy(update={"group_prefix": self.name}),
            "opensearch": base.opensearch.model_copy(
                update={"index_prefix": f"{self.name}-audit",
                        "retention_days": DRILL_RETENTION_DAYS}),
        })

    def env(self, base: Settings | None = None) -> dict[str, str]:
        """The process environment that points a `polystream` command at this deployment
        (``base``: the settings it is a copy of; None = those of this process)."""
        return {**os.environ,
                "POLYSTREAM_PRIVACY__KEYS_DATABASE": self.keys_database(
                    base if base is not None else load_settings()),
                "POLYSTREAM_POSTGRES__DATABASE": self._flat,
                "POLYSTREAM_MONGO__DATABASE": self._flat,
                "POLYSTREAM_REDIS__KEY_PREFIX": self._flat,
                "POLYSTREAM_KAFKA__GROUP_PREFIX": self.name,
                "POLYSTREAM_OPENSEARCH__INDEX_PREFIX": f"{self.name}-audit",
                "POLYSTREAM_OPENSEARCH__RETENTION_DAYS": str(DRILL_RETENTION_DAYS)}

    def create(self, base: Settings) -> None:
        with psycopg.connect(base.postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._flat}"')

    def drop(self, base: Settings) -> None:
        """Remove everything of this deployment (best effort, every part tried)."""
        with contextlib.suppress(Exception), psycopg.connect(base.postgres.dsn(),
                                                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self._flat}" WITH (FORCE)')
        with contextlib.suppress(Exception):
            client: MongoClient[dict[str, object]] = MongoClient(
                base.mongo.url, serverSelectionTimeoutMS=5000)
            client.drop_database(self._flat)
            client.close()
        with contextlib.suppress(Exception):
            r = redis.Redis.from_url(base.redis.url)
            for key in r.scan_iter(f"{self._flat}:*", count=5000):
                r.delete(key)
            r.close()
        if base.opensearch.enabled:
            with contextlib.suppress(Exception):
                from polystream.audit.opensearch import OpenSearchAuditIndex

                OpenSearchAuditIndex(self.settings(base).opensearch).drop_everything()
