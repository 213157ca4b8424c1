"""Pro subscriptions: the shell around :mod:`wallet.subscriptions`, and who is Pro.

Subscribing (``POST /v1/subscriptions``, idempotent): the row is written ``pending`` (a partial
unique index allows one open subscription per player, on every node), then the first month is
charged in the ledger, then the row becomes ``active``. A wallet that cannot pay deletes the row:
refused, nothing happened. A crash between the row and the charge leaves a ``pending`` row that
the sweeper settles by looking the charge up (found: active; not: deleted).

Renewal, ending and lapse run in the sweeper (one process at a time) and, for one player, before
they subscribe again. Each charge's id derives from the subscription and its number, and rows
change by compare-and-set on their version, so a renewal run twice charges once.

Pro players pay the Pro deposit and withdrawal rates (:class:`wallet.fees.FeeSchedule`);
:meth:`Subscriptions.is_pro` is what the deposit and withdrawal shells ask.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ledger import Ledger
from leetgaming.audit import AuditLog
from leetgaming.db import Database
from wallet import accounts
from wallet import subscriptions as sb

log = logging.getLogger("leetgaming.subscriptions")

PENDING_STUCK_AFTER_S: Final = 30
DUE_ROWS_MAX: Final = 200
SAVE_ATTEMPTS_MAX: Final = 10

MIGRATIONS: Final = (
    """
    CREATE TABLE subscriptions (
        id TEXT PRIMARY KEY,
        player TEXT NOT NULL,
        plan TEXT NOT NULL,
        price BIGINT NOT NULL,
        state TEXT NOT NULL,
        anchor_s BIGINT NOT NULL,
        months INTEGER NOT NULL,
        charges INTEGER NOT NULL,
        period_end_s BIGINT NOT NULL,
        version INTEGER NOT NULL,
        created_at_s BIGINT NOT NULL,
        updated_at_s BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX subscriptions_one_open ON subscriptions (player)
        WHERE state IN ('pending', 'active', 'cancelling');
    CREATE INDEX subscriptions_due ON subscriptions (state, period_end_s);
    CREATE INDEX subscriptions_by_player ON subscriptions (player, created_at_s)
    """,
)

_COLUMNS: Final = "id, player, plan, price, state, anchor_s, months, charges, version"

Publish = Callable[[str, object], Awaitable[object]]


class SubscriptionRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _row(r: tuple[Any, ...]) -> tuple[sb.Subscription, int]:
    sub = sb.Subscription(
        r[0], r[1], r[2], int(r[3]), sb.State(r[4]), int(r[5]), int(r[6]), int(r[7])
    )
    return sub, int(r[8])


def subscription_json(sub: sb.Subscription, now_s: int) -> dict[str, object]:
    return {
        "id": sub.id,
        "plan": sub.plan,
        "state": str(sub.state),
        "price": {"asset": sb.PRICE_ASSET, "amount": str(sub.price), "per": "month"},
        "period_start_s": sub.period_start_s,
        "period_end_s": sub.period_end_s,
        "renews": sub.renews,
        "pro": sb.is_pro(sub, now_s),
    }


class Subscriptions:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        audit: AuditLog,
        publish: Publish,
        price_usd_cents: int = 999,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.audit = audit
        self.publish = publish
        self.price = price_usd_cents
        self.clock_s = clock_s

    async def start(self) -> None:
        await self.db.migrate("subscriptions", MIGRATIONS)

    def _now(self) -> int:
        return int(self.clock_s())

    async def get(self, sid: str) -> tuple[sb.Subscription, int] | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM subscriptions WHERE id = ?", sid)  # nosec B608
        return None if row is None else _row(row)

    async def current(self, player: str) -> sb.Subscription | None:
        """The player's open subscription, or else their latest one."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE player = ? AND state <> ? "  # nosec B608
            "ORDER BY created_at_s DESC, id DESC LIMIT 1",
            player,
            str(sb.State.PENDING),
        )
        return None if row is None else _row(row)[0]

    async def is_pro(self, player: str) -> bool:
        now = self._now()
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE player = ? AND state IN (?, ?) "  # nosec B608
            "AND period_end_s > ?",
            player,
            str(sb.State.ACTIVE),
            str(sb.State.CANCELLING),
            now,
        )
        return row is not None and sb.is_pro(_row(row)[0], now)

    async def _save(self, before_version: int, sub: sb.Subscription) -> bool:
        changed = await self.db.execute(
            "UPDATE subscriptions SET state = ?, months = ?, charges = ?, period_end_s = ?, "
            "version = ?, updated_at_s = ? WHERE id = ? AND version = ?",
            str(sub.state),
            sub.months,
            sub.charges,
            sub.period_end_s,
            before_version + 1,
            self._now(),
            sub.id,
            before_version,
        )
        return changed == 1

    async def _changed(self, sub: sb.Subscription, action: str) -> None:
        await self.audit.append(None, sub.player, action, sub.id, {"state": str(sub.state)})
        await self.publish(
            f"user:{sub.player}",
            {"kind": "wallet.subscription", "subscription": subscription_json(sub, self._now())},
        )

    # -- subscribing -----------------------------------------------------------------------------

    async def subscribe(self, player: str, idempotency_key: str, plan: object) -> sb.Subscription:
        if plan != sb.PRO:
            raise SubscriptionRefused("bad_plan", f"plan is {sb.PRO}", 422)
        sid = sb.subscription_id(player, idempotency_key)
        existing = await self.get(sid)
        if existing is not None and existing[0].state is not sb.State.PENDING:
            return existing[0]
        await self._settle(player)  # a period that ended frees the player to subscribe again
        now = self._now()
        sub, _ = sb.start(sid, player, self.price, now)
        await self.db.execute(
            f"INSERT INTO subscriptions ({_COLUMNS}, period_end_s, created_at_s, updated_at_s) "  # nosec B608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
            sub.id,
            player,
            sub.plan,
            sub.price,
            str(sub.state),
            sub.anchor_s,
            sub.months,
            sub.charges,
            sub.period_end_s,
            now,
            now,
        )
        found = await self.get(sid)
        if found is None:
            raise SubscriptionRefused("already_subscribed", "you already have a subscription")
        sub, version = found
        if sub.state is not sb.State.PENDING:
            return sub
        await self.ledger.create_accounts(
            [accounts.user(player, sb.PRICE_ASSET), accounts.revenue(sb.PRICE_ASSET)]
        )
        [outcome] = await self.ledger.create_transfers([sb.charge(sub, 0)])
        if not outcome.result.succeeded:
            await self.db.execute(
                "DELETE FROM subscriptions WHERE id = ? AND state = ?", sid, str(sb.State.PENDING)
            )
            raise SubscriptionRefused(
                "insufficient_funds",
                f"Pro costs {sub.price // 100}.{sub.price % 100:02d} USD a month, paid from your "
                "USD balance",
            )
        return await self._activate(sub, version)

    async def _activate(self, sub: sb.Subscription, version: int) -> sb.Subscription:
        active = sb.paid(sub)
        if await self._save(version, active):
            await self._changed(active, "subscription.start")
            return active
        found = await self.get(sub.id)
        assert found is not None
        return found[0]

    # -- cancelling and resuming ---------------------------------------------------------------

    async def _step(
        self, player: str, action: str, change: Callable[[sb.Subscription], sb.Subscription]
    ) -> sb.Subscription:
        for _ in range(SAVE_ATTEMPTS_MAX):
            row = await self.db.fetchone(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE player = ? AND state IN (?, ?)",  # nosec B608
                player,
                str(sb.State.ACTIVE),
                str(sb.State.CANCELLING),
            )
            if row is None:
                raise SubscriptionRefused("not_found", "you have no subscription", 404)
            sub, version = _row(row)
            try:
                after = change(sub)
            except sb.IllegalTransition as illegal:
                raise SubscriptionRefused("wrong_state", str(illegal)) from None
            if await self._save(version, after):
                await self._changed(after, action)
                return after
        raise RuntimeError("a subscription kept changing under a command")

    async def cancel(self, player: str) -> sb.Subscription:
        return await self._step(player, "subscription.cancel", sb.cancel)

    async def resume(self, player: str) -> sb.Subscription:
        return await self._step(
            player, "subscription.resume", lambda sub: sb.resume(sub, self._now())
        )

    # -- renewing ------------------------------------------------------------------------------

    async def _advance(self, sub: sb.Subscription, version: int) -> None:
        """Renew, end or lapse one subscription whose period is over."""
        now = self._now()
        if sub.state is sb.State.CANCELLING:
            after, action = sb.end(sub, now), "subscription.end"
        else:
            renewed, charge = sb.renewal(sub, now)
            [outcome] = await self.ledger.create_transfers([charge])
            if outcome.result.succeeded:
                after, action = renewed, "subscription.renew"
            else:
                after, action = sb.lapse(sub), "subscription.lapse"
        if await self._save(version, after):
            await self._changed(after, action)

    async def _settle(self, player: str | None = None) -> None:
        now = self._now()
        where, args = ("AND player = ?", (player,)) if player is not None else ("", ())
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE state IN (?, ?) AND period_end_s <= ? "  # nosec B608
            f"{where} ORDER BY period_end_s LIMIT ?",
            str(sb.State.ACTIVE),
            str(sb.State.CANCELLING),
            now,
            *args,
            DUE_ROWS_MAX,
        )
        for r in rows:
            sub, version = _row(r)
            try:
                await self._advance(sub, version)
            except Exception:
                log.exception("a subscription could not be renewed", extra={"subscription": sub.id})

    async def sweep(self) -> None:
        """Settle what a crash left pending, then renew, end and lapse what is due."""
        now = self._now()
        for r in await self.db.fetch(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE state = ? AND updated_at_s < ?",  # nosec B608
            str(sb.State.PENDING),
            now - PENDING_STUCK_AFTER_S,
        ):
            sub, version = _row(r)
            if await self.ledger.lookup_transfers([sb.charge(sub, 0).id]):
                await self._activate(sub, version)
            else:
                await self.db.execute(
                    "DELETE FROM subscriptions WHERE id = ? AND state = ?",
                    sub.id,
                    str(sb.State.PENDING),
                )
        await self._settle()
