"""Deposits: card payments through Stripe, credited from its signed webhooks.

``POST /v1/deposits`` makes a deposit (its id derived from the player and the request's
Idempotency-Key) and a PaymentIntent for it (Stripe's own idempotency key is the deposit id);
the client pays with the returned client secret. Stripe then tells us, by webhook, what
happened; only a verified event moves money:

- ``payment_intent.succeeded``: the wallet is credited the amount received and pays the
  deposit fee (:func:`wallet.deposits.credit`);
- ``payment_intent.payment_failed``: the deposit fails, nothing moves;
- ``refund.failed`` (or a refund updated to ``failed``): a withdrawal's refund bounced; the
  withdrawal is returned to the wallet (:meth:`leetgaming.withdrawals.Withdrawals.refund_failed`);
- ``charge.refunded``: the refunded total (cumulative, as Stripe reports it) beyond what was
  already taken back is reversed; ``charge.dispute.closed`` with ``status: lost`` reverses the
  disputed amount. A reversal takes what the wallet still has and books the rest as the
  platform's loss (:func:`wallet.deposits.reverse`).

Delivery is at least once and in any order. Every effect has a deterministic ledger id and a
deposit row changes by compare-and-set on its version, so a duplicate, a retry after a crash,
or two deliveries at once post each transfer once. An event about a deposit that is not yet
credited (a refund overtaking its payment) is answered 503, so Stripe delivers it again later.
Event ids already handled are remembered and answered at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from ledger import Asset, AssetKind, Ledger, Transfer, TransferFlags
from ledger.result import CreateTransferResult
from leetgaming.audit import AuditLog
from leetgaming.db import Conn, Database
from wallet import accounts
from wallet import chain as ch
from wallet import deposits as dp
from wallet.fees import FeeKind, FeeSchedule
from wallet.stripe_gateway import StripeGateway

log = logging.getLogger("leetgaming.deposits")

CARD_DEPOSIT_MIN: Final = 100  # 1.00 of a fiat currency, in its cents
CARD_DEPOSIT_MAX: Final = 1_000_000  # 10,000.00
POST_ATTEMPTS_MAX: Final = 3  # a reversal recomputed when the wallet spent in between

MIGRATIONS: Final = (
    """
    CREATE TABLE deposits (
        id TEXT PRIMARY KEY,
        player TEXT NOT NULL,
        method TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount TEXT NOT NULL,
        fee TEXT NOT NULL,
        state TEXT NOT NULL,
        reversed TEXT NOT NULL,
        refunded TEXT NOT NULL,
        causes TEXT NOT NULL,
        provider_ref TEXT,
        version INTEGER NOT NULL,
        created_at_s BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX deposits_by_ref ON deposits (provider_ref);
    CREATE INDEX deposits_by_player ON deposits (player, created_at_s);
    CREATE TABLE stripe_events (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        received_at_s BIGINT NOT NULL
    )
    """,
)

Publish = Callable[[str, object], Awaitable[object]]


class DepositRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class RetryLater(Exception):
    """The event cannot be applied yet (it overtook the one it depends on)."""


@dataclass(frozen=True, slots=True)
class Row:
    deposit: dp.Deposit
    refunded: int
    causes: tuple[str, ...]
    provider_ref: str | None
    version: int


_COLUMNS: Final = (
    "id, player, method, asset, amount, fee, state, reversed, refunded, causes, provider_ref, "
    "version"
)


def row_of(r: tuple[Any, ...]) -> Row:
    deposit = dp.Deposit(
        r[0], r[1], dp.Method(r[2]), r[3], int(r[4]), int(r[5]), dp.State(r[6]), int(r[7])
    )
    return Row(deposit, int(r[8]), tuple(orjson.loads(r[9])), r[10], int(r[11]))


def deposit_json(row: Row) -> dict[str, object]:
    d = row.deposit
    return {
        "id": d.id,
        "method": str(d.method),
        "state": str(d.state),
        "asset": d.asset,
        "amount": str(d.amount),
        "fee": str(d.fee),
        "net": str(d.amount - d.fee),
        "reversed": str(d.reversed_amount),
    }


class Deposits:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        audit: AuditLog,
        gateway: StripeGateway | None,
        fees: FeeSchedule,
        publish: Publish,
        assets: Callable[[], Awaitable[dict[str, Asset]]],
        clock_s: Callable[[], float] = time.time,
        pro_of: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.pro_of = pro_of  # whether a player pays the Pro rates
        # a refund we made that failed (a withdrawal to a card that bounced)
        self.on_refund_failed: Callable[[dict[str, Any]], Awaitable[str]] | None = None
        self.assets = assets  # the wallet's cached registry, not a query per deposit
        self.db = db
        self.ledger = ledger
        self.audit = audit
        self.gateway = gateway
        self.fees = fees
        self.publish = publish
        self.clock_s = clock_s

    async def start(self) -> None:
        await self.db.migrate("deposits", MIGRATIONS)

    async def fee(self, player: str, amount: int) -> int:
        """The deposit fee ``player`` pays on ``amount`` now (Pro subscribers pay less)."""
        pro = self.pro_of is not None and await self.pro_of(player)
        return self.fees.fee(FeeKind.DEPOSIT, amount, pro)

    async def get(self, deposit_id: str) -> Row | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM deposits WHERE id = ?", deposit_id)  # nosec B608
        return None if row is None else row_of(row)

    async def of_player(self, player: str, rows_max: int) -> list[Row]:
        """``player``'s deposits, newest first."""
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM deposits WHERE player = ? "  # nosec B608
            "ORDER BY created_at_s DESC, id DESC LIMIT ?",
            player,
            rows_max,
        )
        return [row_of(r) for r in rows]

    async def _by_ref(self, ref: str) -> Row | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM deposits WHERE provider_ref = ?", ref)  # nosec B608
        return None if row is None else row_of(row)

    async def save(self, before: Row, after: Row, conn: Conn | None = None) -> bool:
        """Write ``after`` over ``before`` if nobody changed the row meanwhile (in ``conn``'s
        transaction when given)."""
        d = after.deposit
        changed = await (conn or self.db).execute(
            "UPDATE deposits SET amount = ?, fee = ?, state = ?, reversed = ?, refunded = ?, "
            "causes = ?, provider_ref = ?, version = ? WHERE id = ? AND version = ?",
            str(d.amount),
            str(d.fee),
            str(d.state),
            str(d.reversed_amount),
            str(after.refunded),
            orjson.dumps(list(after.causes)).decode(),
            after.provider_ref,
            before.version + 1,
            d.id,
            before.version,
        )
        return changed == 1

    async def _insert(self, deposit: dp.Deposit, provider_ref: str | None) -> None:
        """Write a new deposit's row; one already there (a retry) is left as it is."""
        await self.db.execute(
            f"INSERT INTO deposits ({_COLUMNS}, created_at_s) "  # nosec B608
            "VALUES (?, ?, ?, ?, ?, ?, ?, '0', '0', '[]', ?, 0, ?) ON CONFLICT (id) DO NOTHING",
            deposit.id,
            deposit.player,
            str(deposit.method),
            deposit.asset,
            str(deposit.amount),
            str(deposit.fee),
            str(deposit.state),
            provider_ref,
            int(self.clock_s()),
        )

    # -- asking for a deposit --------------------------------------------------------------------

    async def create_card(
        self, player: str, idempotency_key: str, asset_code: str, amount: int
    ) -> tuple[Row, str]:
        """A card deposit and the client secret the player pays it with."""
        if self.gateway is None:
            raise DepositRefused("payments_unavailable", "card payments are not configured", 503)
        assets = await self.assets()
        asset = assets.get(asset_code)
        if asset is None or asset.kind is not AssetKind.FIAT:
            fiat = sorted(a.code for a in assets.values() if a.kind is AssetKind.FIAT)
            raise DepositRefused("bad_asset", f"cards deposit one of {', '.join(fiat)}")
        if not CARD_DEPOSIT_MIN <= amount <= CARD_DEPOSIT_MAX:
            raise DepositRefused(
                "amount_out_of_range",
                f"a card deposit is {asset.format_amount(CARD_DEPOSIT_MIN)} to "
                f"{asset.format_amount(CARD_DEPOSIT_MAX)} {asset.code}",
            )
        deposit = dp.Deposit(
            dp.deposit_id(player, idempotency_key),
            player,
            dp.Method.CARD,
            asset.code,
            amount,
            await self.fee(player, amount),
        )
        await self._insert(deposit, None)
        intent = await self.gateway.create_intent(
            amount, asset.code, deposit.id, {"deposit": deposit.id, "player": player}
        )
        row = await self.get(deposit.id)
        assert row is not None
        if row.deposit.state is dp.State.CREATED:
            pending = replace(
                row, deposit=dp.move(row.deposit, dp.State.PENDING), provider_ref=intent.id
            )
            async with self.db.transaction() as tx:  # the row and its audit entry together
                saved = await self.save(row, pending, tx)
                if saved:
                    await self.audit.append(
                        tx,
                        player,
                        "deposit.create",
                        deposit.id,
                        {"method": "card", "asset": deposit.asset, "amount": str(amount)},
                    )
            row = pending if saved else (await self.get(deposit.id) or row)
        return row, intent.client_secret

    # -- what a chain tells us -------------------------------------------------------------------

    async def credit_payment(self, payment: ch.Payment, player: str) -> Row:
        """Credit a confirmed on-chain payment to ``player`` (once: its deposit id derives from
        the chain, transaction and log index, and so do its ledger transfers)."""
        deposit = dp.Deposit(
            ch.deposit_id(payment.chain, payment.tx_hash, payment.log_index),
            player,
            dp.Method.CHAIN,
            payment.asset,
            payment.amount,
            await self.fee(player, payment.amount),
            dp.State.PENDING,
        )
        await self._insert(deposit, payment.key)
        while True:
            row = await self.get(deposit.id)
            assert row is not None
            if row.deposit.state is not dp.State.PENDING:
                return row
            done, transfers = dp.credit(row.deposit)
            await self.ledger.create_accounts(
                [
                    accounts.settlement(done.asset),
                    accounts.user(player, done.asset),
                    accounts.revenue(done.asset),
                ]
            )
            await self._post(transfers)
            after = replace(row, deposit=done)
            # the row and its audit entry commit together: a crash in between would leave
            # a credit that no retry records (the retry finds the row settled)
            async with self.db.transaction() as tx:
                if await self.save(row, after, tx):
                    await self.audit.append(
                        tx,
                        "chain",
                        "deposit.credit",
                        done.id,
                        {
                            "asset": done.asset,
                            "amount": str(done.amount),
                            "fee": str(done.fee),
                            "payment": payment.key,
                        },
                    )
                    break
        await self.publish(
            f"user:{player}", {"kind": "wallet.deposit", "deposit": deposit_json(after)}
        )
        return after

    # -- what Stripe tells us ----------------------------------------------------------------

    async def on_stripe(self, payload: bytes, signature: str | None) -> str:
        """Handle one webhook delivery; what was done (for the log and the answer)."""
        assert self.gateway is not None
        event = self.gateway.event(payload, signature)
        event_id, kind = event["id"], str(event.get("type", ""))
        if await self.db.fetchone("SELECT 1 FROM stripe_events WHERE id = ?", event_id):
            return "duplicate"
        obj = (event.get("data") or {}).get("object") or {}
        if kind == "payment_intent.succeeded":
            outcome = await self._succeeded(obj)
        elif kind == "payment_intent.payment_failed":
            outcome = await self._failed(obj)
        elif kind == "charge.refunded":
            outcome = await self._refunded(obj)
        elif kind == "charge.dispute.created":
            outcome = await self._dispute_opened(obj)
        elif kind == "charge.dispute.closed":
            outcome = await self._dispute_closed(obj)
        elif kind in ("refund.failed", "refund.updated", "charge.refund.updated"):
            handler = self.on_refund_failed
            failed = obj.get("status") == "failed" and handler is not None
            outcome = await handler(obj) if failed and handler is not None else "ignored"
        else:
            outcome = "ignored"
        await self.db.execute(
            "INSERT INTO stripe_events (id, type, received_at_s) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            event_id,
            kind[:100],
            int(self.clock_s()),
        )
        return outcome

    async def _wallet_changed(self, row: Row) -> None:
        d = row.deposit
        await self.publish(
            f"user:{d.player}", {"kind": "wallet.deposit", "deposit": deposit_json(row)}
        )

    async def _deposit_of_intent(self, intent_id: object) -> Row | None:
        if not isinstance(intent_id, str):
            return None
        return await self._by_ref(intent_id)

    async def _post(self, transfers: list[Transfer]) -> None:
        outcomes = await self.ledger.create_transfers(transfers)
        bad = [o.result for o in outcomes if not o.result.succeeded]
        if bad:
            raise RuntimeError(f"the ledger refused a deposit's transfers: {bad}")

    async def _succeeded(self, intent: dict[str, Any]) -> str:
        while True:
            row = await self._deposit_of_intent(intent.get("id"))
            if row is None:
                return "unknown_deposit"
            d = row.deposit
            if d.state is not dp.State.PENDING:
                return "already_settled"
            received = intent.get("amount_received", intent.get("amount"))
            currency = str(intent.get("currency", "")).upper()
            if type(received) is not int or received <= 0 or currency != d.asset:
                log.error("a PaymentIntent does not match its deposit", extra={"deposit": d.id})
                return "mismatch"
            if received != d.amount:
                # the amount received and its fee are stored before anything is posted: a
                # retry after a crash posts the same transfers, even if the fee would come
                # out differently by then (another rate deployed, the player now Pro)
                fee = await self.fee(d.player, received)
                adjusted = replace(row, deposit=replace(d, amount=received, fee=fee))
                await self.save(row, adjusted)
                continue
            done, transfers = dp.credit(d)
            await self.ledger.create_accounts(
                [
                    accounts.settlement(d.asset),
                    accounts.user(d.player, d.asset),
                    accounts.revenue(d.asset),
                ]
            )
            await self._post(transfers)
            # the row and its audit entry commit together: a crash in between would leave
            # a credit that no retry records (the retry finds the row settled)
            async with self.db.transaction() as tx:
                if await self.save(row, replace(row, deposit=done), tx):
                    await self.audit.append(
                        tx,
                        "stripe",
                        "deposit.credit",
                        d.id,
                        {"asset": d.asset, "amount": str(d.amount), "fee": str(d.fee)},
                    )
                    break
        await self.publish(
            f"user:{d.player}",
            {"kind": "wallet.deposit", "deposit": deposit_json(replace(row, deposit=done))},
        )
        return "credited"

    async def _failed(self, intent: dict[str, Any]) -> str:
        row = await self._deposit_of_intent(intent.get("id"))
        if row is None:
            return "unknown_deposit"
        if row.deposit.state is not dp.State.PENDING:
            return "already_settled"
        failed = replace(row, deposit=dp.move(row.deposit, dp.State.FAILED))
        async with self.db.transaction() as tx:  # the row and its audit entry together
            if await self.save(row, failed, tx):
                await self.audit.append(tx, "stripe", "deposit.fail", row.deposit.id)
        return "failed"

    async def _refunded(self, charge: dict[str, Any]) -> str:
        total = charge.get("amount_refunded")
        if type(total) is not int or total <= 0:
            return "ignored"

        def step(row: Row) -> tuple[str, int] | None:
            if total <= row.refunded:
                return None  # an older (smaller) cumulative total, or this one again
            return f"refunded:{total}", total - row.refunded

        return await self._reverse(charge.get("payment_intent"), step, refunded=total)

    async def _dispute_opened(self, dispute: dict[str, Any]) -> str:
        """A card payment is disputed: what the wallet still has of it is frozen (held) until
        the dispute closes, so it cannot be withdrawn, spent or staked meanwhile."""
        amount, dispute_id = dispute.get("amount"), dispute.get("id")
        if type(amount) is not int or amount <= 0 or not isinstance(dispute_id, str):
            return "ignored"
        for _ in range(POST_ATTEMPTS_MAX * 4):
            row = await self._deposit_of_intent(dispute.get("payment_intent"))
            if row is None:
                return "unknown_deposit"
            d = row.deposit
            if d.state in (dp.State.CREATED, dp.State.PENDING):
                raise RetryLater("the deposit is not credited yet")
            if d.state is not dp.State.SUCCEEDED:
                return "already_reversed"
            if await self.ledger.lookup_transfers([dp.freeze_id(d, dispute_id)]):
                return "already_frozen"
            [state] = await self.ledger.lookup_accounts([accounts.user(d.player, d.asset).id])
            hold = dp.freeze(d, dispute_id, amount, state.balance.available)
            if hold is None:
                return "nothing_to_freeze"
            [outcome] = await self.ledger.create_transfers([hold])
            if outcome.result is CreateTransferResult.INSUFFICIENT_FUNDS:
                continue  # the wallet spent in between: compute again
            if not outcome.result.succeeded:
                raise RuntimeError(f"the ledger refused a dispute's freeze: {outcome.result}")
            await self.audit.append(
                None,
                "stripe",
                "deposit.freeze",
                d.id,
                {"dispute": dispute_id, "amount": str(hold.amount)},
            )
            await self._wallet_changed(row)
            return "frozen"
        raise RuntimeError("the wallet kept changing while a dispute's freeze was placed")

    async def _frozen(self, row: Row, dispute_id: str) -> int:
        """How much a dispute's freeze still holds (0: none, or released)."""
        d = row.deposit
        found = await self.ledger.lookup_transfers(
            [dp.freeze_id(d, dispute_id), dp.release(d, dispute_id).id]
        )
        return found[0].amount if len(found) == 1 else 0

    async def _release(self, row: Row, dispute_id: str) -> bool:
        """Void a closed dispute's freeze, if it had one; whether one was voided now."""
        if not await self._frozen(row, dispute_id):
            return False
        d = row.deposit
        [outcome] = await self.ledger.create_transfers([dp.release(d, dispute_id)])
        if not outcome.result.succeeded:
            raise RuntimeError(f"the ledger refused to release a dispute's freeze: {outcome}")
        await self.audit.append(None, "stripe", "deposit.release", d.id, {"dispute": dispute_id})
        return True

    async def _dispute_closed(self, dispute: dict[str, Any]) -> str:
        if dispute.get("status") != "lost":
            row = await self._deposit_of_intent(dispute.get("payment_intent"))
            dispute_id = dispute.get("id")
            if row is None or not isinstance(dispute_id, str):
                return "dispute_not_lost"
            if not await self._release(row, dispute_id):
                return "dispute_not_lost"
            await self._wallet_changed(row)
            return "released"
        amount, dispute_id = dispute.get("amount"), dispute.get("id")
        if type(amount) is not int or amount <= 0 or not isinstance(dispute_id, str):
            return "ignored"
        cause = f"dispute:{dispute_id}"

        def step(row: Row) -> tuple[str, int] | None:
            return None if cause in row.causes else (cause, amount)

        # the freeze is voided in the same linked request as the reversal that takes the
        # money back: nothing frozen is free to spend in between
        return await self._reverse(dispute.get("payment_intent"), step, unfreeze=dispute_id)

    async def _reverse(
        self,
        intent_id: object,
        step: Callable[[Row], tuple[str, int] | None],
        refunded: int | None = None,
        unfreeze: str | None = None,
    ) -> str:
        for _ in range(POST_ATTEMPTS_MAX * 4):
            row = await self._deposit_of_intent(intent_id)
            if row is None:
                return "unknown_deposit"
            if row.deposit.state in (dp.State.CREATED, dp.State.PENDING):
                raise RetryLater("the deposit is not credited yet")
            wanted = step(row)
            if wanted is None:
                return "already_reversed"
            cause, amount = wanted
            d = row.deposit
            amount = min(amount, d.amount - d.reversed_amount)
            if amount <= 0:
                return "already_reversed"
            first = dp.reversal_id(d, cause)
            if not await self.ledger.lookup_transfers([first]):
                await self.ledger.create_accounts(
                    [accounts.expense(d.asset), accounts.settlement(d.asset)]
                )
                wallet = accounts.user(d.player, d.asset).id
                [state] = await self.ledger.lookup_accounts([wallet])
                frozen = 0 if unfreeze is None else await self._frozen(row, unfreeze)
                _, transfers = dp.reverse(d, cause, amount, state.balance.available + frozen)
                if frozen and unfreeze is not None:
                    void = dp.release(d, unfreeze)
                    transfers = [replace(void, flags=void.flags | TransferFlags.LINKED), *transfers]
                outcomes = await self.ledger.create_transfers(transfers)
                if not all(o.result.succeeded for o in outcomes):
                    if any(o.result is CreateTransferResult.INSUFFICIENT_FUNDS for o in outcomes):
                        continue  # the wallet spent in between: compute again
                    raise RuntimeError(f"the ledger refused a reversal: {outcomes}")
            after = replace(
                row,
                deposit=dp.applied(d, amount),
                causes=(*row.causes, cause),
                refunded=max(row.refunded, refunded or 0),
            )
            async with self.db.transaction() as tx:  # the row and its audit entry together
                saved = await self.save(row, after, tx)
                if saved:
                    await self.audit.append(
                        tx,
                        "stripe",
                        "deposit.reverse",
                        d.id,
                        {"cause": cause, "amount": str(amount)},
                    )
            if not saved:
                continue
            await self._wallet_changed(after)
            return "reversed"
        raise RuntimeError("a reversal kept racing with the wallet's spending")
