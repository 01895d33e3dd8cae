"""Subscriptions and payments: monthly periods, renewals, dunning, cancellations, refunds.

A failed renewal is retried ``Behaviour.retry_delays_h`` hours later before the subscription
is canceled as unpaid; migrated customers renew from day one.
"""

from __future__ import annotations

import calendar

from polystream.domain import events as ev
from polystream.domain.events import PLANS, PlanCode
from polystream.simulate.actor import Actor
from polystream.simulate.sampling import FAILURES, PLAN_CODES, PLANS_DRAW, REFUND_REASONS, card
from polystream.simulate.state import ACTIVE, CANCELING, ENDED, PAST_DUE, PENDING, Sub, User
from polystream.simulate.wire import DAY_MS, HOUR_MS, MINUTE_MS, from_ms, to_ms


def add_months(t_ms: int, months: int = 1) -> int:
    """The same day and time ``months`` calendar months later (day clamped: Jan 31 -> Feb 28)."""
    moment = from_ms(t_ms)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return to_ms(moment.replace(year=year, month=month, day=day))


class Billing(Actor):
    def on_subscribe(self, t: int, arg: tuple[User, bool]) -> None:
        user, migrated = arg
        if user.erasing or (user.sub is not None and user.sub.status != ENDED):
            return
        sub = Sub(self._id(t), user, PLANS_DRAW.pick(self.rng))
        user.sub = sub
        if migrated:
            # Paid in the legacy system before the simulation: the current period started up
            # to a month ago, so renewals are spread over the first simulated month.
            sub.period_end = t + self._between(HOUR_MS, 30 * DAY_MS)
            sub.period_start = add_months(sub.period_end, -1)
            sub.status = ACTIVE
            self._at(sub.period_end, self._on_renewal_due, sub)
            self._plan_period(t, sub)
        else:
            sub.period_start = t
            sub.period_end = add_months(t)
            self._at(t + self._between(1000, 4000), self._on_first_payment, sub)
        ptime = self._ptime
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{user.user_id}","plan":"{sub.plan}",'
            f'"period_start":"{ptime(sub.period_start)}","period_end":"{ptime(sub.period_end)}"}}'
        )
        self._emit(ev.SubscriptionStarted, t, user.user_id, self._trace(), payload)

    def emit_cancel(self, t: int, sub: Sub, reason: str, ends_at: int, trace: str) -> None:
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"reason":"{reason}","ends_at":"{self._ptime(ends_at)}"}}'
        )
        self._emit(ev.SubscriptionCanceled, t, sub.user.user_id, trace, payload)

    def _pay(self, t: int, sub: Sub, success: bool) -> str | None:
        """Emit a payment attempt for ``sub``'s plan; the payment id if it succeeded."""
        rng = self.rng
        user = sub.user
        plan = PLANS[PlanCode(sub.plan)]
        payment_id = self._id(t)
        token, brand, last4 = user.card
        head = (
            f'{{"payment_id":"{payment_id}","subscription_id":"{sub.sub_id}",'
            f'"user_id":"{user.user_id}","amount_cents":{plan.price_cents},'
            f'"currency":"{plan.currency}","card_token":"{token}","card_brand":"{brand}",'
            f'"card_last4":"{last4}"'
        )
        if success:
            self._emit(ev.PaymentSucceeded, t, user.user_id, self._trace(), head + "}")
            if rng.random() < self.b.refund_share:
                self._at(
                    t + self._between(DAY_MS, 5 * DAY_MS),
                    self._on_refund,
                    (sub, payment_id, plan.price_cents, plan.currency),
                )
            return payment_id
        reason = FAILURES.pick(rng)
        self._emit(
            ev.PaymentFailed, t, user.user_id, self._trace(),
            f'{head},"failure_reason":"{reason}"}}',
        )  # fmt: skip
        if reason in ("expired_card", "card_declined", "fraud_suspected"):
            user.card = card(rng)  # the customer updates the card before the retry
        return None

    def _on_first_payment(self, t: int, sub: Sub) -> None:
        if sub.user.erasing or sub.status != PENDING:
            return
        if self._pay(t, sub, self.rng.random() >= self.b.payment_failure_share):
            sub.status = ACTIVE
            sub.failures = 0
            self._at(sub.period_end, self._on_renewal_due, sub)
            self._plan_period(t, sub)
            return
        sub.failures += 1
        if sub.failures < 3:
            self._at(t + self._between(2 * MINUTE_MS, 20 * MINUTE_MS), self._on_first_payment, sub)
        else:
            self._at(t + self._between(1000, 5000), self._on_cancel_unpaid, sub)

    def _plan_period(self, t: int, sub: Sub) -> None:
        """Things that may happen during the paid period that just began."""
        rng = self.rng
        span = sub.period_end - t
        if span <= 2000:
            return
        if rng.random() < self.b.monthly_cancel_share:
            self._at(t + self._between(1000, span - 1000), self._on_cancel_voluntary, sub)
        if rng.random() < self.b.monthly_plan_change_share:
            self._at(t + self._between(1000, span - 1000), self._on_plan_change, sub)

    def _on_renewal_due(self, t: int, sub: Sub) -> None:
        if sub.user.erasing or sub.user.sub is not sub:
            return
        if sub.status == CANCELING:
            sub.status = ENDED  # access ends at ends_at == period_end; nothing to publish
            self._maybe_resubscribe(t, sub.user)
            return
        if sub.status != ACTIVE:
            return
        payment_id = self._pay(t, sub, self.rng.random() >= self.b.payment_failure_share)
        if payment_id is not None:
            self._at(t + self._between(300, 1500), self._on_renewed, (sub, payment_id))
            return
        sub.status = PAST_DUE
        sub.failures = 1
        delay = int(self.b.retry_delays_h[0] * HOUR_MS)
        self._at(t + delay + self._between(0, HOUR_MS), self._on_renewal_retry, sub)

    def _on_renewal_retry(self, t: int, sub: Sub) -> None:
        if sub.user.erasing or sub.status != PAST_DUE:
            return
        payment_id = self._pay(t, sub, self.rng.random() < self.b.retry_success_share)
        if payment_id is not None:
            self._at(t + self._between(300, 1500), self._on_renewed, (sub, payment_id))
            return
        sub.failures += 1
        # Retry k (1-based) runs retry_delays_h[k-1] hours after the failed renewal; after
        # failures == k + 1 the next one is due, unless that was the last.
        delays = self.b.retry_delays_h
        done = sub.failures - 1
        if done < len(delays):
            delay = int((delays[done] - delays[done - 1]) * HOUR_MS)
            self._at(t + max(HOUR_MS, delay), self._on_renewal_retry, sub)
        else:
            self._at(t + self._between(1000, 5000), self._on_cancel_unpaid, sub)

    def _on_renewed(self, t: int, arg: tuple[Sub, str]) -> None:
        sub, payment_id = arg
        if sub.user.erasing or sub.status not in (ACTIVE, PAST_DUE):
            return
        # The new period continues the old one, even when a retry captured it days late.
        sub.period_start = sub.period_end
        sub.period_end = add_months(sub.period_start)
        sub.status = ACTIVE
        sub.failures = 0
        self._at(sub.period_end, self._on_renewal_due, sub)
        self._plan_period(t, sub)
        ptime = self._ptime
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"plan":"{sub.plan}","period_start":"{ptime(sub.period_start)}",'
            f'"period_end":"{ptime(sub.period_end)}","payment_id":"{payment_id}"}}'
        )
        self._emit(ev.SubscriptionRenewed, t, sub.user.user_id, self._trace(), payload)

    def _on_cancel_unpaid(self, t: int, sub: Sub) -> None:
        if sub.user.erasing or sub.status not in (PENDING, PAST_DUE):
            return
        sub.status = ENDED
        self.emit_cancel(t, sub, "payment_failed", t, self._trace())
        self._maybe_resubscribe(t, sub.user)

    def _on_cancel_voluntary(self, t: int, sub: Sub) -> None:
        if sub.user.erasing or sub.status != ACTIVE or sub.user.sub is not sub:
            return
        sub.status = CANCELING
        self.emit_cancel(t, sub, "user_request", sub.period_end, self._trace())

    def _maybe_resubscribe(self, t: int, user: User) -> None:
        if self.rng.random() < self.b.resubscribe_share:
            self._at(t + self._between(DAY_MS, 45 * DAY_MS), self.on_subscribe, (user, False))

    def _on_plan_change(self, t: int, sub: Sub) -> None:
        if sub.user.erasing or sub.status != ACTIVE or sub.user.sub is not sub:
            return
        to_plan = self.rng.choice([code for code in PLAN_CODES if code != sub.plan])
        payload = (
            f'{{"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"from_plan":"{sub.plan}","to_plan":"{to_plan}"}}'
        )
        sub.plan = to_plan
        self._emit(ev.SubscriptionPlanChanged, t, sub.user.user_id, self._trace(), payload)

    def _on_refund(self, t: int, arg: tuple[Sub, str, int, str]) -> None:
        sub, payment_id, amount, currency = arg
        if sub.user.erasing:
            return
        reason = REFUND_REASONS.pick(self.rng)
        payload = (
            f'{{"payment_id":"{payment_id}","refund_id":"{self._id(t)}",'
            f'"subscription_id":"{sub.sub_id}","user_id":"{sub.user.user_id}",'
            f'"amount_cents":{amount},"currency":"{currency}","reason":"{reason}"}}'
        )
        self._emit(ev.PaymentRefunded, t, sub.user.user_id, self._trace(), payload)
