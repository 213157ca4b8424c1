"""Game credits with an expiry: grants by admins, use by players, and the expiry job, around
:mod:`wallet.credits`. The lots themselves are ledger accounts; the table here only lists
which lots a player has (an index to find them, never a balance), and which have been expired.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Final

from ledger import CreateTransferResult, Ledger, derive_id
from leetgaming.audit import AuditLog
from leetgaming.db import Database
from wallet import accounts
from wallet import credits as cr

EXPIRE_BATCH_MAX: Final = 500

MIGRATIONS: Final = (
    """
    CREATE TABLE credit_lots (
        player TEXT NOT NULL,
        asset TEXT NOT NULL,
        expires_on TEXT NOT NULL,
        expired INTEGER NOT NULL,
        PRIMARY KEY (player, asset, expires_on)
    );
    CREATE INDEX credit_lots_due ON credit_lots (expired, expires_on)
    """,
)


class CreditsRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _today(clock_s: Callable[[], float]) -> dt.date:
    return dt.datetime.fromtimestamp(clock_s(), dt.UTC).date()


class Credits:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        audit: AuditLog,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.audit = audit
        self.clock_s = clock_s

    async def start(self) -> None:
        await self.db.migrate("credits", MIGRATIONS)

    async def lots(self, player: str, expired: bool = False) -> list[tuple[str, dt.date]]:
        """The player's lots (asset, day), those already expired too when ``expired``."""
        rows = await self.db.fetch(
            "SELECT asset, expires_on FROM credit_lots WHERE player = ? AND expired <= ? "
            "ORDER BY expires_on",
            player,
            int(expired),
        )
        return [(r[0], dt.date.fromisoformat(r[1])) for r in rows]

    async def holdings(self, player: str, asset: str) -> list[cr.Holding]:
        days = [day for a, day in await self.lots(player) if a == asset]
        ids = [accounts.user(player, asset).id] + [cr.lot(player, asset, d).id for d in days]
        found = {s.id: s.balance.available for s in await self.ledger.lookup_accounts(ids)}
        out = [cr.Holding(None, found.get(ids[0], 0))]
        out += [cr.Holding(d, found.get(i, 0)) for d, i in zip(days, ids[1:], strict=True)]
        return out

    async def grant(
        self, admin: str, key: str, player: str, asset: str, amount: int, expires_on: object
    ) -> str:
        try:
            day = None if expires_on is None else cr.day_of(expires_on, _today(self.clock_s))
            transfer = cr.grant(f"{admin}:{key}", player, asset, amount, day)
        except cr.Refused as refused:
            raise CreditsRefused(refused.code, str(refused)) from None
        target = accounts.user(player, asset) if day is None else cr.lot(player, asset, day)
        if day is not None:
            await self.db.execute(
                "INSERT INTO credit_lots (player, asset, expires_on, expired) VALUES (?, ?, ?, 0) "
                "ON CONFLICT (player, asset, expires_on) DO NOTHING",
                player,
                asset,
                day.isoformat(),
            )
        made = await self.ledger.create_accounts([cr.issued(asset), target])
        if not all(r in ("ok", "exists") for r in made):
            raise CreditsRefused("bad_player", f"no wallet can be opened for that player: {made}")
        [outcome] = await self.ledger.create_transfers([transfer])
        if outcome.result in (
            CreateTransferResult.OVERFLOWS_DEBITS,
            CreateTransferResult.OVERFLOWS_CREDITS,
        ):
            raise CreditsRefused("too_large", "the grant does not fit what a wallet holds", 409)
        if not outcome.result.succeeded:
            raise RuntimeError(f"the ledger refused a credit grant: {outcome.result}")
        await self.audit.append(
            None,
            admin,
            "credits.grant",
            player,
            {
                "asset": asset,
                "amount": str(amount),
                "expires_on": None if day is None else str(day),
            },
        )
        return f"{transfer.id:032x}"

    async def use(self, player: str, key: str, asset: str, amount: int) -> int:
        """Use credits (an XP boost consumed): oldest lots first. What is left of the asset."""
        if asset not in cr.CREDIT_ASSETS:
            raise CreditsRefused(
                "not_a_credit", f"credits are {', '.join(sorted(cr.CREDIT_ASSETS))}"
            )
        spend_id = f"{player}:{key}"
        if await self.ledger.lookup_transfers([derive_id("credit.spend", spend_id, 0)]):
            return sum(h.available for h in await self.holdings(player, asset))  # done before
        for _ in range(5):
            holdings = await self.holdings(player, asset)
            try:
                transfers = cr.spend(
                    spend_id,
                    player,
                    asset,
                    amount,
                    holdings,
                    accounts.revenue(asset).id,
                    accounts.Code.CREDIT_SPEND,
                    _today(self.clock_s),
                )
            except cr.Refused as refused:
                raise CreditsRefused(refused.code, str(refused), 409) from None
            await self.ledger.create_accounts([accounts.revenue(asset)])
            outcomes = await self.ledger.create_transfers(transfers)
            if all(o.result.succeeded for o in outcomes):
                await self.audit.append(
                    None, player, "credits.use", player, {"asset": asset, "amount": str(amount)}
                )
                return sum(h.available for h in holdings) - amount
            # a lot changed in between (another use, or its expiry): compute again
        raise CreditsRefused("busy", "your credits kept changing; try again", 409)

    async def expire_due(self) -> int:
        """Move every lot whose day has ended to breakage; how many lots were expired."""
        today = _today(self.clock_s)
        rows = await self.db.fetch(
            "SELECT player, asset, expires_on FROM credit_lots WHERE expired = 0 "
            "AND expires_on <= ? ORDER BY expires_on LIMIT ?",
            today.isoformat(),
            EXPIRE_BATCH_MAX,
        )
        done = 0
        for player, asset, day_text in rows:
            day = dt.date.fromisoformat(day_text)
            states = await self.ledger.lookup_accounts([cr.lot(player, asset, day).id])
            balance = states[0].balance.available if states else 0
            transfer = cr.expire(player, asset, day, balance)
            if transfer is not None:
                await self.ledger.create_accounts([cr.breakage(asset)])
                [outcome] = await self.ledger.create_transfers([transfer])
                if not outcome.result.succeeded:
                    raise RuntimeError(f"the ledger refused an expiry: {outcome.result}")
                await self.audit.append(
                    None,
                    "system",
                    "credits.expire",
                    player,
                    {"asset": asset, "amount": str(balance), "expired_on": day_text},
                )
            await self.db.execute(
                "UPDATE credit_lots SET expired = 1 WHERE player = ? AND asset = ? AND expires_on = ?",
                player,
                asset,
                day_text,
            )
            done += 1
        return done
