"""Who may call which route: the table the authorization matrix test checks, one row per
route (method, path template). A route missing here fails the test, so a new endpoint
cannot ship without deciding its policy. Routers added by other work add their rows here.

Policies:

* ``public``   anyone; nobody is ever answered 401/403;
* ``self``     a logged-in user, about themselves only (no id in the request): anonymous 401,
               the operator token 403 (it is no user), every user sees only their own data;
* ``owner``    a logged-in user acting on ids that must be their own: anonymous 401, the
               operator token 403, the owner succeeds, anybody else gets 404;
* ``operator`` an operator account or the operator token: anonymous 401, users 403.
* ``sender``   about an event the caller sent: anonymous 401, the sender reads it, another
               user 404 (as for an unknown id), operators (account or token) read any.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from polystream.domain.examples import SUBSCRIPTION_ID, USER_ID, VIEWING_SESSION_ID

from .cases import VALID, Call

Policy = Literal["public", "self", "owner", "operator", "sender"]


@dataclass(frozen=True)
class Ids:
    """The owner's real ids on the stack under test."""

    user_id: str
    subscription_id: str
    viewing_session_id: str
    #: An account of its own for the login row (anybody may log in with its password).
    login: dict[str, str]
    #: An event the owner sent (their subscription's start).
    event_id: str


@dataclass(frozen=True)
class Row:
    policy: Policy
    request: Callable[[Ids], Call]
    #: The request ends the caller's session (logout): each caller gets a fresh one.
    ends_session: bool = False
    #: The request erases the caller's account: each caller gets an account of its own.
    erases_account: bool = False


def _ours(call: Call, ids: Ids) -> Call:
    """The example call with the example ids replaced by the owner's, and no headers."""
    def swap(text: str) -> str:
        return (text.replace(USER_ID, ids.user_id)
                .replace(SUBSCRIPTION_ID, ids.subscription_id)
                .replace(VIEWING_SESSION_ID, ids.viewing_session_id))

    body = None if call.json is None else json.loads(swap(json.dumps(call.json)))
    return Call(call.method, swap(call.url), body, call.files, call.data, {})


def valid(name: str) -> Callable[[Ids], Call]:
    return lambda ids: _ours(VALID[name].call, ids)


def plain(method: str, url: str, body: object = None) -> Callable[[Ids], Call]:
    return lambda _ids: Call(method, url, body)


EVENT_ID = "0194a1b2-0000-7000-8000-00000000abcd"

ROUTES: dict[tuple[str, str], Row] = {
    ("GET", "/healthz"): Row("public", plain("GET", "/healthz")),
    ("GET", "/readyz"): Row("public", plain("GET", "/readyz")),
    ("GET", "/events/{event_id}"): Row(
        "sender", lambda ids: Call("GET", f"/events/{ids.event_id}", None)),
    ("POST", "/users"): Row("public", valid("register")),
    ("POST", "/auth/login"): Row("public", lambda ids: Call("POST", "/auth/login", ids.login)),
    ("POST", "/auth/logout"): Row("self", plain("POST", "/auth/logout"), ends_session=True),
    ("GET", "/me/sessions"): Row("self", plain("GET", "/me/sessions")),
    ("DELETE", "/me/sessions"): Row("self", plain("DELETE", "/me/sessions"),
                                    ends_session=True),
    ("GET", "/me"): Row("self", plain("GET", "/me")),
    ("DELETE", "/me"): Row("self", plain("DELETE", "/me"), erases_account=True),
    ("GET", "/me/subscription"): Row("self", plain("GET", "/me/subscription")),
    ("GET", "/me/payments"): Row("self", plain("GET", "/me/payments")),
    ("GET", "/me/ratings"): Row("self", plain("GET", "/me/ratings")),
    ("GET", "/me/continue-watching"): Row("self", plain("GET", "/me/continue-watching")),
    ("PATCH", "/users/{user_id}"): Row("owner", valid("update-profile")),
    ("PUT", "/users/{user_id}/preferences"): Row("owner", valid("set-preferences")),
    ("POST", "/subscriptions"): Row("owner", valid("start-subscription")),
    ("POST", "/subscriptions/{subscription_id}/plan"): Row("owner", valid("change-plan")),
    ("POST", "/subscriptions/{subscription_id}/cancel"): Row(
        "owner", valid("cancel-subscription")),
    ("POST", "/payments"): Row("owner", valid("record-payment")),
    ("POST", "/playback/sessions"): Row("owner", valid("playback-start")),
    ("POST", "/playback/sessions/{session_id}/progress"): Row(
        "owner", valid("playback-progress")),
    ("POST", "/playback/sessions/{session_id}/stop"): Row("owner", valid("playback-stop")),
    ("PUT", "/titles/{title_id}/ratings/{user_id}"): Row("owner", valid("rate")),
    ("DELETE", "/titles/{title_id}/ratings/{user_id}"): Row("owner", valid("unrate")),
    ("PUT", "/catalog/titles/{title_id}"): Row("operator", valid("upsert-movie")),
    ("DELETE", "/catalog/titles/{title_id}"): Row("operator", valid("remove-title")),
    ("POST", "/catalog/relations"): Row("operator", valid("add-relation")),
    ("DELETE", "/catalog/relations"): Row("operator", valid("remove-relation")),
    ("POST", "/catalog/titles/{title_id}/assets"): Row("operator", valid("upload-asset")),
    ("PUT", "/flags/{name}"): Row("operator", valid("set-flag")),
    ("GET", "/audit/events"): Row("operator", plain("GET", "/audit/events?limit=1")),
    ("GET", "/audit/events/{event_id}"): Row("operator", plain(
        "GET", f"/audit/events/{EVENT_ID}")),
    # The public reads: the catalog, rankings and public flags need no login.
    ("GET", "/titles"): Row("public", plain("GET", "/titles?limit=1")),
    ("GET", "/titles/{title_id}"): Row("public", plain("GET", f"/titles/{EVENT_ID}")),
    ("GET", "/titles/{title_id}/related"): Row("public", plain(
        "GET", f"/titles/{EVENT_ID}/related")),
    ("GET", "/titles/{title_id}/poster"): Row("public", plain("GET", f"/titles/{EVENT_ID}/poster")),
    ("GET", "/rankings/{ranking}"): Row("public", plain("GET", "/rankings/trending")),
    ("GET", "/flags"): Row("public", plain("GET", "/flags")),
    ("GET", "/metrics"): Row("operator", plain("GET", "/metrics")),
    # The dashboard's page and files are public (they hold no data); what it shows is not.
    ("GET", "/docs"): Row("public", plain("GET", "/docs")),
    ("GET", "/docs/static/{name}"): Row("public", plain("GET", "/docs/static/swagger-ui.css")),
    ("GET", "/dashboard"): Row("public", plain("GET", "/dashboard")),
    ("GET", "/dashboard/static/{name}"): Row("public", plain("GET", "/dashboard/static/app.js")),
    ("GET", "/dashboard/stream"): Row("operator", plain("GET", "/dashboard/stream?frames=1")),
    ("GET", "/dashboard/search"): Row("operator", plain("GET", "/dashboard/search?q=user")),
    ("GET", "/dashboard/lineage/{event_id}"): Row("operator", plain(
        "GET", f"/dashboard/lineage/{EVENT_ID}")),
    ("GET", "/dashboard/posters/{asset_id}"): Row("operator", plain(
        "GET", f"/dashboard/posters/{EVENT_ID}")),
}
