"""Pro subscriptions: monthly periods paid from the wallet, renewal, cancellation (pure).

A subscription is asked for (``pending``: its row exists, its first charge may not), then
``active`` once the first month is paid: it is Pro from that moment to the period's end.
Periods are calendar months from the moment it started (the *anchor*): one started on 31
January ends its periods on 28 (or 29) February, 31 March, 30 April, … and never drifts.

At a period's end an ``active`` subscription renews: the wallet pays the next month and the
period becomes the anchored month containing now (a renewal that runs late, after the sweeper
was down, skips the months nobody was Pro for rather than charging them). A wallet that cannot
pay makes it ``lapsed``: no longer Pro, nothing owed. ``cancel`` keeps it Pro to the period's
end (``cancelling``) and then it is ``ended``; ``resume`` takes the cancellation back before then.

Charge *n* of a subscription has the ledger id ``derive_id("subscription.charge", id, n)``: a
renewal computed again after a crash posts nothing new. Every transition is in
:data:`TRANSITIONS`; any other is an error.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from ledger import Transfer, derive_id

from . import accounts
from .accounts import Code

PRO: Final = "pro"
PRICE_ASSET: Final = "USD"


class State(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    CANCELLING = "cancelling"
    LAPSED = "lapsed"
    ENDED = "ended"


TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.PENDING: frozenset({State.ACTIVE}),
    State.ACTIVE: frozenset({State.ACTIVE, State.CANCELLING, State.LAPSED}),
    State.CANCELLING: frozenset({State.ACTIVE, State.ENDED}),
    State.LAPSED: frozenset(),
    State.ENDED: frozenset(),
}
OPEN: Final = frozenset({State.PENDING, State.ACTIVE, State.CANCELLING})


class IllegalTransition(Exception):
    pass


def add_months(anchor_s: int, months: int) -> int:
    """``anchor_s`` plus ``months`` calendar months (UTC), the day clamped to the month's last."""
    at = datetime.fromtimestamp(anchor_s, UTC)
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return int(at.replace(year=year, month=month, day=day).timestamp())


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    player: str
    plan: str
    price: int  # USD cents a month
    state: State
    anchor_s: int  # when it started: periods are months from here
    months: int  # the current period ends add_months(anchor_s, months)
    charges: int  # charges posted so far (the next one's number)

    @property
    def period_start_s(self) -> int:
        return add_months(self.anchor_s, self.months - 1)

    @property
    def period_end_s(self) -> int:
        return add_months(self.anchor_s, self.months)

    @property
    def renews(self) -> bool:
        return self.state is State.ACTIVE


def subscription_id(player: str, idempotency_key: str) -> str:
    return f"sub_{derive_id('subscription.request', player, idempotency_key):032x}"


def charge(sub: Subscription, number: int) -> Transfer:
    return Transfer(
        derive_id("subscription.charge", sub.id, number),
        accounts.user(sub.player, PRICE_ASSET).id,
        accounts.revenue(PRICE_ASSET).id,
        sub.price,
        PRICE_ASSET,
        Code.SUBSCRIPTION,
        metadata={"subscription": sub.id, "charge": number},
    )


def move(sub: Subscription, to: State) -> Subscription:
    if to not in TRANSITIONS[sub.state]:
        raise IllegalTransition(f"a {sub.state} subscription cannot become {to}")
    return replace(sub, state=to)


def start(sid: str, player: str, price: int, now_s: int) -> tuple[Subscription, Transfer]:
    """A new subscription (pending) and its first month's charge."""
    if price <= 0:
        raise ValueError("a plan costs something")
    sub = Subscription(sid, player, PRO, price, State.PENDING, now_s, 1, 0)
    return sub, charge(sub, 0)


def paid(sub: Subscription) -> Subscription:
    """The first month is paid: Pro until the period's end."""
    return replace(move(sub, State.ACTIVE), charges=1)


def is_pro(sub: Subscription, now_s: int) -> bool:
    return (
        sub.state in (State.ACTIVE, State.CANCELLING)
        and sub.period_start_s <= now_s < sub.period_end_s
    )


def due(sub: Subscription, now_s: int) -> bool:
    return sub.state in (State.ACTIVE, State.CANCELLING) and now_s >= sub.period_end_s


def renewal(sub: Subscription, now_s: int) -> tuple[Subscription, Transfer]:
    """The renewed subscription (the anchored month containing ``now_s``) and the charge that
    pays it; the shell posts it, and on insufficient funds takes :func:`lapse` instead."""
    if not due(sub, now_s) or sub.state is not State.ACTIVE:
        raise IllegalTransition("only an active subscription at its period's end renews")
    months = sub.months + 1
    while add_months(sub.anchor_s, months) <= now_s:
        months += 1
    renewed = replace(move(sub, State.ACTIVE), months=months, charges=sub.charges + 1)
    return renewed, charge(sub, sub.charges)


def lapse(sub: Subscription) -> Subscription:
    return move(sub, State.LAPSED)


def cancel(sub: Subscription) -> Subscription:
    """Pro to the period's end, then ended."""
    return move(sub, State.CANCELLING)


def resume(sub: Subscription, now_s: int) -> Subscription:
    if sub.state is not State.CANCELLING:
        raise IllegalTransition(f"a {sub.state} subscription has no cancellation to take back")
    if now_s >= sub.period_end_s:
        raise IllegalTransition("the period is over: subscribe again")
    return move(sub, State.ACTIVE)


def end(sub: Subscription, now_s: int) -> Subscription:
    if not due(sub, now_s) or sub.state is not State.CANCELLING:
        raise IllegalTransition("only a cancelled subscription at its period's end ends")
    return move(sub, State.ENDED)
