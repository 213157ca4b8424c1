"""Pro subscriptions: anchored calendar months, one charge per period with a derived id,
late renewals that skip unused months, lapse, cancel and resume, and illegal transitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import derive_id
from wallet import accounts
from wallet import subscriptions as sb
from wallet.subscriptions import State


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


JAN31 = at("2027-01-31T10:00:00")


def active(now: int = JAN31) -> sb.Subscription:
    sub, _ = sb.start("sub_1", "p1", 999, now)
    return sb.paid(sub)


def test_months_are_anchored_and_clamped_to_the_month_end() -> None:
    ends = [sb.add_months(JAN31, k) for k in range(1, 5)]
    assert ends == [
        at("2027-02-28T10:00:00"),
        at("2027-03-31T10:00:00"),
        at("2027-04-30T10:00:00"),
        at("2027-05-31T10:00:00"),
    ]
    assert sb.add_months(at("2028-01-31T00:00:00"), 1) == at("2028-02-29T00:00:00")  # leap
    assert sb.add_months(at("2027-12-15T00:00:00"), 1) == at("2028-01-15T00:00:00")


@given(st.integers(0, 4_000_000_000), st.integers(0, 120))
def test_periods_follow_each_other_without_gaps(anchor: int, months: int) -> None:
    assert sb.add_months(anchor, months) < sb.add_months(anchor, months + 1)
    assert sb.add_months(anchor, months + 1) - sb.add_months(anchor, months) <= 31 * 86_400


def test_the_first_charge_pays_the_first_month() -> None:
    sub, first = sb.start("sub_1", "p1", 999, JAN31)
    assert sub.state is State.PENDING and not sb.is_pro(sub, JAN31)
    assert (first.debit_account_id, first.credit_account_id, first.amount, first.asset) == (
        accounts.user("p1", "USD").id,
        accounts.revenue("USD").id,
        999,
        "USD",
    )
    assert first.id == derive_id("subscription.charge", "sub_1", 0)
    sub = sb.paid(sub)
    assert sb.is_pro(sub, JAN31) and sb.is_pro(sub, at("2027-02-28T09:59:59"))
    assert not sb.is_pro(sub, at("2027-02-28T10:00:00"))
    assert not sb.due(sub, at("2027-02-28T09:59:59")) and sb.due(sub, at("2027-02-28T10:00:00"))


def test_a_renewal_charges_the_next_number_once_and_moves_the_period() -> None:
    sub = active()
    renewed, second = sb.renewal(sub, at("2027-02-28T10:00:01"))
    assert second.id == derive_id("subscription.charge", "sub_1", 1)
    assert (renewed.charges, renewed.period_end_s) == (2, at("2027-03-31T10:00:00"))
    assert sb.renewal(sub, at("2027-02-28T10:00:01"))[1].id == second.id  # again: same id
    with pytest.raises(sb.IllegalTransition):
        sb.renewal(renewed, at("2027-03-01T00:00:00"))  # not due


def test_a_late_renewal_skips_the_months_nobody_was_pro_for() -> None:
    renewed, charge = sb.renewal(active(), at("2027-06-15T00:00:00"))
    assert charge.amount == 999  # one month, not four
    assert (renewed.period_start_s, renewed.period_end_s) == (
        at("2027-05-31T10:00:00"),
        at("2027-06-30T10:00:00"),
    )
    assert sb.is_pro(renewed, at("2027-06-15T00:00:00"))


def test_cancel_keeps_pro_to_the_period_end_then_ends_and_resume_takes_it_back() -> None:
    cancelled = sb.cancel(active())
    assert sb.is_pro(cancelled, at("2027-02-20T00:00:00")) and not cancelled.renews
    with pytest.raises(sb.IllegalTransition):
        sb.renewal(cancelled, at("2027-03-01T00:00:00"))
    ended = sb.end(cancelled, at("2027-03-01T00:00:00"))
    assert ended.state is State.ENDED and not sb.is_pro(ended, at("2027-02-20T00:00:00"))
    assert sb.resume(cancelled, at("2027-02-20T00:00:00")).state is State.ACTIVE
    with pytest.raises(sb.IllegalTransition):
        sb.resume(cancelled, at("2027-03-01T00:00:00"))
    with pytest.raises(sb.IllegalTransition):
        sb.resume(active(), JAN31)  # nothing to take back


def test_a_lapsed_or_ended_subscription_goes_nowhere() -> None:
    lapsed = sb.lapse(active())
    assert not sb.is_pro(lapsed, JAN31)
    for change in (sb.cancel, sb.lapse, sb.paid):
        with pytest.raises(sb.IllegalTransition):
            change(lapsed)
    with pytest.raises(sb.IllegalTransition):
        sb.cancel(sb.start("sub_2", "p1", 999, JAN31)[0])  # not paid yet
    with pytest.raises(ValueError):
        sb.start("sub_3", "p1", 0, JAN31)


def test_subscription_ids_are_per_player_and_key() -> None:
    assert sb.subscription_id("p1", "k") == sb.subscription_id("p1", "k")
    assert sb.subscription_id("p1", "k") != sb.subscription_id("p2", "k")
