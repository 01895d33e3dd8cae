"""The PostgreSQL sink's store: users, plans, subscriptions, payments, preferences, ratings
and the processed-events ledger. Nothing here connects at import time."""

from polystream.sinks.postgres.migrate import check, upgrade
from polystream.sinks.postgres.store import PostgresAccountStore

__all__ = ["PostgresAccountStore", "check", "upgrade"]
