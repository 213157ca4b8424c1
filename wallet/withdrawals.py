"""Withdrawals: limits, risk, confirmation, approval, and the holds that keep the money (pure).

A withdrawal is refused outright when it would take the player's withdrawals of the last 24
hours above the daily limit ($10,000 by default, valued at the price table). Otherwise its
money is held at once (two linked pending transfers: the amount paid out to settlement, the
fee to revenue) and it waits for what it needs:

- above the approval threshold ($1,000): the player confirms with a TOTP code
  (``awaiting_totp``), then an admin approves (``awaiting_approval``);
- a risk score at or above ``review_score`` (rules on velocity, account age, the amount
  against the player's deposits, a new payout destination): an admin reviews (``in_review``);
- otherwise it is ``approved`` at once.

An approved withdrawal is sent on its rail (``sending``, with an idempotency key derived from
its id, so a crash and a retry send once); success posts both holds (``sent``), failure voids
them (``failed``). An admin may reject, and the player may cancel, anything not yet sending:
both void the holds. A sent withdrawal the rail gives back later (a card refund that failed)
is ``returned``: the payout and the fee go back to the wallet. Every transition is in
:data:`TRANSITIONS`; any other is an error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Final

from ledger import Transfer, TransferFlags, derive_id

from . import accounts
from .accounts import Code

DAY_S: Final = 24 * 3600


class State(enum.StrEnum):
    AWAITING_TOTP = "awaiting_totp"
    AWAITING_APPROVAL = "awaiting_approval"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RETURNED = "returned"  # sent, then bounced: the money is back in the wallet


OPEN: Final = frozenset(
    {State.AWAITING_TOTP, State.AWAITING_APPROVAL, State.IN_REVIEW, State.APPROVED}
)
TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.AWAITING_TOTP: frozenset({State.AWAITING_APPROVAL, State.REJECTED, State.CANCELLED}),
    State.AWAITING_APPROVAL: frozenset({State.APPROVED, State.REJECTED, State.CANCELLED}),
    State.IN_REVIEW: frozenset({State.APPROVED, State.REJECTED, State.CANCELLED}),
    State.APPROVED: frozenset({State.SENDING, State.REJECTED, State.CANCELLED}),
    State.SENDING: frozenset({State.SENT, State.FAILED}),
    State.SENT: frozenset({State.RETURNED}),
    State.FAILED: frozenset(),
    State.REJECTED: frozenset(),
    State.CANCELLED: frozenset(),
    State.RETURNED: frozenset(),
}
COUNTS_TOWARD_LIMIT: Final = frozenset(OPEN | {State.SENDING, State.SENT})


class IllegalTransition(Exception):
    pass


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Limits:
    daily_usd_cents_max: int = 1_000_000  # $10,000 per player per 24 hours
    approval_usd_cents: int = 100_000  # above $1,000: TOTP and an admin's approval
    review_score: int = 50  # a risk score at or above it waits for an admin
    min_usd_cents: int = 100  # smaller withdrawals cost more to send than they are worth


@dataclass(frozen=True, slots=True)
class RiskFacts:
    """What the shell knows about the player when they ask (all integers)."""

    account_age_s: int
    withdrawals_24h: int  # withdrawals asked for in the last 24 hours, this one excluded
    deposited_usd_cents: int  # all their deposits, valued now
    amount_usd_cents: int
    new_destination: bool  # never paid out to this destination before
    had_destination: bool  # but they have withdrawn to another one before
    shared_destination: bool = False  # another account has withdrawn to it (multi-accounting)


RULES: Final = (
    ("velocity", 30),  # a fourth withdrawal within 24 hours
    ("new_account", 30),  # an account younger than 7 days
    ("above_deposits", 30),  # more than the player ever deposited
    ("changed_destination", 25),  # a destination other than the one used before
    # a destination another account withdrew to: one person behind several accounts, or
    # accounts colluding; alone it is enough for review at the default score
    ("shared_destination", 50),
)


def risk(facts: RiskFacts) -> tuple[int, tuple[str, ...]]:
    """The score (0..165) and the rules that fired."""
    fired = []
    if facts.withdrawals_24h >= 3:
        fired.append("velocity")
    if facts.account_age_s < 7 * DAY_S:
        fired.append("new_account")
    if facts.amount_usd_cents > facts.deposited_usd_cents:
        fired.append("above_deposits")
    if facts.new_destination and facts.had_destination:
        fired.append("changed_destination")
    if facts.shared_destination:
        fired.append("shared_destination")
    weights = dict(RULES)
    return sum(weights[r] for r in fired), tuple(fired)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: str
    player: str
    asset: str
    amount: int  # taken from the wallet, fee included
    fee: int
    rail: str
    destination: str
    usd_cents: int  # its worth when asked for (limits and thresholds)
    state: State
    needs_approval: bool
    risk_score: int
    risk_reasons: tuple[str, ...] = ()
    approved_by: str | None = None
    provider_ref: str | None = None
    history: tuple[tuple[str, str], ...] = field(default=())  # (state, actor)

    @property
    def payout(self) -> int:
        """What reaches the destination."""
        return self.amount - self.fee


def withdrawal_id(player: str, idempotency_key: str) -> str:
    return f"wd_{derive_id('withdrawal.request', player, idempotency_key):032x}"


def request(
    wid: str,
    player: str,
    asset: str,
    amount: int,
    fee: int,
    rail: str,
    destination: str,
    usd_cents: int,
    last_24h_usd_cents: int,
    facts: RiskFacts,
    limits: Limits,
) -> tuple[Withdrawal, list[Transfer]]:
    """A new withdrawal and its holds, or :class:`Refused`."""
    if not 0 <= fee < amount or usd_cents < limits.min_usd_cents:
        raise Refused(
            "amount_too_small",
            f"a withdrawal is worth at least {limits.min_usd_cents // 100}.{limits.min_usd_cents % 100:02d} USD",
        )
    if last_24h_usd_cents + usd_cents > limits.daily_usd_cents_max:
        left = max(0, limits.daily_usd_cents_max - last_24h_usd_cents)
        raise Refused(
            "daily_limit",
            f"withdrawals are limited to {limits.daily_usd_cents_max // 100} USD a day; "
            f"{left // 100}.{left % 100:02d} USD is left",
        )
    score, reasons = risk(facts)
    needs_approval = usd_cents > limits.approval_usd_cents
    if needs_approval:
        state = State.AWAITING_TOTP
    elif score >= limits.review_score:
        state = State.IN_REVIEW
    else:
        state = State.APPROVED
    w = Withdrawal(
        wid,
        player,
        asset,
        amount,
        fee,
        rail,
        destination,
        usd_cents,
        state,
        needs_approval,
        score,
        reasons,
        history=((str(state), player),),
    )
    return w, holds(w)


def _ids(w: Withdrawal, step: str) -> tuple[int, int]:
    return derive_id(f"withdrawal.{step}", w.id), derive_id(f"withdrawal.fee.{step}", w.id)


def holds(w: Withdrawal) -> list[Transfer]:
    wallet = accounts.user(w.player, w.asset).id
    payout_id, fee_id = _ids(w, "hold")
    payout = Transfer(
        payout_id,
        wallet,
        accounts.settlement(w.asset).id,
        w.payout,
        w.asset,
        Code.WITHDRAWAL,
        TransferFlags.PENDING | (TransferFlags.LINKED if w.fee else TransferFlags.NONE),
        metadata={"withdrawal": w.id},
    )
    if not w.fee:
        return [payout]
    fee = Transfer(
        fee_id,
        wallet,
        accounts.revenue(w.asset).id,
        w.fee,
        w.asset,
        Code.WITHDRAWAL_FEE,
        TransferFlags.PENDING,
        metadata={"withdrawal": w.id},
    )
    return [payout, fee]


def _resolve(w: Withdrawal, flag: TransferFlags, step: str) -> list[Transfer]:
    held = _ids(w, "hold")
    ids = _ids(w, step)
    parts = [0, 1] if w.fee else [0]
    return [
        Transfer(
            ids[i],
            pending_id=held[i],
            flags=flag | (TransferFlags.LINKED if i < len(parts) - 1 else TransferFlags.NONE),
        )
        for i in parts
    ]


def move(w: Withdrawal, to: State, actor: str) -> Withdrawal:
    if to not in TRANSITIONS[w.state]:
        raise IllegalTransition(f"a withdrawal that is {w.state} cannot become {to}")
    return replace(w, state=to, history=(*w.history, (str(to), actor)))


def confirm_totp(w: Withdrawal) -> Withdrawal:
    return move(w, State.AWAITING_APPROVAL, w.player)


def approve(w: Withdrawal, admin: str) -> Withdrawal:
    if admin == w.player:
        raise Refused("own_withdrawal", "an admin cannot approve their own withdrawal")
    return replace(move(w, State.APPROVED, admin), approved_by=admin)


def reject(w: Withdrawal, admin: str) -> tuple[Withdrawal, list[Transfer]]:
    return move(w, State.REJECTED, admin), _resolve(w, TransferFlags.VOID_PENDING, "void")


def cancel(w: Withdrawal) -> tuple[Withdrawal, list[Transfer]]:
    return move(w, State.CANCELLED, w.player), _resolve(w, TransferFlags.VOID_PENDING, "void")


def sending(w: Withdrawal) -> Withdrawal:
    return move(w, State.SENDING, "system")


def sent(w: Withdrawal, provider_ref: str) -> tuple[Withdrawal, list[Transfer]]:
    done = replace(move(w, State.SENT, "system"), provider_ref=provider_ref)
    return done, _resolve(w, TransferFlags.POST_PENDING, "post")


def failed(w: Withdrawal) -> tuple[Withdrawal, list[Transfer]]:
    return move(w, State.FAILED, "system"), _resolve(w, TransferFlags.VOID_PENDING, "void")


def returned(w: Withdrawal) -> tuple[Withdrawal, list[Transfer]]:
    """A sent withdrawal bounced: its payout and its fee back to the wallet, linked."""
    done = move(w, State.RETURNED, "system")
    wallet = accounts.user(w.player, w.asset).id
    back = Transfer(
        derive_id("withdrawal.return", w.id),
        accounts.settlement(w.asset).id,
        wallet,
        w.payout,
        w.asset,
        Code.WITHDRAWAL_RETURN,
        TransferFlags.LINKED if w.fee else TransferFlags.NONE,
        metadata={"withdrawal": w.id},
    )
    if not w.fee:
        return done, [back]
    fee = Transfer(
        derive_id("withdrawal.fee.return", w.id),
        accounts.revenue(w.asset).id,
        wallet,
        w.fee,
        w.asset,
        Code.WITHDRAWAL_RETURN,
        metadata={"withdrawal": w.id},
    )
    return done, [back, fee]
