"""Billing commands -> subscription.* / payment.* events."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from uuid6 import uuid7

from polystream.api.billing.schemas import (
    CancelSubscription,
    ChangePlan,
    RecordPayment,
    StartSubscription,
)
from polystream.api.commands import Command, CommandOptions, CommandResult, submit
from polystream.api.deps import ApiRuntime
from polystream.domain.events import (
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionCanceled,
    SubscriptionPlanChanged,
    SubscriptionStarted,
)

_SUBSCRIPTION_IN_PATH = {"subscription_id": "path.subscription_id"}


def one_month_after(start: datetime) -> datetime:
    """Same day next month, clamped to the month's last day (Jan 31 -> Feb 28/29)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


async def start_subscription(
    runtime: ApiRuntime, user_id: str, body: StartSubscription, options: CommandOptions
) -> CommandResult:
    subscription_id = str(uuid7())
    start = body.period_start or datetime.now(UTC)
    payload = {
        "subscription_id": subscription_id,
        "user_id": user_id,
        "plan": body.plan,
        "period_start": start,
        "period_end": body.period_end or one_month_after(start),
    }
    return await submit(
        runtime,
        options,
        Command(SubscriptionStarted, payload, creates=True, resource_id=subscription_id),
    )


async def change_plan(
    runtime: ApiRuntime, user_id: str, subscription_id: str, body: ChangePlan,
    options: CommandOptions,
) -> CommandResult:
    payload = {"subscription_id": subscription_id, **body.model_dump(), "user_id": user_id}
    return await submit(
        runtime,
        options,
        Command(SubscriptionPlanChanged, payload, where=_SUBSCRIPTION_IN_PATH),
    )


async def cancel_subscription(
    runtime: ApiRuntime, user_id: str, subscription_id: str, body: CancelSubscription,
    options: CommandOptions,
) -> CommandResult:
    payload = {
        "subscription_id": subscription_id,
        "user_id": user_id,
        "reason": body.reason,
        "ends_at": body.ends_at or datetime.now(UTC),
    }
    return await submit(
        runtime,
        options,
        Command(SubscriptionCanceled, payload, where=_SUBSCRIPTION_IN_PATH),
    )


async def record_payment(
    runtime: ApiRuntime, user_id: str, body: RecordPayment, options: CommandOptions
) -> CommandResult:
    payment_id = str(uuid7())
    payload = body.model_dump(exclude={"outcome", "failure_reason"})
    payload["user_id"] = user_id
    payload["payment_id"] = payment_id
    model: type[PaymentSucceeded | PaymentFailed] = PaymentSucceeded
    if body.outcome == "failed":
        model = PaymentFailed
        payload["failure_reason"] = body.failure_reason
    return await submit(
        runtime, options, Command(model, payload, creates=True, resource_id=payment_id)
    )
