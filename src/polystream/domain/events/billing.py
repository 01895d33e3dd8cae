"""Payloads of the billing family (subscriptions and payments), and the plan catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Self

from pydantic import Field, model_validator

from polystream.domain.events.payload import Payload
from polystream.domain.events.types import (
    CardToken,
    Cents,
    CurrencyCode,
    Id,
    Last4,
    UtcDatetime,
)


class PlanCode(StrEnum):
    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"


@dataclass(frozen=True, slots=True)
class Plan:
    """An entry of the fixed plan catalogue (seeded into the ``plans`` table)."""

    code: PlanCode
    name: str
    price_cents: int
    currency: str
    max_streams: int
    max_resolution: str


#: The plan catalogue. Events refer to plans by code only, so a later price change does not
#: make old events wrong; the stream limit is what the Redis sink enforces during playback.
PLANS: Final[Mapping[PlanCode, Plan]] = MappingProxyType(
    {
        PlanCode.BASIC: Plan(PlanCode.BASIC, "Basic", 799, "EUR", 1, "720p"),
        PlanCode.STANDARD: Plan(PlanCode.STANDARD, "Standard", 1299, "EUR", 2, "1080p"),
        PlanCode.PREMIUM: Plan(PlanCode.PREMIUM, "Premium", 1799, "EUR", 4, "2160p"),
    }
)

_MAX_PERIOD = timedelta(days=366)


def _check_period(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValueError("period_end must be after period_start")
    if end - start > _MAX_PERIOD:
        raise ValueError("a billing period lasts at most 366 days")


class SubscriptionStarted(Payload):
    """A user subscribed; the first period is paid by a ``payment.succeeded``."""

    subscription_id: Id
    user_id: Id
    plan: PlanCode
    period_start: UtcDatetime
    period_end: UtcDatetime

    @model_validator(mode="after")
    def _period_is_forward(self) -> Self:
        _check_period(self.period_start, self.period_end)
        return self


class SubscriptionPlanChanged(Payload):
    """Upgrade or downgrade, effective at ``occurred_at``."""

    subscription_id: Id
    user_id: Id
    from_plan: PlanCode
    to_plan: PlanCode

    @model_validator(mode="after")
    def _plan_differs(self) -> Self:
        if self.from_plan == self.to_plan:
            raise ValueError("to_plan must differ from from_plan")
        return self


class SubscriptionRenewed(Payload):
    """A new billing period began."""

    subscription_id: Id
    user_id: Id
    plan: PlanCode
    period_start: UtcDatetime
    period_end: UtcDatetime
    payment_id: Id | None = Field(default=None, description="The payment that paid it.")

    @model_validator(mode="after")
    def _period_is_forward(self) -> Self:
        _check_period(self.period_start, self.period_end)
        return self


class CancellationReason(StrEnum):
    USER_REQUEST = "user_request"
    PAYMENT_FAILED = "payment_failed"
    FRAUD = "fraud"
    ACCOUNT_ERASED = "account_erased"


class SubscriptionCanceled(Payload):
    """Cancellation; access lasts until ``ends_at`` (end of the paid period, or now)."""

    subscription_id: Id
    user_id: Id
    reason: CancellationReason
    ends_at: UtcDatetime


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    DINERS = "diners"
    UNIONPAY = "unionpay"
    MAESTRO = "maestro"


class _CardPayment(Payload):
    # The processor's token, brand and last four digits are all that is ever stored: with
    # them support can say "your Visa ending 4242" without the system holding card data.
    payment_id: Id
    subscription_id: Id
    user_id: Id
    amount_cents: Cents
    currency: CurrencyCode
    card_token: CardToken
    card_brand: CardBrand
    card_last4: Last4


class PaymentSucceeded(_CardPayment):
    """The processor captured a payment."""


class PaymentFailureReason(StrEnum):
    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    AUTHENTICATION_REQUIRED = "authentication_required"
    FRAUD_SUSPECTED = "fraud_suspected"
    PROCESSING_ERROR = "processing_error"


class PaymentFailed(_CardPayment):
    """The processor refused or could not process a payment."""

    failure_reason: PaymentFailureReason


class RefundReason(StrEnum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    SERVICE_ISSUE = "service_issue"


class PaymentRefunded(Payload):
    """Money returned for an earlier payment (``payment_id``), to the card it came from.

    No card fields: the refund goes back through the original payment, so repeating the
    token here would only spread a secret further.
    """

    payment_id: Id
    refund_id: Id
    subscription_id: Id
    user_id: Id
    amount_cents: Cents
    currency: CurrencyCode
    reason: RefundReason


__all__ = [
    "PLANS",
    "CancellationReason",
    "CardBrand",
    "PaymentFailed",
    "PaymentFailureReason",
    "PaymentRefunded",
    "PaymentSucceeded",
    "Plan",
    "PlanCode",
    "RefundReason",
    "SubscriptionCanceled",
    "SubscriptionPlanChanged",
    "SubscriptionRenewed",
    "SubscriptionStarted",
]
