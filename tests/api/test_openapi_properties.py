"""Every operation of the OpenAPI document, property-based (schemathesis over hypothesis), as
anonymous, a logged-in user and the operator, against the API on the real stack: no answer is
a 5xx (the stack is healthy, so not even a documented 503), and every answer conforms to the
document (its status code is documented, its content type and body match the documented
schema).

Bounded: a fixed number of examples per operation and caller, no shrinking, no example
database. `GET /dashboard/stream` is left out: it is a server-sent event stream that only ends
after `frames` frames, one a second (tests/dashboard covers it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.openapi import from_dict
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from polystream.settings import Settings

from .conftest import OPERATOR
from .stack_platform import Platform, bearer, running_platform

pytestmark = pytest.mark.stack

#: Examples per (operation, caller): about 60 operations x 3 callers stay within a few minutes
#: on a loaded two-core box.
MAX_EXAMPLES = 8
LEFT_OUT = {("GET", "/dashboard/stream")}
#: Run last: they end the caller's session (or account), so every later call would be a 401.
ENDS_SESSION = {("POST", "/auth/logout"), ("DELETE", "/me/sessions"), ("DELETE", "/me")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def platform(settings: Settings) -> Iterator[Platform]:
    yield from running_platform(settings)


def _send(client: Any, kwargs: dict[str, Any]) -> httpx.Response:
    """The case's request (requests-style keyword arguments) sent through the app's client."""
    data = kwargs.pop("data", None)
    if isinstance(data, (bytes, str)):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    files = kwargs.get("files")
    if files:
        kwargs["files"] = [(name, _file(value)) for name, value in
                           (files.items() if isinstance(files, dict) else files)]
    kwargs.pop("base_url", None)
    url = kwargs.pop("url")
    response: httpx.Response = client.request(url=url, **kwargs)
    return response


def _file(value: Any) -> Any:
    # requests renders any value of a multipart field; httpx wants bytes, str or a file.
    if isinstance(value, tuple):
        return (value[0], _file(value[1]), *value[2:])
    return value if isinstance(value, (bytes, str)) else str(value)


def test_every_operation_conforms_for_every_caller(platform: Platform) -> None:
    app = platform.client.app
    assert isinstance(app, FastAPI)  # the test client holds it as a bare ASGI app
    schema = from_dict(app.openapi())
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation the schema cannot describe
        operations.append(result.ok())
    operations = [op for op in operations if (op.method.upper(), op.path) not in LEFT_OUT]
    operations.sort(key=lambda op: (op.method.upper(), op.path) in ENDS_SESSION)
    _, user = platform.register("props")
    callers: dict[str, dict[str, str]] = {"anonymous": {}, "user": bearer(user),
                                          "operator": dict(OPERATOR)}
    failures: list[str] = []
    counts = {"requests": 0, "5xx": 0}
    started = time.monotonic()
    for operation in operations:
        for caller, auth in callers.items():
            _run(platform, operation, caller, auth, failures, counts)
    took = time.monotonic() - started
    print(f"\n{len(operations)} operations x {len(callers)} callers: {counts['requests']} "
          f"requests, {counts['5xx']} 5xx, {len(failures)} failures, {took:.0f} s")
    assert counts["requests"] >= len(operations) * len(callers)
    assert not failures, "\n".join(failures[:40])


def _run(platform: Platform, operation: Any, caller: str, auth: dict[str, str],
         failures: list[str], counts: dict[str, int]) -> None:
    seen: set[str] = set()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        kwargs = case.as_transport_kwargs()
        headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items()
                   if k.lower() != "authorization"}
        kwargs["headers"] = {**headers, **auth}
        response = _send(platform.client, kwargs)
        response.request.read()  # a multipart body is a stream: the checks read it again
        counts["requests"] += 1
        if response.status_code >= 500:
            counts["5xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # every finding, not only the first
            first = str(exc).strip().splitlines()
            key = f"{operation.method.upper()} {operation.path} as {caller}: " \
                  f"{response.status_code} {first[0] if first else type(exc).__name__}"
            if key not in seen:
                seen.add(key)
                failures.append(f"{key}\n    {' | '.join(first[1:6])}")

    check()
