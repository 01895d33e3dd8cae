"""The accounts rules as pure code: no store, no server (the contract tests run them through
both stores)."""

from __future__ import annotations

from typing import get_args

from polystream.domain import accounts_rules
from polystream.domain.accounts import AccountPayload, Reason, first_unfit
from polystream.domain.accounts_rules import AccountState
from polystream.domain.events import ReceiptStatus, UserRegistered
from polystream.domain.examples import example_event
from polystream.domain.outcomes import STORED, Outcome, rejected


def test_every_account_payload_has_its_own_rule() -> None:
    registry = accounts_rules._decide.registry
    assert all(registry[model] is not registry[object] for model in get_args(AccountPayload))


def test_first_unfit_names_the_event_and_why() -> None:
    good = example_event("user.registered")
    bad = example_event(UserRegistered)
    # The contract refuses NUL at the door; a payload built past it must still be caught.
    payload = bad.payload.model_copy(update={"display_name": "\x00"})
    bad = bad.model_copy(update={"payload": payload})
    foreign = example_event("playback.progress")
    assert first_unfit([good]) is None
    nul = "display_name contains a NUL character"
    assert first_unfit([good, bad, foreign]) == (bad.event_id, nul)
    not_ours = "playback.progress is not an account event"
    assert first_unfit([foreign]) == (foreign.event_id, not_ours)


def test_a_rule_changes_the_rows_and_the_ledger_records_every_verdict() -> None:
    state = AccountState()
    first = example_event(UserRegistered)
    again = example_event(UserRegistered)  # same user id, new event id
    assert state.apply(first) == STORED
    assert state.apply(again) == rejected(Reason.USER_EXISTS)
    assert state.apply(first) == Outcome(ReceiptStatus.DUPLICATE)
    assert list(state.dirty_users) == [first.payload.user_id]
    assert [entry.reason for entry in state.new_processed] == [None, Reason.USER_EXISTS]
