"""The wallet as players and admins see it: balances, history and the price table.

Every figure is read from the ledger (no balance is kept here): a player's balance in an asset
is their ``user`` account's counters (:mod:`wallet.accounts`); their history is the merge of
those accounts' transfers (:mod:`wallet.history`). The price table lives in the app database;
each price records when and by whom it was set, and every change is audited.

Invariants:

- A player reads only their own accounts: ids are derived from the caller's subject, never
  taken from the request.
- Amounts leave as decimal strings of the smallest unit (``"5000"`` cents) with the asset's
  scale beside them, so no client ever parses money as a float (wei do not fit a double).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger import Asset, AssetKind, Ledger, TransferRecord, derive_id, id_to_text
from leetgaming.audit import AuditLog
from leetgaming.db import Database
from wallet import accounts
from wallet import conversions as cv
from wallet import credits as cr
from wallet import history as hist
from wallet import prices as px
from wallet.fees import FeeKind, FeeSchedule

ASSETS_CACHE_S: Final = 30.0
HISTORY_SCAN_ROWS_MAX: Final = 1000  # rows examined for one filtered page before it is cut short

MIGRATIONS: Final = (
    """
    CREATE TABLE wallet_prices (
        asset TEXT PRIMARY KEY,
        price_e8 TEXT NOT NULL,
        set_at_s BIGINT NOT NULL,
        set_by TEXT NOT NULL
    )
    """,
)


class UnknownAsset(ValueError):
    pass


class ConversionRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Conversion:
    id: str
    from_asset: str
    to_asset: str
    amount: int
    received: int
    fee: int


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    asset: str | None = None
    kind: int | None = None  # a transfer code (accounts.CODE_OF_KIND)
    since_ns: int | None = None  # inclusive
    until_ns: int | None = None  # inclusive
    after: hist.Cursor | None = None
    rows_max: int = hist.PAGE_ROWS_DEFAULT


def amount_json(asset: Asset, amount: int) -> dict[str, object]:
    return {
        "asset": asset.code,
        "amount": str(amount),
        "scale": asset.scale,
        "decimal": asset.format_amount(amount),
    }


class Wallet:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        audit: AuditLog,
        clock_s: Callable[[], float] = time.time,
        fees: FeeSchedule | None = None,
        lots_of: Callable[[str, bool], Awaitable[list[tuple[str, dt.date]]]] | None = None,
    ) -> None:
        self.lots_of = lots_of
        self.db = db
        self.ledger = ledger
        self.audit = audit
        self.clock_s = clock_s
        self.fees = fees or FeeSchedule()
        self._assets: dict[str, Asset] = {}
        self._assets_read_s = -ASSETS_CACHE_S

    async def start(self) -> None:
        await self.db.migrate("wallet", MIGRATIONS)

    async def assets(self, refresh: bool = False) -> dict[str, Asset]:
        now = time.monotonic()
        if refresh or now - self._assets_read_s >= ASSETS_CACHE_S:
            self._assets = await self.ledger.store.assets()
            self._assets_read_s = now
        return self._assets

    async def scales(self) -> dict[str, int]:
        """Each asset's scale, by code."""
        return {code: asset.scale for code, asset in (await self.assets()).items()}

    async def asset(self, code: str) -> Asset:
        found = (await self.assets()).get(code) or (await self.assets(refresh=True)).get(code)
        if found is None:
            raise UnknownAsset(f"no asset {code[:40]!r}")
        return found

    # -- balances ------------------------------------------------------------------------------

    async def balances(self, player: str) -> dict[str, object]:
        """What ``player`` holds: per asset available and pending, credits, NFTs, and the
        portfolio's worth in US cents at the price table."""
        assets = await self.assets()
        ids = {accounts.account_id(player, "user", code): code for code in assets}
        lots = [] if self.lots_of is None else await self.lots_of(player, False)
        lot_ids = {cr.lot(player, asset, day).id: (asset, day) for asset, day in lots}
        states = await self.ledger.lookup_accounts([*ids, *lot_ids])
        table = await self.prices()
        money: list[dict[str, object]] = []
        nfts: list[dict[str, object]] = []
        holdings: list[tuple[str, int, int]] = []
        credit_rows: dict[str, dict[str, Any]] = {}
        expiring: dict[str, list[dict[str, object]]] = {}
        for state in states:
            asset = assets[state.asset]
            balance = state.balance
            if state.id in lot_ids:
                _, day = lot_ids[state.id]
                if balance.available > 0:
                    expiring.setdefault(asset.code, []).append(
                        {"on": day.isoformat(), "amount": str(balance.available)}
                    )
                continue
            total = balance.posted  # held entry fees are still the player's until posted
            row = {
                "asset": asset.code,
                "scale": asset.scale,
                "decimal": asset.format_amount(balance.available),
                "available": str(balance.available),
                "held": str(balance.debits_pending),
                "incoming": str(balance.credits_pending),
                "total": str(total),
            }
            if asset.kind is AssetKind.NFT:
                if total > 0:
                    nfts.append({"asset": asset.code, "quantity": total})
                    holdings.append((asset.code, asset.scale, total))
            elif asset.kind is AssetKind.CREDIT:
                credit_rows[asset.code] = row
            else:
                holdings.append((asset.code, asset.scale, total))
                money.append(row)
        credits: list[dict[str, object]] = []
        for code in sorted(credit_rows.keys() | expiring.keys()):
            asset = assets[code]
            row = credit_rows.get(code) or {
                "asset": code,
                "scale": asset.scale,
                "decimal": "0",
                "available": "0",
                "held": "0",
                "incoming": "0",
                "total": "0",
            }
            soon = expiring.get(code, [])
            extra = sum(int(str(e["amount"])) for e in soon)
            available = int(str(row["available"])) + extra
            total = int(str(row["total"])) + extra
            holdings.append((code, asset.scale, total))
            credits.append(
                row
                | {
                    "available": str(available),
                    "total": str(total),
                    "decimal": asset.format_amount(available),
                    "expires": sorted(soon, key=lambda e: str(e["on"])),
                }
            )
        values = px.valuations(holdings, table)
        priced = [v for v in values if v.value_cents is not None]
        return {
            "balances": money,
            "credits": credits,
            "nfts": nfts,
            "portfolio": {
                "currency": "USD",
                "value_cents": str(sum(v.value_cents or 0 for v in priced)),
                "assets": [
                    {
                        "asset": v.asset,
                        "value_cents": None if v.value_cents is None else str(v.value_cents),
                        "price_usd": None if v.price_e8 is None else px.format_price(v.price_e8),
                        "price_set_at_s": v.price_set_at_s,
                    }
                    for v in values
                ],
                "unpriced": sorted(v.asset for v in values if v.value_cents is None),
            },
        }

    # -- history -------------------------------------------------------------------------------

    async def history(
        self, player: str, query: HistoryQuery
    ) -> tuple[list[TransferRecord], hist.Cursor | None, set[int]]:
        """One page of ``player``'s transfers, newest first, the cursor of the next page
        (None at the end), and the player's accounts it read (to tell which side of each row
        is theirs). A filtered page may hold fewer rows than asked for and still have a
        next page: at most :data:`HISTORY_SCAN_ROWS_MAX` rows are examined per request."""
        if query.asset is not None:
            codes: Sequence[str] = [(await self.asset(query.asset)).code]
        else:
            codes = list(await self.assets())
        ids = await self.my_accounts(player, set(codes))
        existing = [s.id for s in await self.ledger.lookup_accounts(list(ids))]
        after = query.after
        if query.until_ns is not None:
            bound = hist.Cursor(query.until_ns + 1, 0)
            after = bound if after is None or bound < after else after
        rows: list[TransferRecord] = []
        scanned = 0
        batch = max(query.rows_max, 1)
        while existing:
            cursor = None if after is None else after.timestamp + 1
            pages = [
                (
                    await self.ledger.history(a, cursor=cursor, limit=batch + 1, newest_first=True)
                ).records
                for a in existing
            ]
            merged = hist.merge_page(pages, after, batch)
            if not merged:
                return rows, None, ids
            for record in merged:
                after = hist.position(record)
                scanned += 1
                if query.since_ns is not None and record.timestamp < query.since_ns:
                    return rows, None, ids
                if query.kind is None or record.code == query.kind:
                    rows.append(record)
                    if len(rows) == query.rows_max:
                        return rows, after, ids
            if len(merged) < batch:
                return rows, None, ids
            if scanned >= HISTORY_SCAN_ROWS_MAX:
                return rows, after, ids
        return rows, None, ids

    async def my_accounts(self, player: str, codes: set[str] | None = None) -> set[int]:
        """The ids of ``player``'s accounts in ``codes`` (every asset when None): the wallet
        per asset and every credit lot, expired ones too."""
        if codes is None:
            codes = set(await self.assets())
        ids = {accounts.account_id(player, "user", code) for code in codes}
        if self.lots_of is not None:
            ids |= {
                cr.lot(player, asset, day).id
                for asset, day in await self.lots_of(player, True)
                if asset in codes
            }
        return ids

    async def transfer_row(self, mine: set[int], record: TransferRecord) -> dict[str, object]:
        """A history row from the side of whoever owns ``mine`` (empty: an admin's neutral
        view, amounts as moved)."""
        asset = await self.asset(record.asset)
        sign = -1 if record.debit_account_id in mine else 1
        code = record.code
        if code == 0 and record.pending_id:  # posting or voiding a hold: the hold says what
            held = await self.ledger.lookup_transfers([record.pending_id])
            code = held[0].code if held else 0
        return {
            "id": id_to_text(record.id),
            "timestamp_ns": str(record.timestamp),
            "kind": accounts.KIND_OF_CODE.get(code, f"code_{code}"),
            "state": hist.state_of(record),
            **amount_json(asset, sign * record.amount),
            "pending_id": id_to_text(record.pending_id) if record.pending_id else None,
            "ledger_transfer": f"/v1/transactions/{id_to_text(record.id)}",
        }

    # -- prices --------------------------------------------------------------------------------

    async def prices(self) -> dict[str, px.Price]:
        rows = await self.db.fetch("SELECT asset, price_e8, set_at_s FROM wallet_prices")
        return {r[0]: px.Price(r[0], int(r[1]), int(r[2])) for r in rows}

    async def set_price(self, admin: str, code: str, text: object) -> px.Price:
        asset = await self.asset(code)
        if asset.code == "USD":
            raise ValueError("USD is the unit of the price table; it has no price")
        price = px.Price(asset.code, px.parse_price(text), int(self.clock_s()))
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO wallet_prices (asset, price_e8, set_at_s, set_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (asset) DO UPDATE SET price_e8 = excluded.price_e8, "
                "set_at_s = excluded.set_at_s, set_by = excluded.set_by",
                price.asset,
                str(price.price_e8),
                price.set_at_s,
                admin,
            )
            await self.audit.append(
                tx, admin, "price.set", asset.code, {"price_usd": px.format_price(price.price_e8)}
            )
        return price

    # -- conversions ---------------------------------------------------------------------------

    async def convert(
        self, player: str, idempotency_key: str, from_code: str, to_code: str, amount: int
    ) -> Conversion:
        """Convert at the price table, once per key: a request run again after a crash finds
        its transfers and answers with them, whatever the prices are now."""
        cid = cv.conversion_id(player, idempotency_key)
        done = await self.ledger.lookup_transfers(
            [derive_id(f"conversion.{leg}", cid) for leg in ("give", "take", "fee")]
        )
        if done:
            give, take, *fee = done
            return Conversion(
                cid, give.asset, take.asset, give.amount, take.amount, fee[0].amount if fee else 0
            )
        source, target = await self.asset(from_code), await self.asset(to_code)
        try:
            q = cv.quote(
                amount,
                (source.code, source.scale, str(source.kind)),
                (target.code, target.scale, str(target.kind)),
                await self.prices(),
                self.fees.rate_bps(FeeKind.CONVERSION, pro=False),
                int(self.clock_s()),
            )
        except cv.Refused as refused:
            raise ConversionRefused(refused.code, str(refused)) from None
        await self.ledger.create_accounts(
            [
                accounts.user(player, source.code),
                accounts.user(player, target.code),
                accounts.exchange(source.code),
                accounts.exchange(target.code),
                accounts.revenue(target.code),
            ]
        )
        outcomes = await self.ledger.create_transfers(cv.transfers(cid, player, q))
        if not all(o.result.succeeded for o in outcomes):
            raise ConversionRefused(
                "insufficient_funds",
                f"your available {source.code} does not cover {source.format_amount(amount)}",
                409,
            )
        await self.audit.append(
            None,
            player,
            "conversion",
            cid,
            {
                "from": source.code,
                "to": target.code,
                "amount": str(amount),
                "received": str(q.received),
                "fee": str(q.fee),
            },
        )
        return Conversion(cid, source.code, target.code, amount, q.received, q.fee)
