"""/subscriptions and /payments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from polystream.api.auth import CurrentUser
from polystream.api.billing import service
from polystream.api.billing.schemas import (
    CancelSubscription,
    ChangePlan,
    RecordPayment,
    StartSubscription,
)
from polystream.api.command_http import USER_AUTH, CommandRoutes, Options, answer
from polystream.api.deps import Runtime
from polystream.api.ownership import check_subscription, own_user_id
from polystream.domain.events import Id

router = APIRouter(tags=["billing"])

SubscriptionIdPath = Annotated[Id, Path(description="The subscription's id.")]

command = CommandRoutes(USER_AUTH, note=(
    "\n\nNeeds a user's `access_token`; acts for that user only (a subscription of "
    "another user answers 404)."
))


@command(router.post, "/subscriptions", creates=True, summary="Start a subscription",
         description="Publishes `subscription.started`; `resource_id` is the subscription's id.")
async def start_subscription(
    body: StartSubscription, principal: CurrentUser, runtime: Runtime, options: Options
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    return answer(await service.start_subscription(runtime, user_id, body, options))


@command(router.post, "/subscriptions/{subscription_id}/plan",
         summary="Change a subscription's plan",
         description="Publishes `subscription.plan_changed`.")
async def change_plan(
    subscription_id: SubscriptionIdPath, body: ChangePlan, principal: CurrentUser,
    runtime: Runtime, options: Options,
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    await check_subscription(runtime, principal, subscription_id)
    return answer(await service.change_plan(runtime, user_id, subscription_id, body, options))


@command(router.post, "/subscriptions/{subscription_id}/cancel", summary="Cancel a subscription",
         description="Publishes `subscription.canceled`.")
async def cancel_subscription(
    subscription_id: SubscriptionIdPath,
    body: CancelSubscription,
    principal: CurrentUser,
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    await check_subscription(runtime, principal, subscription_id)
    return answer(
        await service.cancel_subscription(runtime, user_id, subscription_id, body, options))


@command(
    router.post, "/payments", creates=True, summary="Record a payment",
    description="Publishes `payment.succeeded` or `payment.failed`; `resource_id` is the "
    "payment's id. Send the provider's token, the card brand and the last four digits only: "
    "any request carrying something that looks like a card number or a CVV is refused with "
    "422 and never logged.",
)
async def record_payment(
    body: RecordPayment, principal: CurrentUser, runtime: Runtime, options: Options
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    await check_subscription(runtime, principal, body.subscription_id)
    return answer(await service.record_payment(runtime, user_id, body, options))
