"""A command at the HTTP edge: the options a request carries (`?wait`, `Prefer`,
`traceparent`), the answer a `CommandResult` gets, and the OpenAPI text every command shares.

The services (`*/service.py`, `commands.py`) return results and raise refusals; only this
module and `errors.py` speak HTTP for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query
from fastapi.responses import JSONResponse

from polystream.api.commands import CommandOptions, CommandResult
from polystream.api.deps import Runtime
from polystream.api.errors import ErrorBody
from polystream.api.events.schemas import CommandAccepted, CommandOutcome
from polystream.domain.events import new_trace_id
from polystream.observe.tracing import current_trace_id, trace_id_of

# RFC 7240 preference "wait=<seconds>", possibly among others ("respond-async, wait=5").
_PREFER_WAIT = re.compile(r"(?:^|[,;]\s*)wait\s*=\s*\"?([0-9]+(?:\.[0-9]+)?)\"?", re.IGNORECASE)


def command_options(
    runtime: Runtime,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            allow_inf_nan=False,
            description="Seconds to wait for the stores concerned to persist the event "
            "(capped by the server's maximum). 201/200 when all stored it, 409 when one "
            "rejected it, 422 when it was dead-lettered, 202 when the wait runs out.",
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(description="`wait=N` (RFC 7240) does the same as `?wait=N`; the query wins."),
    ] = None,
    traceparent: Annotated[
        str | None,
        Header(description="W3C trace context; its trace id becomes the event's trace_id "
               "(a new trace starts when it is absent or invalid)."),
    ] = None,
) -> CommandOptions:
    wait_s = wait
    if wait_s is None and prefer:
        match = _PREFER_WAIT.search(prefer)
        # An unparsable preference is ignored, as RFC 7240 asks.
        wait_s = float(match.group(1)) if match else None
    wait_s = min(wait_s or 0.0, runtime.settings.api.wait_max_s)
    # The request span's trace id (the header's when valid) when spans are exported, so the
    # API's spans and the event share it; a fresh one otherwise.
    trace_id = trace_id_of(traceparent) or current_trace_id() or new_trace_id()
    return CommandOptions(wait_s=wait_s, trace_id=trace_id)


Options = Annotated[CommandOptions, Depends(command_options)]


def answer(result: CommandResult) -> JSONResponse:
    """The HTTP answer to a command: 202 once published; with `wait`, 200/201 when every store
    concerned persisted it, 409 when one rejected it or kept a newer version, 422 when it was
    dead-lettered, 202 when the wait ran out."""
    accepted = result.accepted
    headers = {"Location": f"/events/{accepted.event_id}"}
    if result.status is None:
        return JSONResponse(_without_nulls(accepted.model_dump(mode="json")), 202, headers)
    headers["Preference-Applied"] = f"wait={result.wait_s:g}"
    status = result.status
    outcome = CommandOutcome(
        **accepted.model_dump(), status=status.status, sinks=status.sinks, detail=status.detail
    )
    code = {
        "stored": 201 if result.creates else 200,
        "rejected": 409,
        "stale": 409,
        "dead_lettered": 422,
    }.get(status.status, 202)
    return JSONResponse(_without_nulls(outcome.model_dump(mode="json")), code, headers)


def _without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    # Top level only: a sink's ``reason: null`` is information, an absent resource_id is not.
    return {key: value for key, value in body.items() if value is not None}


Responses = dict[int | str, dict[str, Any]]


def command_responses(creates: bool = False) -> Responses:
    """OpenAPI documentation of the answers every command can give."""
    done = 201 if creates else 200
    return {
        202: {"model": CommandAccepted, "description": "Published; the stores will follow. "
              "`Location` is the status URL."},
        done: {"model": CommandOutcome, "description": "With `wait`: every store concerned "
               "persisted it."},
        409: {"model": CommandOutcome, "description": "With `wait`: a store rejected it (for "
              "example the email is taken) or kept a newer version."},
        413: {"model": ErrorBody, "description": "Body too large."},
        422: {"model": ErrorBody, "description": "Invalid input (field errors; nothing was "
              "published), card data in the request, or (with `wait`) dead-lettered."},
        503: {"model": ErrorBody, "description": "The event bus did not acknowledge the event; "
              "the command was not accepted."},
    }


#: The answers of the token and ownership checks of a user's command.
USER_AUTH: Responses = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
    403: {"model": ErrorBody, "description": "The operator token stands for no user."},
    404: {"model": ErrorBody, "description": "Not found: an id of another user, or of "
          "something of another user."},
}
#: The answers of the operator check of an operator's command.
OPERATOR_AUTH: Responses = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
    403: {"model": ErrorBody, "description": "Not an operator."},
}


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True)
class CommandRoutes:
    """`router.post` (put, patch, delete) of the command endpoints that share their callers.

    Every command answers 202 Accepted once published and documents a command's answers plus
    those of its authorisation (`auth`); every description ends with the same note on who may
    call it. So an endpoint states only its path and its prose, and answers it alone gives
    (`more`)."""

    auth: Responses
    note: str

    def __call__(
        self, method: Callable[..., Callable[[_Endpoint], _Endpoint]], path: str, *,
        summary: str, description: str, creates: bool = False, more: Responses | None = None,
    ) -> Callable[[_Endpoint], _Endpoint]:
        responses = {**command_responses(creates), **self.auth, **(more or {})}
        return method(path, status_code=202, responses=responses, summary=summary,
                      description=description + self.note)


#: A user's command on a path that names the user.
own_user_command = CommandRoutes(USER_AUTH, note=(
    "\n\nNeeds a user's `access_token`; `user_id` must be the caller's own id (another id "
    "answers 404)."
))
#: An operator's command (the router itself admits operators only).
operator_command = CommandRoutes(OPERATOR_AUTH, note=(
    "\n\nOperators only: `Authorization: Bearer <token>` with an operator account's "
    "`access_token` or the operator token."
))
