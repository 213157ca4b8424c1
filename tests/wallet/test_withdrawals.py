"""The withdrawal core: limits, thresholds, risk rules, the transition table and the holds."""

from __future__ import annotations

import pytest

from ledger import TransferFlags
from wallet import accounts
from wallet import withdrawals as wd
from wallet.withdrawals import Limits, RiskFacts, State

CALM = RiskFacts(
    account_age_s=30 * wd.DAY_S,
    withdrawals_24h=0,
    deposited_usd_cents=10**9,
    amount_usd_cents=0,
    new_destination=False,
    had_destination=True,
)


def ask(usd_cents: int, last_24h: int = 0, facts: RiskFacts = CALM, fee: int = 300):
    return wd.request(
        "wd_1",
        "p1",
        "USD",
        usd_cents,
        fee,
        "card_refund",
        "dep_1",
        usd_cents,
        last_24h,
        facts,
        Limits(),
    )


def test_a_small_calm_withdrawal_is_approved_at_once_with_linked_holds() -> None:
    w, (payout, fee) = ask(10_000)
    assert w.state is State.APPROVED and not w.needs_approval and w.payout == 9_700
    assert (payout.debit_account_id, payout.credit_account_id, payout.amount) == (
        accounts.user("p1", "USD").id,
        accounts.settlement("USD").id,
        9_700,
    )
    assert payout.flags == TransferFlags.PENDING | TransferFlags.LINKED
    assert (fee.credit_account_id, fee.amount, fee.flags) == (
        accounts.revenue("USD").id,
        300,
        TransferFlags.PENDING,
    )


def test_above_the_threshold_it_needs_totp_then_an_admin() -> None:
    w, _ = ask(100_001)
    assert w.state is State.AWAITING_TOTP and w.needs_approval
    with pytest.raises(wd.IllegalTransition):
        wd.approve(w, "root")  # not before the player confirmed
    w = wd.confirm_totp(w)
    assert w.state is State.AWAITING_APPROVAL
    with pytest.raises(wd.Refused) as own:
        wd.approve(w, "p1")
    assert own.value.code == "own_withdrawal"
    w = wd.approve(w, "root")
    assert (w.state, w.approved_by) == (State.APPROVED, "root")
    assert [s for s, _ in w.history] == ["awaiting_totp", "awaiting_approval", "approved"]
    assert ask(100_000)[0].state is State.APPROVED  # the threshold itself needs nothing


def test_the_daily_limit_counts_the_last_24_hours() -> None:
    assert ask(400_000, last_24h=600_000)[0].state is State.AWAITING_TOTP
    with pytest.raises(wd.Refused) as over:
        ask(400_001, last_24h=600_000)
    assert over.value.code == "daily_limit" and "4000.00 USD is left" in str(over.value)


def test_risk_rules() -> None:
    assert wd.risk(CALM) == (0, ())
    risky = RiskFacts(
        account_age_s=3600,
        withdrawals_24h=3,
        deposited_usd_cents=1_000,
        amount_usd_cents=5_000,
        new_destination=True,
        had_destination=True,
    )
    assert wd.risk(risky) == (
        115,
        ("velocity", "new_account", "above_deposits", "changed_destination"),
    )
    shared = RiskFacts(
        30 * wd.DAY_S, 0, 10_000, 5_000, False, True, shared_destination=True
    )  # (an old account, a destination it used before, that another account used too)
    assert wd.risk(shared) == (50, ("shared_destination",))
    first_ever = RiskFacts(
        30 * wd.DAY_S, 0, 10_000, 5_000, new_destination=True, had_destination=False
    )
    assert wd.risk(first_ever) == (0, ())
    w, _ = ask(5_000, facts=RiskFacts(3600, 0, 1_000, 5_000, False, True))
    assert (w.state, w.risk_score, w.risk_reasons) == (
        State.IN_REVIEW,
        60,
        ("new_account", "above_deposits"),
    )
    assert wd.approve(w, "root").state is State.APPROVED


def test_sending_then_sent_posts_and_failed_voids_the_holds() -> None:
    w, holds = ask(10_000)
    out = wd.sending(w)
    done, posts = wd.sent(out, "re_1")
    assert done.state is State.SENT and done.provider_ref == "re_1"
    assert [p.pending_id for p in posts] == [h.id for h in holds]
    assert posts[0].flags == TransferFlags.POST_PENDING | TransferFlags.LINKED
    assert posts[1].flags == TransferFlags.POST_PENDING
    lost, voids = wd.failed(out)
    assert lost.state is State.FAILED and all(v.flags & TransferFlags.VOID_PENDING for v in voids)
    with pytest.raises(wd.IllegalTransition):
        wd.cancel(out)  # too late: it is on its way


def test_reject_and_cancel_void_and_end_it() -> None:
    w, holds = ask(5_000, facts=RiskFacts(3600, 0, 1_000, 5_000, False, True))
    rejected, voids = wd.reject(w, "root")
    assert rejected.state is State.REJECTED and [v.pending_id for v in voids] == [
        h.id for h in holds
    ]
    cancelled, _ = wd.cancel(ask(10_000)[0])
    assert cancelled.state is State.CANCELLED
    for end in (rejected, cancelled):
        for to in State:
            with pytest.raises(wd.IllegalTransition):
                wd.move(end, to, "x")


def test_a_fee_free_withdrawal_holds_once_and_a_fee_must_leave_something() -> None:
    w, holds = ask(10_000, fee=0)
    assert len(holds) == 1 and holds[0].flags == TransferFlags.PENDING
    assert len(wd.sent(wd.sending(w), "x")[1]) == 1
    with pytest.raises(wd.Refused) as small:
        ask(300, fee=300)
    assert small.value.code == "amount_too_small"
    with pytest.raises(wd.Refused) as tiny:
        ask(99, fee=0)
    assert tiny.value.code == "amount_too_small"


def test_a_sent_withdrawal_that_bounces_is_returned_with_its_fee() -> None:
    w, _ = ask(10_000)
    done, _ = wd.sent(wd.sending(w), "re_1")
    back, transfers = wd.returned(done)
    assert back.state is State.RETURNED
    payout, fee = transfers
    wallet = accounts.user("p1", "USD").id
    assert (payout.debit_account_id, payout.credit_account_id, payout.amount) == (
        accounts.settlement("USD").id,
        wallet,
        9_700,
    )
    assert (fee.debit_account_id, fee.credit_account_id, fee.amount) == (
        accounts.revenue("USD").id,
        wallet,
        300,
    )
    assert payout.flags == TransferFlags.LINKED and payout.code == accounts.Code.WITHDRAWAL_RETURN
    assert wd.returned(done)[1][0].id == payout.id  # the same ids every time
    with pytest.raises(wd.IllegalTransition):
        wd.returned(back)
    with pytest.raises(wd.IllegalTransition):
        wd.returned(w)  # not sent
