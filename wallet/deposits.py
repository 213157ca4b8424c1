"""Deposits: their lifecycle and the ledger transfers each step posts (pure).

A deposit is asked for (``created``), handed to its payment rail (``pending``: a Stripe
PaymentIntent or a watched chain address), and then either ``succeeded`` (the money arrived:
the wallet is credited the gross amount and pays the deposit fee, as one linked pair) or
``failed``. A succeeded card deposit can be taken back later, in part or whole, by a refund or
a lost dispute (``reversed`` once the whole amount is back): each reversal debits the wallet,
and what the wallet no longer holds is the platform's loss (``expense``), never a negative
balance.

Every transfer id derives from the deposit id and the step (and, for a reversal, the provider's
id of what caused it), so a webhook delivered twice or a step re-run after a crash posts
nothing new: the ledger answers ``exists``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

from ledger import Transfer, TransferFlags, derive_id

from . import accounts
from .accounts import Code


class State(enum.StrEnum):
    CREATED = "created"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"


TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.CREATED: frozenset({State.PENDING, State.FAILED}),
    State.PENDING: frozenset({State.SUCCEEDED, State.FAILED}),
    State.SUCCEEDED: frozenset({State.SUCCEEDED, State.REVERSED}),  # partial reversals stay
    State.FAILED: frozenset(),
    State.REVERSED: frozenset(),
}


class IllegalTransition(Exception):
    pass


class Method(enum.StrEnum):
    CARD = "card"
    CHAIN = "chain"


@dataclass(frozen=True, slots=True)
class Deposit:
    id: str
    player: str
    method: Method
    asset: str
    amount: int  # gross, in the asset's smallest unit
    fee: int  # fixed when the deposit is asked for
    state: State = State.CREATED
    reversed_amount: int = 0  # taken back so far by refunds and lost disputes


def deposit_id(player: str, idempotency_key: str) -> str:
    """The deposit a player's request makes: the same key is the same deposit."""
    return f"dep_{derive_id('deposit.request', player, idempotency_key):032x}"


def move(deposit: Deposit, to: State) -> Deposit:
    if to not in TRANSITIONS[deposit.state]:
        raise IllegalTransition(f"a {deposit.state} deposit cannot become {to}")
    return replace(deposit, state=to)


def credit(deposit: Deposit) -> tuple[Deposit, list[Transfer]]:
    """The money arrived: credit the gross amount and take the fee, linked."""
    done = move(deposit, State.SUCCEEDED)
    wallet = accounts.user(deposit.player, deposit.asset).id
    gross = Transfer(
        derive_id("deposit.credit", deposit.id),
        accounts.settlement(deposit.asset).id,
        wallet,
        deposit.amount,
        deposit.asset,
        Code.DEPOSIT,
        TransferFlags.LINKED if deposit.fee else TransferFlags.NONE,
        metadata={"deposit": deposit.id},
    )
    if not deposit.fee:
        return done, [gross]
    fee = Transfer(
        derive_id("deposit.fee", deposit.id),
        wallet,
        accounts.revenue(deposit.asset).id,
        deposit.fee,
        deposit.asset,
        Code.DEPOSIT_FEE,
        metadata={"deposit": deposit.id},
    )
    return done, [gross, fee]


def reversal_id(deposit: Deposit, cause: str) -> int:
    """The id of the first transfer of a reversal: when it exists, the reversal is posted."""
    return derive_id("deposit.reversal", deposit.id, cause)


def reverse(
    deposit: Deposit, cause: str, amount: int, available: int
) -> tuple[Deposit, list[Transfer]]:
    """Take back ``amount`` more of a succeeded deposit (a refund or lost dispute named
    ``cause``), from what the wallet has ``available`` now; the rest is the platform's loss.
    One linked request whose first transfer has :func:`reversal_id`: the shell posts it only
    when that id does not exist yet, and computes it again from a fresh ``available`` if the
    wallet spent in between (a failed request records nothing). Refuses to take back more
    than was deposited."""
    if deposit.state is not State.SUCCEEDED:
        raise IllegalTransition(f"a {deposit.state} deposit cannot be reversed")
    if amount <= 0 or deposit.reversed_amount + amount > deposit.amount:
        raise ValueError("a reversal takes back at most what is left of the deposit")
    from_wallet = min(amount, max(available, 0))
    settlement = accounts.settlement(deposit.asset).id
    legs: list[tuple[int, int, bool]] = []  # (debit account, amount, loss)
    if from_wallet:
        legs.append((accounts.user(deposit.player, deposit.asset).id, from_wallet, False))
    if amount > from_wallet:
        legs.append((accounts.expense(deposit.asset).id, amount - from_wallet, True))
    ids = [reversal_id(deposit, cause), derive_id("deposit.reversal.rest", deposit.id, cause)]
    transfers = [
        Transfer(
            ids[i],
            debit,
            settlement,
            part,
            deposit.asset,
            Code.DEPOSIT_REVERSAL,
            TransferFlags.LINKED if i < len(legs) - 1 else TransferFlags.NONE,
            metadata={"deposit": deposit.id, "cause": cause, "loss": loss},
        )
        for i, (debit, part, loss) in enumerate(legs)
    ]
    return applied(deposit, amount), transfers


def freeze_id(deposit: Deposit, dispute: str) -> int:
    """The id of the hold that freezes a disputed deposit's money while the dispute is open."""
    return derive_id("deposit.dispute.freeze", deposit.id, dispute)


def freeze(deposit: Deposit, dispute: str, amount: int, available: int) -> Transfer | None:
    """Freeze what the wallet still has of a deposit that is disputed (``amount`` asked back,
    at most what is left of the deposit and what is ``available`` now): a hold on the wallet,
    to be voided by :func:`release` when the dispute closes, won or lost (a lost one is then
    reversed from the wallet as it is). None when there is nothing to freeze."""
    if deposit.state is not State.SUCCEEDED:
        raise IllegalTransition(f"a {deposit.state} deposit cannot be disputed")
    frozen = min(amount, deposit.amount - deposit.reversed_amount, max(available, 0))
    if frozen <= 0:
        return None
    return Transfer(
        freeze_id(deposit, dispute),
        accounts.user(deposit.player, deposit.asset).id,
        accounts.settlement(deposit.asset).id,
        frozen,
        deposit.asset,
        Code.DEPOSIT_REVERSAL,
        TransferFlags.PENDING,
        metadata={"deposit": deposit.id, "dispute": dispute, "frozen": True},
    )


def release(deposit: Deposit, dispute: str) -> Transfer:
    """Void the freeze of ``dispute`` (its dispute closed)."""
    return Transfer(
        derive_id("deposit.dispute.release", deposit.id, dispute),
        flags=TransferFlags.VOID_PENDING,
        pending_id=freeze_id(deposit, dispute),
        metadata={"deposit": deposit.id, "dispute": dispute},
    )


def applied(deposit: Deposit, amount: int) -> Deposit:
    """The deposit once a reversal of ``amount`` is posted."""
    total = deposit.reversed_amount + amount
    after = replace(deposit, reversed_amount=total)
    return move(after, State.REVERSED) if total == deposit.amount else after
