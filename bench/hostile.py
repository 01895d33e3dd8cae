"""``python -m bench.hostile``: a hostile client against the write API; counts 5xx (must be 0).

    python -m bench.hostile [-n 5000] [--seed 1] [--url http://127.0.0.1:8000 --token T]

Without ``--url`` the API runs in this process on the in-memory broker (no server needed);
with it, the requests go to a running ``polystream api serve``. Each request starts from a
valid command and breaks it one way: a field replaced by a value from the hostile catalogue
(instants at the calendar's edges, 400-digit numbers, control characters, card numbers in
disguise, deep nesting, wrong types), a raw body that is not JSON, ambiguous framing, odd
headers, a hostile path or query, a polyglot upload. The exit status is 1 when any answer was
a 5xx (each is listed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from polystream.domain.examples import (
    OTHER_TITLE_ID,
    SUBSCRIPTION_ID,
    TITLE_ID,
    USER_ID,
    VIEWING_SESSION_ID,
    example_fields,
    png_image,
)


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""


@dataclass
class Report:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    server_errors: list[tuple[int, Req]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def count_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def _fields(event_type: str, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in example_fields(event_type).items() if k not in drop}


def _playback(*drop: str) -> dict[str, Any]:
    return _fields("playback.progress", "viewing_session_id", *drop)


# (method, path, JSON body, operator?) of one valid request per command.
TEMPLATES: Final[list[tuple[str, str, dict[str, Any] | None, bool]]] = [
    ("POST", "/users", {"email": "ana@example.com", "password": "correct horse battery",
                        "display_name": "Ana", "country": "PT", "birth_year": 1990}, False),
    ("PATCH", f"/users/{USER_ID}", {"display_name": "Ana S.", "country": "ES"}, False),
    ("PUT", f"/users/{USER_ID}/preferences", _fields("preferences.updated", "user_id"), False),
    ("POST", "/subscriptions", {"user_id": USER_ID, "plan": "standard",
                                "period_start": "2030-01-31T00:00:00Z"}, False),
    ("POST", f"/subscriptions/{SUBSCRIPTION_ID}/plan",
     {"user_id": USER_ID, "from_plan": "standard", "to_plan": "premium"}, False),
    ("POST", f"/subscriptions/{SUBSCRIPTION_ID}/cancel",
     {"user_id": USER_ID, "ends_at": "2030-01-01T00:00:00Z"}, False),
    ("POST", "/payments", _fields("payment.succeeded", "payment_id"), False),
    ("POST", "/playback/sessions", _playback("position_seconds"), False),
    ("POST", f"/playback/sessions/{VIEWING_SESSION_ID}/progress", _playback(), False),
    ("POST", f"/playback/sessions/{VIEWING_SESSION_ID}/stop",
     {**_playback(), "reason": "completed"}, False),
    ("PUT", f"/titles/{TITLE_ID}/ratings/{USER_ID}", {"stars": 4, "review": "Lovely."}, False),
    ("DELETE", f"/titles/{TITLE_ID}/ratings/{USER_ID}", None, False),
    ("PUT", f"/catalog/titles/{TITLE_ID}", _fields("catalog.title_upserted", "title_id"), True),
    ("PUT", f"/catalog/titles/{OTHER_TITLE_ID}", {
        "kind": "movie", "version": 1, "title": "Quiet Harbour", "year": 1998,
        "genres": ["drama"], "languages": ["de"], "maturity_rating": "16+",
        "runtime_minutes": 104}, True),
    ("DELETE", f"/catalog/titles/{TITLE_ID}?version=4", None, True),
    ("POST", "/catalog/relations", _fields("catalog.relation_added"), True),
    ("PUT", "/flags/player.countdown", {"value": {"enabled": True, "seconds": 10}}, True),
    ("GET", f"/events/{USER_ID}", None, False),
    ("GET", "/audit/events?limit=5", None, True),
]

CARDS: Final = [
    "4111.1111.1111.1111", "4111/1111/1111/1111", "4111_1111_1111_1111",
    "4111\t1111\t1111\t1111", "4111\u00a01111\u00a01111\u00a01111",
    "4111\u200b1111\u200b1111\u200b1111", "\uff14\uff11\uff11\uff11" * 4,
    "4111 - 1111 - 1111 - 1111", "5555555555554444", "378282246310005",
]
INSTANTS: Final = [
    "9999-12-31T23:59:59Z", "9999-12-15T00:00:00Z", "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
    "2199-12-31T23:59:59+00:00", "2199-12-31T23:00:00-05:00", "2025-02-30T00:00:00Z",
    "2025-01-01T24:00:00Z", "2025-01-01T00:00:00+24:00", "2025-01-01T00:00:00",
    "2025-01-01", "+002025-01-01T00:00:00Z", "2025-01-01T00:00:00.9999999999Z",
]
TEXTS: Final = [
    "\x00", "Ana\x00", "\x1b[31mred", "\x7f", "\u0085", "a\nb", "\ud800", "\udfff",
    "\ufeff", "\u202e" + "evil", "x" * 70_000, "", "   ", "\u0000" * 50,
    "Robert'); DROP TABLE users;--", "{\"$gt\": \"\"}", "${jndi:ldap://x}", "..%2F..%2F",
    "\U0001f600" * 100, "e\u0301" * 300,
]
NUMBERS: Final[list[Any]] = [
    10**400, -(10**400), 2**63, 2**64, -(2**63) - 1, 2**31, 0, -1, 1.5, 1e308, -0.0,
    True, False, None, "1", "", [], {}, [1] * 1000,
]
RAW_BODIES: Final = [
    b"", b"{", b"null", b"[]", b'"x"', b"1e999999", b'{"a": NaN}', b'{"a": Infinity}',
    b"\xff\xfe{}", b"\xef\xbb\xbf{}", b'{"email": "a@b.io", "email": "c@d.io"}',
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"x": "\\ud800"}', b'{"x": "\\u0000"}', b"\x00\x00\x00\x00",
    json.dumps({"n": 1e308 * 10 if False else 12345678901234567890123}).encode(),
    b"--boundary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n",
]
PATH_SEGMENTS: Final = [
    "%00", "..", "%2e%2e", "a" * 5000, "4111111111111111", "4111.1111.1111.1111",
    "%F0%9F%98%80", "%ff", "%C0%AE", "user:1", "$where", "a.b", " ", "%0d%0aSet-Cookie:x",
]
QUERIES: Final = [
    "wait=abc", "wait=1e309", "wait=-1", "wait=" + "9" * 400, "wait=nan", "wait=0.01",
    "version=" + "9" * 400, "version=-5", "version=1e3", "limit=0", "limit=" + "9" * 100,
    "since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59Z", "text=%00",
    "cursor=" + "A" * 600, "cursor=%ff%fe", "a=1&a=2", "%zz=1",
]
HEADER_ATTACKS: Final[list[dict[str, str]]] = [
    {"transfer-encoding": "chunked"},
    {"content-type": "application/json; charset=utf-16"},
    {"content-type": "text/plain"},
    {"content-type": "multipart/form-data; boundary=x"},
    {"content-type": "application/x-www-form-urlencoded"},
    {"prefer": "wait=" + "9" * 500},
    {"prefer": "wait=1e309, respond-async"},
    {"authorization": "Bearer " + "A" * 10_000},
    {"authorization": "Basic Zm9vOmJhcg=="},
    {"authorization": "Bearer \u00e9\u00e9"},
    {"x-request-id": "\u00ff" * 100},
]


def _images(rng: random.Random) -> bytes:
    png = png_image(3, 2)
    choices = [
        png + b"PK\x03\x04" + rng.randbytes(64),
        png[:-6],
        b"\xff\xd8\xff\xe0" + rng.randbytes(300),
        b"RIFF" + (100).to_bytes(4, "little") + b"WEBPVP8L" + rng.randbytes(40),
        b"\x89PNG\r\n\x1a\n" + rng.randbytes(200),
        b"GIF89a" + rng.randbytes(50),
        b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR"
        + (100_000).to_bytes(4, "big") * 2 + rng.randbytes(9),
        rng.randbytes(rng.randint(0, 2000)),
    ]
    return rng.choice(choices)


def _hostile_value(rng: random.Random) -> Any:
    pool = rng.choice(["card", "instant", "text", "number", "nested"])
    if pool == "card":
        return rng.choice([rng.choice(CARDS), f"my card {rng.choice(CARDS)} ok"])
    if pool == "instant":
        return rng.choice(INSTANTS)
    if pool == "text":
        return rng.choice(TEXTS)
    if pool == "number":
        return rng.choice(NUMBERS)
    depth = rng.choice([5, 50, 500])
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value} if rng.random() < 0.5 else [value]
    return value


def _mutate(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    target: Any = body
    # Sometimes one level down (nested objects such as device, people, value).
    nested = [k for k, v in body.items() if isinstance(v, dict) and v]
    if nested and rng.random() < 0.3:
        target = body[rng.choice(nested)]
    keys = list(target) or ["x"]
    action = rng.random()
    if action < 0.75:
        target[rng.choice(keys)] = _hostile_value(rng)
    elif action < 0.85:
        target[rng.choice([*CARDS, "cvv", "card_number", "\x00", "a" * 300])] = 1
    else:
        target.pop(rng.choice(keys), None)
    return body


def requests(n: int, seed: int, token: str) -> Iterator[Req]:
    rng = random.Random(seed)
    for _ in range(n):
        method, path, body, operator = rng.choice(TEMPLATES)
        headers = {"content-type": "application/json"}
        if operator and rng.random() < 0.9:
            headers["authorization"] = f"Bearer {token}"
        roll = rng.random()
        raw = json.dumps(body).encode() if body is not None else b""
        kind = "field"
        if roll < 0.55 and body is not None:
            raw = json.dumps(_mutate(body, rng)).encode()
        elif roll < 0.65:
            kind, raw = "raw-body", rng.choice(RAW_BODIES)
        elif roll < 0.73:
            kind = "header"
            headers.update(rng.choice(HEADER_ATTACKS))
        elif roll < 0.83:
            kind = "path"
            parts = path.split("?", 1)[0].split("/")
            index = rng.randrange(1, len(parts))
            parts[index] = rng.choice(PATH_SEGMENTS)
            path = "/".join(parts)
        elif roll < 0.91:
            kind = "query"
            path += ("&" if "?" in path else "?") + rng.choice(QUERIES)
        else:
            kind = "upload"
            boundary = "hostile0boundary"
            image = _images(rng)
            ctype = rng.choice(["image/png", "image/jpeg", "image/webp", "text/html"])
            kind_value = rng.choice(["poster", "backdrop", "\x00", "4111111111111111", "x" * 500])
            raw = (
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n"
                f"{kind_value}\r\n--{boundary}\r\nContent-Disposition: form-data; "
                f"name=\"file\"; filename=\"a.png\"\r\nContent-Type: {ctype}\r\n\r\n"
            ).encode("utf-8", errors="surrogatepass") + image + f"\r\n--{boundary}--\r\n".encode()
            headers["content-type"] = f"multipart/form-data; boundary={boundary}"
            method, path = "POST", f"/catalog/titles/{TITLE_ID}/assets"
            headers["authorization"] = f"Bearer {token}"
        yield Req(method, path, raw, headers, kind)


Sender = Callable[[Req], int]


def _raw_headers(req: Req) -> list[tuple[bytes, bytes]]:
    # Latin-1 bytes, as on the wire: header values outside ASCII are part of the attack.
    return [(k.encode("latin-1"), v.encode("latin-1", errors="replace"))
            for k, v in req.headers.items()]


def run(send: Sender, n: int, seed: int, token: str) -> Report:
    report = Report()
    started = time.perf_counter()
    for req in requests(n, seed, token):
        status = send(req)
        report.sent += 1
        report.statuses[status] += 1
        report.kinds[req.kind] += 1
        if status >= 500 and status not in {503, 504}:
            report.server_errors.append((status, req))
        elif status >= 500:
            # 503/504 are documented answers (bus down, hashing queue full, deadline); they
            # are counted apart but still reported, since nothing here should cause them.
            report.server_errors.append((status, req))
    report.seconds = time.perf_counter() - started
    return report


def in_process_sender(token: str) -> tuple[Sender, Callable[[], None]]:
    """The API on the in-memory broker, behind Starlette's test client."""
    import httpx
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from polystream.api import ApiDeps, create_app
    from polystream.audit.memory import InMemoryAuditIndex
    from polystream.bus.memory import InMemoryBroker, InMemoryEventPublisher
    from polystream.bus.topology import topic_specs
    from polystream.receipts import InMemoryReceiptLog
    from polystream.settings import ApiSettings, KafkaSettings, Settings

    broker = InMemoryBroker(auto_create_topics=False)
    broker.ensure_topics(topic_specs(KafkaSettings()))
    settings = Settings(api=ApiSettings(operator_token=SecretStr(token), wait_max_s=0.05,
                                        publish_timeout_s=2.0))
    app = create_app(ApiDeps(
        settings=settings, publisher=InMemoryEventPublisher(broker),
        receipts=InMemoryReceiptLog(), audit=InMemoryAuditIndex(),
        password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    ))
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()

    def send(req: Req) -> int:
        # TestClient.request is typed as returning Any; it is httpx's Response.
        response: httpx.Response = client.request(req.method, req.path, content=req.body,
                                  headers=_raw_headers(req))
        return response.status_code

    return send, lambda: client.__exit__(None, None, None)


