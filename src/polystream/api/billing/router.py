"""/subscriptions and /payments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from polystream.api.billing import service
from polystream.api.billing.schemas import (
    CancelSubscription,
    ChangePlan,
    RecordPayment,
    StartSubscription,
)
from polystream.api.commands import Options, command_responses
from polystream.api.deps import Runtime
from polystream.domain.events import Id

router = APIRouter(tags=["billing"])

SubscriptionIdPath = Annotated[Id, Path(description="The subscription's id.")]

_NO_AUTH_YET = (
    "\n\nNo per-user authorization yet: login and per-user access control come with the read "
    "API."
)


@router.post(
    "/subscriptions",
    status_code=202,
    responses=command_responses(creates=True),
    summary="Start a subscription",
    description="Publishes `subscription.started`; `resource_id` is the subscription's id."
    + _NO_AUTH_YET,
)
async def start_subscription(
    body: StartSubscription, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.start_subscription(runtime, body, options)


@router.post(
    "/subscriptions/{subscription_id}/plan",
    status_code=202,
    responses=command_responses(),
    summary="Change a subscription's plan",
    description="Publishes `subscription.plan_changed`." + _NO_AUTH_YET,
)
async def change_plan(
    subscription_id: SubscriptionIdPath, body: ChangePlan, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.change_plan(runtime, subscription_id, body, options)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    status_code=202,
    responses=command_responses(),
    summary="Cancel a subscription",
    description="Publishes `subscription.canceled`." + _NO_AUTH_YET,
)
async def cancel_subscription(
    subscription_id: SubscriptionIdPath,
    body: CancelSubscription,
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    return await service.cancel_subscription(runtime, subscription_id, body, options)


@router.post(
    "/payments",
    status_code=202,
    responses=command_responses(creates=True),
    summary="Record a payment",
    description="Publishes `payment.succeeded` or `payment.failed`; `resource_id` is the "
    "payment's id. Send the provider's token, the card brand and the last four digits only: "
    "any request carrying something that looks like a card number or a CVV is refused with "
    "422 and never logged." + _NO_AUTH_YET,
)
async def record_payment(body: RecordPayment, runtime: Runtime, options: Options) -> JSONResponse:
    return await service.record_payment(runtime, body, options)
