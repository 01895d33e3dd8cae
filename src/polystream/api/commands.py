"""The path every command takes: validate as an event, publish, answer (or wait).

1. The request body was already validated by its own model (FastAPI), then the payload is
   validated again by the event contract through `new_event`: the cross-field rules live in
   the contract only, and the API must never publish an event a consumer would refuse.
2. `publish` is awaited until Kafka acknowledged the record (idempotent producer, acks=all),
   bounded by ``settings.api.publish_timeout_s``. Only then is the command reported as accepted.
3. Without `wait` the answer is ``202 Accepted``; with it, see `events/service.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query
from fastapi.responses import JSONResponse

from polystream.api.deps import ApiRuntime, Runtime
from polystream.api.errors import (
    INVALID_REQUEST,
    ApiError,
    ErrorBody,
    FieldProblem,
    event_problems,
)
from polystream.api.events.schemas import CommandAccepted, CommandOutcome, EventStatus
from polystream.api.events.service import wait_for_status
from polystream.bus.ports import BusError
from polystream.bus.topology import topic_of
from polystream.domain.errors import EventValidationError, OversizedEvent
from polystream.domain.events import (
    AnyEvent,
    Payload,
    encode,
    new_event,
    new_trace_id,
    parse_payload,
    redact,
)
from polystream.observe.logs import bind
from polystream.observe.metrics import COMMANDS
from polystream.observe.tracing import current_trace_id, event_headers, publish_span, trace_id_of

log = logging.getLogger("polystream.api.commands")

PUBLISH_FAILED = (
    "the event bus did not accept the event, so the command was not accepted; retry later"
)

# RFC 7240 preference "wait=<seconds>", possibly among others ("respond-async, wait=5").
_PREFER_WAIT = re.compile(r"(?:^|[,;]\s*)wait\s*=\s*\"?([0-9]+(?:\.[0-9]+)?)\"?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CommandOptions:
    #: Seconds to wait for the stores (0 = answer 202 as soon as the event is published).
    wait_s: float
    #: The request's W3C trace id, or a new one: the event and every log line carry it.
    trace_id: str


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


@dataclass(frozen=True, slots=True)
class Command:
    #: The payload class of the event to publish (its event type is the class's).
    payload_model: type[Payload]
    #: The payload's fields as the request gave them; validated by the contract.
    payload: Mapping[str, Any]
    #: Creations answer 201 (not 200) once stored.
    creates: bool = False
    resource_id: str | None = None
    #: Payload field -> request location, for fields that did not come from the body.
    where: Mapping[str, str] = field(default_factory=dict)


def status_url(event: AnyEvent) -> str:
    # The type hint lets the status endpoint list the stores still pending before any of them
    # has written a receipt (receipts are the only place the API could learn the type from).
    return f"/events/{event.event_id}?type={event.type}"


def owner_digest(user_id: str) -> str:
    """What the owner key holds: not the user id itself, so an erased user's id is left
    nowhere in Redis (the key expires with the receipts)."""
    return hashlib.sha256(user_id.encode()).hexdigest()


def sender_of(event: AnyEvent) -> str | None:
    """The user who sent the command: only they (and operators) read the event's status.

    A user command's ``user_id`` is always the token's (``ownership.own_user_id``), and the
    operators' commands carry none. A sign-up's new user is no caller yet (and is given no
    event id to follow), so its status is for operators only."""
    if event.type == "user.registered":
        return None
    user_id = getattr(event.payload, "user_id", None)
    return user_id if isinstance(user_id, str) else None


def build_event(runtime: ApiRuntime, command: Command, options: CommandOptions) -> AnyEvent:
    try:
        payload = parse_payload(command.payload_model, command.payload)
        return new_event(payload, source=runtime.deps.source, trace_id=options.trace_id)
    except EventValidationError as exc:
        COMMANDS.labels(command.payload_model.event_type, "refused").inc()
        raise ApiError(
            422,
            INVALID_REQUEST,
            event_problems(exc.errors, command.where),
        ) from None


async def _record_owner(runtime: ApiRuntime, event: AnyEvent, owner: str) -> None:
    # A failure does not refuse the command: the event is the truth, its status a courtesy
    # (the owner then gets 404 for it, operators still read it).
    try:
        await runtime.lookup(runtime.deps.receipts.set_owner, event.event_id,
                             owner_digest(owner))
    except Exception as exc:
        log.warning("owner of %s not recorded: %s", event.event_id, type(exc).__name__)


async def publish(runtime: ApiRuntime, event: AnyEvent, owner: str | None = None) -> None:
    try:
        raw = encode(event)
    except OversizedEvent as exc:
        COMMANDS.labels(event.type, "refused").inc()
        raise ApiError(
            413,
            "the event would be too large",
            [FieldProblem(field="body", message=exc.reason, type="too_large")],
        ) from None
    timeout = runtime.settings.api.publish_timeout_s
    topic = topic_of(event.type).value
    try:
        with publish_span(topic, event.type) as span:
            future = runtime.deps.publisher.publish(
                topic, event.key, raw, event_headers(event.trace_id, str(event.event_id), span))
            # The owner's key is written while Kafka acknowledges: no extra latency.
            owned = (asyncio.ensure_future(_record_owner(runtime, event, owner))
                     if owner is not None else None)
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            finally:
                if owned is not None:
                    await owned
    except BusError as exc:  # PublishError, or any other refusal of the bus
        COMMANDS.labels(event.type, "failed").inc()
        log.error("publish of %s %s failed: %s", event.type, event.event_id, exc)
        raise ApiError(503, PUBLISH_FAILED, headers={"Retry-After": "1"}) from None
    except TimeoutError:
        COMMANDS.labels(event.type, "failed").inc()
        log.error("publish of %s %s not acknowledged within %gs", event.type, event.event_id,
                  timeout)
        raise ApiError(
            503,
            f"the event bus did not acknowledge the event within {timeout:g}s, so the command "
            "was not accepted; retry later",
            headers={"Retry-After": "1"},
        ) from None


async def accept(runtime: ApiRuntime, options: CommandOptions, command: Command) -> AnyEvent:
    """Validate and publish one command; counted and logged with its trace and event ids."""
    # Here, not in the (threadpool) dependency: the binding must live in the request's task.
    bind(trace_id=options.trace_id)
    event = build_event(runtime, command, options)
    await publish(runtime, event, sender_of(event))
    COMMANDS.labels(event.type, "accepted").inc()
    bind(event_id=str(event.event_id))
    log.info("accepted %s %s", event.type, event.event_id,
             extra={"event_type": event.type})
    if log.isEnabledFor(logging.DEBUG):
        log.debug("accepted event %s", redact(event, personal=True))
    return event


async def submit(runtime: ApiRuntime, options: CommandOptions, command: Command) -> JSONResponse:
    """Validate, publish and answer one command."""
    event = await accept(runtime, options, command)
    accepted = CommandAccepted(
        event_id=event.event_id,
        type=event.type,
        status_url=status_url(event),
        resource_id=command.resource_id,
    )
    headers = {"Location": f"/events/{event.event_id}"}
    if options.wait_s <= 0:
        return JSONResponse(_without_nulls(accepted.model_dump(mode="json")), 202, headers)
    headers["Preference-Applied"] = f"wait={options.wait_s:g}"
    status = await wait_for_status(
        runtime.deps.receipts, event.event_id, event.type, options.wait_s
    )
    return outcome_response(accepted, status, command.creates, headers)


def outcome_response(
    accepted: CommandAccepted, status: EventStatus, creates: bool, headers: dict[str, str]
) -> JSONResponse:
    outcome = CommandOutcome(
        **accepted.model_dump(), status=status.status, sinks=status.sinks, detail=status.detail
    )
    code = {
        "stored": 201 if creates else 200,
        "rejected": 409,
        "stale": 409,
        "dead_lettered": 422,
    }.get(status.status, 202)
    return JSONResponse(_without_nulls(outcome.model_dump(mode="json")), code, headers)


def _without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    # Top level only: a sink's ``reason: null`` is information, an absent resource_id is not.
    return {key: value for key, value in body.items() if value is not None}


def command_responses(creates: bool = False) -> dict[int | str, dict[str, Any]]:
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


def user_responses(creates: bool = False) -> dict[int | str, dict[str, Any]]:
    """A user command's answers: a command's, plus those of the token and ownership checks."""
    return {
        **command_responses(creates),
        401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
        403: {"model": ErrorBody, "description": "The operator token stands for no user."},
        404: {"model": ErrorBody, "description": "Not found: an id of another user, or of "
              "something of another user."},
    }


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def command_route(
    method: Callable[..., Callable[[_Endpoint], _Endpoint]], path: str, *,
    responses: dict[int | str, dict[str, Any]], summary: str, description: str,
) -> Callable[[_Endpoint], _Endpoint]:
    """`router.post` (put, patch, delete) of a command endpoint: every command answers 202
    Accepted once published, so an endpoint states only its path, answers and prose."""
    return method(path, status_code=202, responses=responses, summary=summary,
                  description=description)
