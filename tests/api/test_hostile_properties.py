"""Property: whatever JSON value replaces whatever field of whatever command, the answer is a
documented one (2xx or 4xx with the error shape), never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .cases import VALID, Call
from .conftest import Harness, make_harness

JSON_COMMANDS = sorted(name for name, valid in VALID.items() if valid.call.json)

scalars = (
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.sampled_from(["4111.1111.1111.1111", "\uff14" * 16, "\x00", "9999-12-31T23:59:59Z",
                       "0001-01-01T00:00:00+14:00"])
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=8), inner, max_size=3), max_leaves=6,
)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from make_harness()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_json_value_in_any_field_is_a_server_error(
    harness: Harness, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(JSON_COMMANDS))
    call = VALID[name].call
    body: dict[str, Any] = dict(call.json)
    field = data.draw(st.sampled_from(sorted(body)))
    body[field] = data.draw(json_values)
    raw = Call(call.method, call.url, headers={**call.headers,
               "content-type": "application/json"}, content=json.dumps(body).encode())
    response = raw.send(harness.client)
    assert response.status_code < 500, (name, field, response.text)
    if response.status_code >= 400:
        assert set(response.json()) == {"detail", "errors"}

