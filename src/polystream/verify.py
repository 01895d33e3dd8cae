"""Reconcile the stores against the event log.

The expected state is recomputed from the events alone, by applying them in their original
order to the in-memory stores (the reference implementations, held to the same contract tests
as the real ones). Each real store is then compared with its reference, table by table,
collection by collection, key by key.

The real stores may hold more than one file's events (other runs, real users). The comparison
is therefore *scoped* to what the file is about: its event ids and the ids of every entity its
events name (users, subscriptions, payments, titles, viewing sessions...). A row, document or
Redis key that names one of them is compared; one that names only other ids is someone else's
and is ignored (counted). What names no id at all (global counters, the flags hash, the catalog
cache version) is an *aggregate*: compared only when the stores hold nothing but this file's
data, reported as "shared" otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from polystream.domain.events import AnyEvent, Sink, event_types_for
from polystream.domain.live import DumpEntry
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


# ------------------------------------------------------------------------------- scope

_SPLIT = re.compile(r"[:|]")


def _is_id_field(name: str) -> bool:
    return name == "_id" or name.endswith("_id") or name == "eid"


class Scope:
    """The ids one event file is about.

    Events about an aggregate named by a word rather than a generated id (a feature flag's
    name) may meet the same aggregate in other data, and their outcome then depends on it: what
    they leave behind counts as shared, like an aggregate."""

    def __init__(self, ids: Iterable[str], shared: Iterable[str] = ()) -> None:
        self.ids = frozenset(ids)
        self.shared = frozenset(shared)

    @classmethod
    def of(cls, events: Iterable[AnyEvent]) -> Scope:
        ids: set[str] = set()
        shared: set[str] = set()
        for env in events:
            (ids if _looks_like_id(env.key) else shared).add(str(env.event_id))
            _collect_ids(env.payload.model_dump(mode="json"), ids)
        return cls(ids, shared)

    def refs(self, value: object) -> tuple[bool, bool]:
        """(names one of ours, names some id at all) for a key, member or field value."""
        tokens = [t for t in _SPLIT.split(str(value)) if t]
        if any(t in self.shared for t in tokens):
            return False, False
        ours = any(t in self.ids for t in tokens)
        return ours, ours or any(_looks_like_id(t) for t in tokens)

    def row_refs(self, row: Mapping[str, Any]) -> tuple[bool, bool]:
        ours = named = False
        for name, value in row.items():
            if _is_id_field(name) and value is not None:
                o, n = self.refs(value)
                ours, named = ours or o, named or n
            elif name == "metadata" and isinstance(value, Mapping):
                o, n = self.row_refs(value)
                ours, named = ours or o, named or n
        return ours, named


def _collect_ids(value: Any, out: set[str], name: str = "") -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _collect_ids(v, out, str(k))
    elif isinstance(value, list):
        for v in value:
            _collect_ids(v, out, name)
    elif isinstance(value, str) and _is_id_field(name):
        out.add(value)


_UUID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _looks_like_id(token: str) -> bool:
    return bool(_UUID_SHAPE.fullmatch(token))


# --------------------------------------------------------------------------- comparison

@dataclass
class Difference:
    store: str
    part: str
    expected: int
    actual: int
    samples: list[str]
    #: Rows/keys of other data seen and left alone.
    foreign: int = 0
    #: Not compared: aggregates shared with other data.
    shared: int = 0
    #: Expected but absent, present but not expected, present with other content.
    missing: int = 0
    unexpected: int = 0
    stale: int = 0
    #: Facts worth reporting that are not differences (dead-lettered events, say).
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.samples


def _key(row: Mapping[str, Any]) -> str:
    for name in ("event_id", "_id", "user_id", "subscription_id", "payment_id", "files_id"):
        if name in row:
            extra = row.get("title_id", "") if name == "user_id" else ""
            return f"{row[name]}{':' + str(extra) if extra else ''}"
    return repr(sorted(row.items()))[:120]


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value


def compare_rows(store: str, expected: Mapping[str, Sequence[Any]],
                 actual: Mapping[str, Sequence[Any]], *, scope: Scope | None = None,
                 exact: bool = True, max_samples: int = 5) -> list[Difference]:
    """Compare two dumps of the form {part: [row, ...]} (rows as dicts). With a ``scope``,
    rows of other data are ignored; rows naming no id are compared only when ``exact``."""
    out: list[Difference] = []
    for part in sorted(set(expected) | set(actual)):
        exp, act = list(expected.get(part, [])), list(actual.get(part, []))
        foreign = shared = 0
        if scope is not None:
            exp = [r for r in exp if not isinstance(r, Mapping) or scope.row_refs(r)[0]
                   or (exact and not scope.row_refs(r)[1])]
            kept: list[Any] = []
            for r in act:
                ours, named = scope.row_refs(r) if isinstance(r, Mapping) else (True, True)
                if ours or (exact and not named):
                    kept.append(r)
                elif named:
                    foreign += 1
                else:
                    shared += 1
            act = kept
        out.append(_compare_part(store, part, exp, act, max_samples, foreign, shared))
    return out


def _compare_part(store: str, part: str, exp: list[Any], act: list[Any], max_samples: int,
                  foreign: int, shared: int) -> Difference:
    samples: list[str] = []
    missing = unexpected = stale = 0
    if exp != act:
        exp_by = {_key(r): r for r in exp if isinstance(r, Mapping)}
        act_by = {_key(r): r for r in act if isinstance(r, Mapping)}
        gone, extra = sorted(set(exp_by) - set(act_by)), sorted(set(act_by) - set(exp_by))
        missing, unexpected = len(gone), len(extra)
        samples += [f"missing {k}" for k in gone[:max_samples]]
        samples += [f"unexpected {k}" for k in extra[:max_samples]]
        for k in sorted(set(exp_by) & set(act_by)):
            e, a = ({f: _plain(v) for f, v in r.items()} for r in (exp_by[k], act_by[k]))
            if e != a:
                stale += 1
                if len(samples) < max_samples * 3:
                    diff = {f: (e.get(f), a.get(f)) for f in set(e) | set(a)
                            if e.get(f) != a.get(f)}
                    samples.append(f"differs {k}: {str(diff)[:300]}")
        if not samples and sorted(map(repr, exp)) != sorted(map(repr, act)):
            samples.append("same keys, other rows")
            stale += 1
    return Difference(store, part, len(exp), len(act), samples, foreign, shared,
                      missing, unexpected, stale)


def compare_live(expected: Mapping[str, DumpEntry], actual: Mapping[str, DumpEntry], *,
                 scope: Scope | None = None, exact: bool = True, max_samples: int = 5
                 ) -> list[Difference]:
    """Redis dumps ({key: (type, value, expiry)}) compared on type and value: expiries count
    from processing time, which differs between a replay and the original run. With a
    ``scope``, keys of other data are ignored, and inside a collection that holds members of
    several runs (a ranking, a genre's titles) only this file's members are compared."""
    exp = {k: (t, v) for k, (t, v, _) in expected.items() if not _api_cache(k)}
    act = {k: (t, v) for k, (t, v, _) in actual.items() if not _api_cache(k)}
    foreign = shared = 0
    if scope is not None:
        exp, act, foreign, shared = _scoped_live(exp, act, scope, exact)
    gone, extra = sorted(set(exp) - set(act)), sorted(set(act) - set(exp))
    changed = [k for k in sorted(set(exp) & set(act)) if exp[k] != act[k]]
    samples = [f"missing {k}" for k in gone[:max_samples]]
    samples += [f"unexpected {k}" for k in extra[:max_samples]]
    samples += [f"differs {k}: expected {str(exp[k])[:150]} got {str(act[k])[:150]}"
                for k in changed[:max_samples]]
    return [Difference("redis", "keys", len(exp), len(act), samples, foreign, shared,
                       len(gone), len(extra), len(changed))]


def _api_cache(key: str) -> bool:
    """Cache-aside entries the read API writes (``cache:title:*``, ``cache:browse:*``) and the
    counter the MongoDB sink bumps (``cache:catalog:mongo``): the reference stores make none
    of them, so a replay cannot expect them. The catalog version the Redis sink bumps is
    event state and stays compared."""
    return key.startswith("cache:") and key != "cache:catalog:version"


def _scoped_live(exp: dict[str, tuple[str, Any]], act: dict[str, tuple[str, Any]],
                 scope: Scope, exact: bool
                 ) -> tuple[dict[str, tuple[str, Any]], dict[str, tuple[str, Any]], int, int]:
    out_exp: dict[str, tuple[str, Any]] = {}
    out_act: dict[str, tuple[str, Any]] = {}
    foreign = shared = 0
    for key in set(exp) | set(act):
        ours, named = scope.refs(key)
        if ours:
            if key in exp:
                out_exp[key] = exp[key]
            if key in act:
                out_act[key] = act[key]
            continue
        if named:  # another run's user, title or session
            foreign += key in act
            continue
        e, a = _members(exp.get(key), scope), _members(act.get(key), scope)
        if e is None and a is None:
            # Names no id and holds no ids: a global aggregate.
            if exact:
                if key in exp:
                    out_exp[key] = exp[key]
                if key in act:
                    out_act[key] = act[key]
            else:
                shared += 1
            continue
        if e is not None and e[1]:
            out_exp[key] = e[1]
        if a is not None and a[1]:
            out_act[key] = a[1]
        foreign += a[0] if a is not None else 0
    return out_exp, out_act, foreign, shared


def _members(entry: tuple[str, Any] | None, scope: Scope
             ) -> tuple[int, tuple[str, Any] | None] | None:
    """For a collection whose members are ids: (members of other data, this file's part);
    None when the entry is not such a collection."""
    if entry is None:
        return None
    kind, value = entry
    if kind in ("hash", "zset") and isinstance(value, Mapping):
        refs = {m: scope.refs(m) for m in value}
        if not any(n for _, n in refs.values()):
            return None
        mine = {m: v for m, v in value.items() if refs[m][0]}
        other = sum(1 for o, n in refs.values() if n and not o)
        return other, ((kind, mine) if mine else None)
    if kind == "set" and isinstance(value, list):
        refs_list = [(m, scope.refs(m)) for m in value]
        if not any(n for _, (_, n) in refs_list):
            return None
        mine_list = [m for m, (o, _) in refs_list if o]
        other = sum(1 for _, (o, n) in refs_list if n and not o)
        return other, ((kind, mine_list) if mine_list else None)
    return None
