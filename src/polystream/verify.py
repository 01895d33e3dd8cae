"""Reconcile the stores against the event log.

The expected state is recomputed from the events alone, by applying them in their original
order to the in-memory stores (the reference implementations, held to the same contract tests
as the real ones). Each real store is then compared with its reference, table by table,
collection by collection, key by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polystream.domain.events import AnyEvent, Sink, event_types_for
from polystream.sinks.memory_accounts import InMemoryAccountStore
from polystream.sinks.memory_catalog import InMemoryCatalogStore
from polystream.sinks.memory_live import InMemoryLiveStore
from polystream.sinks.ports import EventStore


@dataclass
class Reference:
    accounts: InMemoryAccountStore = field(default_factory=InMemoryAccountStore)
    catalog: InMemoryCatalogStore = field(default_factory=InMemoryCatalogStore)
    live: InMemoryLiveStore = field(default_factory=InMemoryLiveStore)

    def stores(self) -> dict[Sink, EventStore]:
        return {Sink.POSTGRES: self.accounts, Sink.MONGO: self.catalog, Sink.REDIS: self.live}


def expected_state(events: Iterable[AnyEvent], *, batch: int = 1000) -> Reference:
    """Apply the events in order, each to the stores that consume it."""
    ref = Reference()
    wanted = {sink: frozenset(event_types_for(sink)) for sink in ref.stores()}
    pending: dict[Sink, list[AnyEvent]] = {sink: [] for sink in wanted}

    def flush(sink: Sink) -> None:
        if pending[sink]:
            ref.stores()[sink].apply(pending[sink], allow_defer=False)
            pending[sink] = []

    for env in events:
        for sink, types in wanted.items():
            if env.type in types:
                pending[sink].append(env)
                if len(pending[sink]) >= batch:
                    flush(sink)
    for sink in wanted:
        flush(sink)
    return ref


@dataclass
class Difference:
    store: str
    part: str
    expected: int
    actual: int
    samples: list[str]

    @property
    def ok(self) -> bool:
        return not self.samples


def _key(row: Mapping[str, Any]) -> str:
    for name in ("event_id", "_id", "user_id", "subscription_id", "payment_id"):
        if name in row:
            extra = row.get("title_id", "") if name == "user_id" else ""
            return f"{row[name]}{':' + str(extra) if extra else ''}"
    return repr(sorted(row.items()))[:120]


def compare_rows(store: str, expected: Mapping[str, Sequence[Any]],
                 actual: Mapping[str, Sequence[Any]], *, max_samples: int = 5
                 ) -> list[Difference]:
    """Compare two dumps of the form {part: [row, ...]} (rows as dicts, canonical order)."""
    out: list[Difference] = []
    for part in sorted(set(expected) | set(actual)):
        exp, act = list(expected.get(part, [])), list(actual.get(part, []))
        samples: list[str] = []
        if exp != act:
            exp_by = {_key(r): r for r in exp} if exp and isinstance(exp[0], Mapping) else {}
            act_by = {_key(r): r for r in act} if act and isinstance(act[0], Mapping) else {}
            for k in sorted(set(exp_by) - set(act_by))[:max_samples]:
                samples.append(f"missing {k}")
            for k in sorted(set(act_by) - set(exp_by))[:max_samples]:
                samples.append(f"unexpected {k}")
            for k in sorted(set(exp_by) & set(act_by)):
                if len(samples) >= max_samples * 3:
                    break
                if exp_by[k] != act_by[k]:
                    diff = {f: (exp_by[k].get(f), act_by[k].get(f))
                            for f in set(exp_by[k]) | set(act_by[k])
                            if exp_by[k].get(f) != act_by[k].get(f)}
                    samples.append(f"differs {k}: {str(diff)[:300]}")
            if not samples:
                samples.append("same rows in another order or shape")
        out.append(Difference(store, part, len(exp), len(act), samples))
    return out


def compare_live(expected: Mapping[str, tuple[str, Any, int | None]],
                 actual: Mapping[str, tuple[str, Any, int | None]], *, max_samples: int = 5
                 ) -> list[Difference]:
    """Redis dumps ({key: (type, value, expiry)}) compared on type and value: expiries count
    from processing time, which differs between a replay and the original run."""
    exp = {k: (t, v) for k, (t, v, _) in expected.items()}
    act = {k: (t, v) for k, (t, v, _) in actual.items()}
    samples = [f"missing {k}" for k in sorted(set(exp) - set(act))[:max_samples]]
    samples += [f"unexpected {k}" for k in sorted(set(act) - set(exp))[:max_samples]]
    samples += [f"differs {k}: expected {str(exp[k])[:150]} got {str(act[k])[:150]}"
                for k in sorted(set(exp) & set(act)) if exp[k] != act[k]][:max_samples]
    return [Difference("redis", "keys", len(exp), len(act), samples)]
