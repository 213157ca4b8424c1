"""A tournament's prizes corrected after they were paid (pure posting logic).

An admin's correction after completion changes the places (a finalist disqualified, a result
entered wrong); each player's prize changes by the difference between the two splits. The
whole move is one linked request through the tournament's prize pool, which it leaves at zero:

1. from each player who had too much, what their wallet has ``available`` of it now (up to the
   difference), and the rest from the platform's ``expense``: the platform's loss, never a
   negative balance (the same rule as a card deposit's reversal);
2. rounding: the change of the split's remainder, from or to the ``rounding`` account;
3. to each player who had too little, the difference.

Every transfer id derives from the tournament, the correction's ``key`` and the player, so the
request is made once: the shell posts it only when none of :func:`possible_ids` exists (a
linked request is all or nothing), and computes it again from a fresh ``available`` when the
wallets changed in between and the ledger refused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from ledger import Transfer, TransferFlags, derive_id

from . import accounts
from .accounts import Code


def per_player(payouts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Each player's total prize in a split's ``(player, amount)`` pairs."""
    out: dict[str, int] = {}
    for player, amount in payouts:
        out[player] = out.get(player, 0) + amount
    return out


def _ids(tournament: str, key: int, player: str) -> tuple[int, int, int]:
    return (
        derive_id("tournament.correction.back", tournament, key, player),
        derive_id("tournament.correction.loss", tournament, key, player),
        derive_id("tournament.correction.prize", tournament, key, player),
    )


def _remainder_id(tournament: str, key: int) -> int:
    return derive_id("tournament.correction.rounding", tournament, key)


def possible_ids(
    tournament: str, key: int, before: Mapping[str, int], after: Mapping[str, int]
) -> list[int]:
    """Every id the correction's request may use: if any exists, it was posted."""
    ids = [_remainder_id(tournament, key)]
    for player in sorted(set(before) | set(after)):
        ids.extend(_ids(tournament, key, player))
    return ids


def repayout(
    tournament: str,
    key: int,
    asset: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    remainder_change: int,
    available: Mapping[str, int],
) -> list[Transfer]:
    """The linked request moving each player's prize from ``before`` to ``after`` (amounts per
    player) and the split's remainder by ``remainder_change``; ``available``: what each
    player's wallet has now. Empty when nothing changes."""
    pool = accounts.prize_pool(tournament, asset).id
    meta = {"tournament": tournament, "correction": key}
    into_pool: list[Transfer] = []
    out_of_pool: list[Transfer] = []
    for player in sorted(set(before) | set(after)):
        change = after.get(player, 0) - before.get(player, 0)
        back, loss, prize = _ids(tournament, key, player)
        if change < 0:
            owed = -change
            taken = min(owed, max(available.get(player, 0), 0))
            if taken:
                wallet = accounts.user(player, asset).id
                into_pool.append(
                    Transfer(back, wallet, pool, taken, asset, Code.PRIZE_REVERSAL, metadata=meta)
                )
            if owed > taken:
                expense = accounts.expense(asset).id
                loss_meta = meta | {"player": player, "loss": True}
                into_pool.append(
                    Transfer(
                        loss,
                        expense,
                        pool,
                        owed - taken,
                        asset,
                        Code.PRIZE_REVERSAL,
                        metadata=loss_meta,
                    )
                )
        elif change > 0:
            wallet = accounts.user(player, asset).id
            out_of_pool.append(
                Transfer(prize, pool, wallet, change, asset, Code.PRIZE, metadata=meta)
            )
    rounding = accounts.rounding(asset).id
    rid = _remainder_id(tournament, key)
    if remainder_change < 0:
        into_pool.append(
            Transfer(rid, rounding, pool, -remainder_change, asset, Code.ROUNDING, metadata=meta)
        )
    elif remainder_change > 0:
        out_of_pool.append(
            Transfer(rid, pool, rounding, remainder_change, asset, Code.ROUNDING, metadata=meta)
        )
    transfers = [*into_pool, *out_of_pool]
    return [
        replace(t, flags=TransferFlags.LINKED) if n < len(transfers) - 1 else t
        for n, t in enumerate(transfers)
    ]
