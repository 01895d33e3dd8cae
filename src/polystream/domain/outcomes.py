"""What applying one event did: the verdict the rules give and every store records.

It lives in the domain because the rules (pure code) decide it; the stores in `sinks/` only
carry it out and the worker turns it into a receipt.
"""

from __future__ import annotations

from dataclasses import dataclass

from polystream.domain.events import ReceiptStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    status: ReceiptStatus
    reason: str | None = None
    #: A REJECTED outcome whose cause may go away: the event refers to something that lives on
    #: another topic (a user, a subscription) and may simply not have been read yet, because
    #: Kafka orders events per partition, not across topics. The store applied and recorded
    #: NOTHING for it (no ledger row, no marker), so the worker can offer it again later; after
    #: `apply(..., allow_defer=False)` the same rejection is final and recorded.
    retryable: bool = False


STORED = Outcome(ReceiptStatus.STORED)
DUPLICATE = Outcome(ReceiptStatus.DUPLICATE)
STALE = Outcome(ReceiptStatus.STALE)


def rejected(reason: str) -> Outcome:
    return Outcome(ReceiptStatus.REJECTED, reason)


def missing_prerequisite(reason: str) -> Outcome:
    """The event needs state that another topic brings (see `Outcome.retryable`)."""
    return Outcome(ReceiptStatus.REJECTED, reason, retryable=True)
