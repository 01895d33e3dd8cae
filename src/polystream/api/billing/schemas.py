"""Request bodies of the subscription and payment commands."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from polystream.api.fields import Instant, RequestModel
from polystream.api.ownership import USER_ID_NOTE
from polystream.domain.events import (
    CancellationReason,
    CardBrand,
    CardToken,
    Cents,
    CurrencyCode,
    Id,
    Last4,
    PaymentFailureReason,
    PlanCode,
)


class StartSubscription(RequestModel):
    user_id: Id | None = Field(default=None, description=USER_ID_NOTE)
    plan: PlanCode
    period_start: Instant | None = Field(default=None, description="Default: now.")
    period_end: Instant | None = Field(
        default=None, description="Default: one calendar month after period_start."
    )


class ChangePlan(RequestModel):
    user_id: Id | None = Field(default=None, description=USER_ID_NOTE)
    from_plan: PlanCode = Field(description="The current plan (the API does not read state).")
    to_plan: PlanCode


class CancelSubscription(RequestModel):
    user_id: Id | None = Field(default=None, description=USER_ID_NOTE)
    reason: CancellationReason = CancellationReason.USER_REQUEST
    ends_at: Instant | None = Field(
        default=None, description="When access ends (end of the paid period). Default: now."
    )


class RecordPayment(RequestModel):
    """A payment processed by the payment provider. Only its token, brand and last four
    digits are accepted: a request carrying a card number or a CVV anywhere is refused."""

    subscription_id: Id
    user_id: Id | None = Field(default=None, description=USER_ID_NOTE)
    amount_cents: Cents
    currency: CurrencyCode
    card_token: CardToken = Field(description="The provider's token, `tok_...`.")
    card_brand: CardBrand
    card_last4: Last4
    outcome: Literal["succeeded", "failed"] = "succeeded"
    failure_reason: PaymentFailureReason | None = Field(
        default=None, description="Required when outcome is failed, refused otherwise."
    )

    @model_validator(mode="after")
    def _reason_matches_outcome(self) -> Self:
        if self.outcome == "failed" and self.failure_reason is None:
            raise ValueError("failure_reason is required when outcome is failed")
        if self.outcome == "succeeded" and self.failure_reason is not None:
            raise ValueError("failure_reason is only allowed when outcome is failed")
        return self
