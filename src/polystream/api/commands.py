"""The path every command takes: validate as an event, publish, wait if asked.

1. The request body was already validated by its own model (FastAPI), then the payload is
   validated again by the event contract through `new_event`: the cross-field rules live in
   the contract only, and the API must never publish an event a consumer would refuse.
2. `publish` is awaited until Kafka acknowledged the record (idempotent producer, acks=all),
   bounded by ``settings.api.publish_timeout_s``. Only then is the command reported as accepted.
3. The result says what happened; `command_http.answer` turns it into the HTTP answer (202
   without `wait`; with it, see `events/service.py`). Nothing here knows HTTP: refusals are
   raised as `refusals.Refusal`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polystream.api.deps import ApiRuntime
from polystream.api.errors import INVALID_REQUEST, FieldProblem, event_problems
from polystream.api.events.schemas import CommandAccepted, EventStatus
from polystream.api.events.service import wait_for_status
from polystream.api.refusals import Busy, Invalid, TooLarge
from polystream.bus.ports import BusError
from polystream.bus.topology import topic_of
from polystream.domain.errors import EventValidationError, OversizedEvent
from polystream.domain.events import (
    AnyEvent,
    Payload,
    UserRegistered,
    encode,
    new_event,
    parse_payload,
    redact,
)
from polystream.observe.logs import bind
from polystream.observe.metrics import COMMANDS
from polystream.observe.tracing import event_headers, publish_span
from polystream.shred.bus import ShreddingPublisher

log = logging.getLogger("polystream.api.commands")

PUBLISH_FAILED = (
    "the event bus did not accept the event, so the command was not accepted; retry later"
)


@dataclass(frozen=True, slots=True)
class CommandOptions:
    #: Seconds to wait for the stores (0 = answer 202 as soon as the event is published).
    wait_s: float
    #: The request's W3C trace id, or a new one: the event and every log line carry it.
    trace_id: str


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
    if isinstance(event.payload, UserRegistered):
        return None
    user_id = getattr(event.payload, "user_id", None)
    return user_id if isinstance(user_id, str) else None


def build_event(runtime: ApiRuntime, command: Command, options: CommandOptions) -> AnyEvent:
    try:
        payload = parse_payload(command.payload_model, command.payload)
        return new_event(payload, source=runtime.deps.source, trace_id=options.trace_id)
    except EventValidationError as exc:
        COMMANDS.labels(command.payload_model.event_type, "refused").inc()
        raise Invalid(INVALID_REQUEST, event_problems(exc.errors, command.where)) from None


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
        raise TooLarge("the event would be too large", [
            FieldProblem(field="body", message=exc.reason, type="too_large")]) from None
    timeout = runtime.settings.api.publish_timeout_s
    topic = topic_of(event.type).value
    publisher = runtime.deps.publisher
    try:
        if isinstance(publisher, ShreddingPublisher) and not publisher.ready(event.type,
                                                                             event.key):
            # The user's first personal event in this process: their data key is read (or
            # created: two statements) in PostgreSQL, off the event loop; `publish` then
            # seals from the cache.
            await runtime.lookup(publisher.prepare, event.key)
        with publish_span(topic, event.type) as span:
            future = publisher.publish(
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
        raise Busy(PUBLISH_FAILED, retry_after_s=1) from None
    except TimeoutError:
        COMMANDS.labels(event.type, "failed").inc()
        log.error("publish of %s %s not acknowledged within %gs", event.type, event.event_id,
                  timeout)
        raise Busy(f"the event bus did not acknowledge the event within {timeout:g}s, so the "
                   "command was not accepted; retry later", retry_after_s=1) from None


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


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of a command: published (`status` None: the caller did not wait), or
    what the stores did with it within the wait."""

    accepted: CommandAccepted
    creates: bool
    wait_s: float
    status: EventStatus | None = None


async def submit(runtime: ApiRuntime, options: CommandOptions, command: Command
                 ) -> CommandResult:
    """Validate, publish and (when asked) wait for the stores."""
    event = await accept(runtime, options, command)
    accepted = CommandAccepted(
        event_id=event.event_id,
        type=event.type,
        status_url=status_url(event),
        resource_id=command.resource_id,
    )
    result = CommandResult(accepted, command.creates, options.wait_s)
    if options.wait_s <= 0:
        return result
    status = await wait_for_status(
        runtime.deps.receipts, event.event_id, event.type, options.wait_s
    )
    return CommandResult(accepted, command.creates, options.wait_s, status)