def http_sender(url: str) -> tuple[Sender, Callable[[], None]]:
    import httpx

    client = httpx.Client(base_url=url, timeout=30.0)

    def send(req: Req) -> int:
        try:
            response = client.request(req.method, req.path, content=req.body,
                                      headers=_raw_headers(req))
        except httpx.HTTPError:
            return 599  # the server dropped the connection: counted as a server error
        return response.status_code

    return send, client.close


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", default="")
    parser.add_argument("--token", default="hostile-operator-token-0123456789")
    args = parser.parse_args(argv)
    send, close = http_sender(args.url) if args.url else in_process_sender(args.token)
    try:
        report = run(send, args.n, args.seed, args.token)
    finally:
        close()
    print(f"hostile requests: {report.sent} in {report.seconds:.1f}s "
          f"({'in process' if not args.url else args.url})")
    print("by kind:   " + ", ".join(f"{k}={v}" for k, v in sorted(report.kinds.items())))
    print("by status: " + ", ".join(f"{k}={v}" for k, v in sorted(report.statuses.items())))
    print(f"5xx: {report.count_5xx}")
    for status, req in report.server_errors[:20]:
        print(f"  {status} {req.method} {req.path[:120]!r} {req.kind} {req.body[:120]!r}")
    return 1 if report.count_5xx else 0


if __name__ == "__main__":
    sys.exit(main())
