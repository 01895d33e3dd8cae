"""The API benchmark's requests, built from the simulator's own events (seed 7): heartbeats of
viewing sessions the simulator started, ratings and sign-ups of its users.

The stream's first :data:`PREFIX` events are published (by ``polystream simulate``) before the
API is measured, so the users, titles and viewing sessions the requests name exist on the bus
first. Registrations get a unique email per request (``{n}`` is replaced by a counter). User
commands carry a bearer token of their user: login sessions are opened directly in the phase's
Redis (logging in is not what is measured, and the simulator's users are in PostgreSQL only
once the sinks ran).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Final

from bench.pipeline.stream import events

PREFIX: Final = 20_000
TEMPLATES: Final = 200
PASSWORD: Final = "polystream-sim-7"
HEARTBEAT_FIELDS: Final = ("user_id", "title_id", "episode_id", "position_seconds",
                           "duration_seconds", "device")


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: str | None = None
    #: ``{n}`` in the body is replaced by a unique counter per request.
    numbered: bool = False
    #: The user the request acts for; it is sent with a bearer token of theirs.
    user_id: str | None = None
    token: str | None = None


def _payloads(event_type: str) -> list[dict[str, object]]:
    found = []
    for event in events(PREFIX):
        if event.type == event_type:
            found.append(json.loads(event.value)["payload"])
            if len(found) == TEMPLATES:
                break
    return found


def heartbeats() -> list[Call]:
    """``POST /playback/sessions/{id}/progress`` of sessions started in the prefix."""
    return [
        Call("POST", f"/playback/sessions/{p['viewing_session_id']}/progress",
             json.dumps({k: p[k] for k in HEARTBEAT_FIELDS}, separators=(",", ":")),
             user_id=str(p["user_id"]))
        for p in _payloads("playback.progress")
    ]


def ratings() -> list[Call]:
    return [
        Call("PUT", f"/titles/{p['title_id']}/ratings/{p['user_id']}",
             json.dumps({"stars": p["stars"], "review": p["review"]}, separators=(",", ":")),
             user_id=str(p["user_id"]))
        for p in _payloads("rating.submitted")
    ]


def registrations() -> list[Call]:
    calls = []
    for p in _payloads("user.registered"):
        local, _, domain = str(p["email"]).partition("@")
        body = {"email": f"{local}+b{{n}}@{domain}", "password": PASSWORD,
                "display_name": p["display_name"], "country": p["country"],
                "birth_year": p["birth_year"]}
        calls.append(Call("POST", "/users", json.dumps(body, separators=(",", ":")),
                          numbered=True))
    return calls


def with_tokens(calls: list[Call], tokens: dict[str, str]) -> list[Call]:
    """The calls with the bearer token of the user each acts for."""
    return [replace(c, token=tokens[c.user_id]) if c.user_id else c for c in calls]


def healthz() -> list[Call]:
    return [Call("GET", "/healthz")]


ENDPOINTS: Final = {
    "healthz": healthz,
    "heartbeat": heartbeats,
    "rating": ratings,
    "registration": registrations,
}
