"""`verify` compares what one event file is about, also on stores that hold other data."""

from __future__ import annotations

from typing import Any

from polystream.domain.events import Envelope, decode
from polystream.simulate import SimConfig, generate
from polystream.verify import Scope, compare_live, compare_rows, expected_state


def _events(seed: int, n: int) -> list[Envelope[Any]]:
    return [decode(ev.value) for ev in generate(SimConfig(seed=seed, users=80, titles=40),
                                                limit=n)]


def _all_ok(diffs: list[Any]) -> bool:
    return all(d.ok for d in diffs)


def test_other_runs_data_is_left_alone_and_this_files_data_is_compared() -> None:
    mine, other = _events(7, 3000), _events(8, 3000)
    expected = expected_state(mine)
    # The "real" stores: fed the other run first, then this file.
    actual = expected_state([*other, *mine])
    scope = Scope.of(mine)
    rows = compare_rows("postgres", expected.accounts.dump(), actual.accounts.dump(),
                        scope=scope, exact=False)
    docs = compare_rows("mongo", expected.catalog.snapshot(), actual.catalog.snapshot(),
                        scope=scope, exact=False)
    keys = compare_live(expected.live.dump(), actual.live.dump(), scope=scope, exact=False)
    assert _all_ok(rows + docs + keys), [d.samples for d in rows + docs + keys if not d.ok]
    assert sum(d.foreign for d in rows) > 0 and sum(d.foreign for d in keys) > 0
    assert sum(d.shared for d in keys) > 0, "global counters are shared, not compared"
    # Without the scope, the other run's data makes everything differ.
    assert not _all_ok(compare_rows("postgres", expected.accounts.dump(),
                                    actual.accounts.dump()))


def test_a_missing_row_or_key_of_this_file_is_found_among_other_data() -> None:
    mine, other = _events(7, 3000), _events(8, 3000)
    expected = expected_state(mine)
    actual = expected_state([*other, *mine])
    scope = Scope.of(mine)
    dump = actual.accounts.dump()
    removed = dump["users"].pop(0)
    if not scope.row_refs(removed)[0]:  # the first row was the other run's: take one of ours
        removed = next(r for r in dump["users"] if scope.row_refs(r)[0])
        dump["users"].remove(removed)
    [users] = [d for d in compare_rows("postgres", expected.accounts.dump(), dump, scope=scope,
                                       exact=False) if d.part == "users"]
    assert not users.ok and any(removed["user_id"] in s for s in users.samples)

    live = actual.live.dump()
    mine_key = next(k for k in live if k.startswith("plan:") and scope.refs(k)[0])
    del live[mine_key]
    [keys] = compare_live(expected.live.dump(), live, scope=scope, exact=False)
    assert not keys.ok and any(mine_key in s for s in keys.samples)


def test_on_stores_holding_only_this_file_the_aggregates_are_compared_too() -> None:
    mine = _events(7, 2000)
    expected = expected_state(mine)
    actual = expected_state(mine)
    live = actual.live.dump()
    counter = next(k for k in live if k.startswith("counter:"))
    kind, value, expiry = live[counter]
    live[counter] = (kind, str(int(value) + 1), expiry)
    scope = Scope.of(mine)
    [exact] = compare_live(expected.live.dump(), live, scope=scope, exact=True)
    assert not exact.ok and any(counter in s for s in exact.samples)
    [loose] = compare_live(expected.live.dump(), live, scope=scope, exact=False)
    assert loose.ok and loose.shared >= 1


def test_read_api_cache_entries_are_not_state_but_the_catalog_version_is() -> None:
    mine = _events(7, 2000)
    expected = expected_state(mine)
    live = expected_state(mine).live.dump()
    title = next(k.split(":")[-1] for k in live if k.startswith("title:version:"))
    live[f"cache:title:{title}"] = ("string", "{}", None)
    live["cache:browse:0123abcd"] = ("string", "1.0\n{}", None)
    live["cache:catalog:mongo"] = ("string", "7", None)  # bumped by the MongoDB sink
    [keys] = compare_live(expected.live.dump(), live, scope=Scope.of(mine), exact=True)
    assert keys.ok, keys.samples
    kind, value, expiry = live["cache:catalog:version"]
    live["cache:catalog:version"] = (kind, str(int(value) + 1), expiry)
    [keys] = compare_live(expected.live.dump(), live, scope=Scope.of(mine), exact=True)
    assert not keys.ok
