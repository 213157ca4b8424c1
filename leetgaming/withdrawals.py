"""Withdrawals: the shell around :mod:`wallet.withdrawals`, with TOTP and the card rail.

Asking (``POST /v1/withdrawals``, idempotent): in one transaction that holds the player's
withdrawal lock (a row locked with ``UPDATE``, so two requests of one player take turns on
every node), the last 24 hours are summed against the daily limit and the withdrawal row is
written; then its holds are posted in the ledger. A hold the wallet cannot cover (the last
funds went to an entry fee a moment before) deletes the row: the request is refused and
nothing happened. A crash between the row and the hold leaves a row marked not ``held``,
which the sweeper settles by looking the hold up in the ledger.

Sending (the ``card_refund`` rail): the withdrawal becomes ``sending``, the deposit it refunds
records the refund (so Stripe's ``charge.refunded`` webhook for it reverses nothing), and
Stripe is asked for a refund with the withdrawal id as its idempotency key. On success the
holds are posted (``sent``); on a refusal they are voided (``failed``) and the deposit's record
taken back. A crash anywhere in between leaves ``sending``, and the sweeper runs the same steps
again, which post and refund at most once.

TOTP (:mod:`leetgaming.two_factor`): a player enrols (a secret shown once, confirmed with a
first code) before any withdrawal above the approval threshold; each code is usable once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

import orjson
from web3.exceptions import Web3Exception

from ledger import Asset, Ledger, Transfer
from leetgaming.audit import AuditLog
from leetgaming.chain import Chains, ChainSettingsError
from leetgaming.db import Conn, Database, one_of
from leetgaming.deposits import Deposits, RetryLater, Row
from leetgaming.two_factor import TwoFactor
from leetgaming.wallet import Wallet
from wallet import accounts
from wallet import deposits as dp
from wallet import prices as px
from wallet import withdrawals as wd
from wallet.fees import FeeKind, FeeSchedule
from wallet.stripe_gateway import GatewayError

log = logging.getLogger("leetgaming.withdrawals")

CARD_REFUND: Final = "card_refund"
# A request that has not held its money, or a withdrawal still approved or sending, this long
# after its last change was left by a crash (its own request or command finishes it otherwise)
STUCK_AFTER_S: Final = 30
LIST_ROWS_MAX: Final = 100

MIGRATIONS: Final = (
    """
    CREATE TABLE withdrawals (
        id TEXT PRIMARY KEY,
        player TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount TEXT NOT NULL,
        fee TEXT NOT NULL,
        rail TEXT NOT NULL,
        destination TEXT NOT NULL,
        usd_cents BIGINT NOT NULL,
        state TEXT NOT NULL,
        needs_approval INTEGER NOT NULL,
        risk_score INTEGER NOT NULL,
        risk_reasons TEXT NOT NULL,
        approved_by TEXT,
        provider_ref TEXT,
        history TEXT NOT NULL,
        held INTEGER NOT NULL,
        version INTEGER NOT NULL,
        created_at_s BIGINT NOT NULL,
        updated_at_s BIGINT NOT NULL
    );
    CREATE INDEX withdrawals_by_player ON withdrawals (player, created_at_s);
    CREATE INDEX withdrawals_by_state ON withdrawals (state, created_at_s);
    CREATE TABLE withdrawal_locks (player TEXT PRIMARY KEY)
    """,
    # the risk rule shared_destination: has another account withdrawn to this destination?
    "CREATE INDEX withdrawals_by_destination ON withdrawals (destination, player)",
)

_COLUMNS: Final = (
    "id, player, asset, amount, fee, rail, destination, usd_cents, state, needs_approval, "
    "risk_score, risk_reasons, approved_by, provider_ref, history, held, version"
)

Publish = Callable[[str, object], Awaitable[object]]


class WithdrawalRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _withdrawal(r: tuple[Any, ...]) -> tuple[wd.Withdrawal, bool, int]:
    w = wd.Withdrawal(
        r[0],
        r[1],
        r[2],
        int(r[3]),
        int(r[4]),
        r[5],
        r[6],
        int(r[7]),
        wd.State(r[8]),
        bool(r[9]),
        int(r[10]),
        tuple(orjson.loads(r[11])),
        r[12],
        r[13],
        tuple((str(h[0]), str(h[1])) for h in orjson.loads(r[14])),
    )
    return w, bool(r[15]), int(r[16])


def withdrawal_json(w: wd.Withdrawal) -> dict[str, object]:
    return {
        "id": w.id,
        "state": str(w.state),
        "asset": w.asset,
        "amount": str(w.amount),
        "fee": str(w.fee),
        "payout": str(w.payout),
        "rail": w.rail,
        "destination": w.destination,
        "needs_approval": w.needs_approval,
        "risk_score": w.risk_score,
        "risk_reasons": list(w.risk_reasons),
        "approved_by": w.approved_by,
        "provider_ref": w.provider_ref,
        "history": [{"state": s, "by": a} for s, a in w.history],
    }


class Withdrawals:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        audit: AuditLog,
        wallet: Wallet,
        deposits: Deposits,
        fees: FeeSchedule,
        publish: Publish,
        limits: wd.Limits | None = None,
        clock_s: Callable[[], float] = time.time,
        *,
        two_factor: TwoFactor,
        chains: Chains | None = None,
        pro_of: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.two_factor = two_factor
        self.chains = chains
        self.pro_of = pro_of  # whether a player pays the Pro rates
        self.db = db
        self.ledger = ledger
        self.audit = audit
        self.wallet = wallet
        self.deposits = deposits
        self.fees = fees
        self.publish = publish
        self.limits = limits or wd.Limits()
        self.clock_s = clock_s

    async def start(self) -> None:
        await self.db.migrate("withdrawals", MIGRATIONS)

    # -- reading -------------------------------------------------------------------------------

    async def get(self, wid: str) -> tuple[wd.Withdrawal, bool, int] | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM withdrawals WHERE id = ?", wid)  # nosec B608
        return None if row is None else _withdrawal(row)

    async def queue(self, states: tuple[str, ...]) -> list[wd.Withdrawal]:
        in_states, args = one_of(self.db.dialect, states)
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM withdrawals WHERE held = 1 AND state {in_states} "  # nosec B608
            "ORDER BY created_at_s LIMIT ?",
            *args,
            LIST_ROWS_MAX,
        )
        return [_withdrawal(r)[0] for r in rows]

    async def _save(self, conn: Conn | None, before_version: int, w: wd.Withdrawal) -> bool:
        changed = await (conn or self.db).execute(
            "UPDATE withdrawals SET state = ?, approved_by = ?, provider_ref = ?, history = ?, "
            "version = ?, updated_at_s = ? WHERE id = ? AND version = ?",
            str(w.state),
            w.approved_by,
            w.provider_ref,
            orjson.dumps([list(h) for h in w.history]).decode(),
            before_version + 1,
            int(self.clock_s()),
            w.id,
            before_version,
        )
        return changed == 1

    # -- asking --------------------------------------------------------------------------------

    async def _usd_cents(
        self, asset_code: str, amount: int, table: dict[str, px.Price] | None = None
    ) -> int:
        asset = await self.wallet.asset(asset_code)
        if asset.code == "USD":
            return amount
        price = (table if table is not None else await self.wallet.prices()).get(asset.code)
        if price is None:
            raise WithdrawalRefused(
                "unpriced_asset", f"{asset.code} has no price: its limits cannot be checked"
            )
        return px.value_cents(amount, asset.scale, price.price_e8)

    async def _card_destination(self, player: str, destination: object, asset: str) -> Row:
        if not isinstance(destination, str):
            raise WithdrawalRefused("bad_destination", "destination is the id of a card deposit")
        row = await self.deposits.get(destination)
        if (
            row is None
            or row.deposit.player != player
            or row.deposit.method is not dp.Method.CARD
            or row.deposit.state is not dp.State.SUCCEEDED
            or row.deposit.asset != asset
        ):
            raise WithdrawalRefused(
                "bad_destination", f"destination is one of your succeeded {asset} card deposits"
            )
        return row

    async def _destination(
        self, player: str, rail: str, destination: object, asset: Asset, payout: int
    ) -> str:
        """The destination a withdrawal of ``payout`` may go to on ``rail``, normalised."""
        if rail == CARD_REFUND:
            deposit = await self._card_destination(player, destination, asset.code)
            d = deposit.deposit
            refundable = d.amount - deposit.refunded - d.reversed_amount
            if payout > refundable:
                raise WithdrawalRefused(
                    "exceeds_destination",
                    f"that card deposit can take back at most {asset.format_amount(refundable)} "
                    f"{asset.code}",
                )
            return d.id
        if self.chains is not None and rail in self.chains.names:
            try:
                return self.chains.destination(rail, asset.code, destination)
            except ValueError as exc:
                raise WithdrawalRefused("bad_destination", str(exc)) from None
        rails = [CARD_REFUND, *(self.chains.names if self.chains else ())]
        raise WithdrawalRefused("bad_rail", f"rail is one of {', '.join(rails)}")

    async def _facts(
        self, player: str, usd_cents: int, destination: str, now_s: int
    ) -> wd.RiskFacts:
        created = await self.db.fetchone("SELECT created_s FROM users WHERE id = ?", player)
        age = now_s - int(created[0]) if created else 0
        recent = await self.db.fetchone(
            "SELECT COUNT(*) FROM withdrawals WHERE player = ? AND created_at_s > ? AND held = 1",
            player,
            now_s - wd.DAY_S,
        )
        deposited = 0
        table = await self.wallet.prices()  # once, not once per deposit
        for r in await self.db.fetch(
            "SELECT asset, amount, reversed FROM deposits WHERE player = ? AND state IN (?, ?)",
            player,
            str(dp.State.SUCCEEDED),
            str(dp.State.REVERSED),
        ):
            try:
                deposited += await self._usd_cents(r[0], int(r[1]) - int(r[2]), table)
            except WithdrawalRefused:
                continue  # an unpriced asset counts for nothing
        used = {
            r[0]
            for r in await self.db.fetch(
                "SELECT DISTINCT destination FROM withdrawals WHERE player = ? AND held = 1",
                player,
            )
        }
        shared = await self.db.fetchone(
            "SELECT 1 FROM withdrawals WHERE destination = ? AND player <> ? AND held = 1 LIMIT 1",
            destination,
            player,
        )
        return wd.RiskFacts(
            account_age_s=age,
            withdrawals_24h=int(recent[0]) if recent else 0,
            deposited_usd_cents=deposited,
            amount_usd_cents=usd_cents,
            new_destination=destination not in used,
            had_destination=bool(used),
            shared_destination=shared is not None,
        )

    async def request(
        self,
        player: str,
        idempotency_key: str,
        asset_code: str,
        amount: int,
        rail: str,
        destination: object,
    ) -> wd.Withdrawal:
        wid = wd.withdrawal_id(player, idempotency_key)
        existing = await self.get(wid)
        if existing is not None and existing[1]:
            return existing[0]
        asset = await self.wallet.asset(asset_code)
        pro = self.pro_of is not None and await self.pro_of(player)
        fee = self.fees.fee(FeeKind.WITHDRAWAL, amount, pro)
        to = await self._destination(player, rail, destination, asset, amount - fee)
        usd_cents = await self._usd_cents(asset.code, amount)
        now = int(self.clock_s())
        facts = await self._facts(player, usd_cents, to, now)
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO withdrawal_locks (player) VALUES (?) ON CONFLICT (player) DO NOTHING",
                player,
            )
            await tx.execute("UPDATE withdrawal_locks SET player = player WHERE player = ?", player)
            counted, args = one_of(self.db.dialect, sorted(str(s) for s in wd.COUNTS_TOWARD_LIMIT))
            total = await tx.fetchone(
                "SELECT COALESCE(SUM(usd_cents), 0) FROM withdrawals WHERE player = ? "  # nosec B608
                f"AND created_at_s > ? AND state {counted} AND id <> ?",
                player,
                now - wd.DAY_S,
                *args,
                wid,
            )
            try:
                w, holds = wd.request(
                    wid,
                    player,
                    asset.code,
                    amount,
                    fee,
                    rail,
                    to,
                    usd_cents,
                    int(total[0]) if total else 0,
                    facts,
                    self.limits,
                )
            except wd.Refused as refused:
                raise WithdrawalRefused(refused.code, str(refused), 409) from None
            await tx.execute(
                f"INSERT INTO withdrawals ({_COLUMNS}, created_at_s, updated_at_s) VALUES "  # nosec B608
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 0, 0, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                w.id,
                player,
                w.asset,
                str(w.amount),
                str(w.fee),
                w.rail,
                w.destination,
                w.usd_cents,
                str(w.state),
                int(w.needs_approval),
                w.risk_score,
                orjson.dumps(list(w.risk_reasons)).decode(),
                orjson.dumps([list(h) for h in w.history]).decode(),
                now,
                now,
            )
        await self.ledger.create_accounts(
            [
                accounts.user(player, asset.code),
                accounts.settlement(asset.code),
                accounts.revenue(asset.code),
            ]
        )
        outcomes = await self.ledger.create_transfers(holds)
        if not all(o.result.succeeded for o in outcomes):
            await self.db.execute("DELETE FROM withdrawals WHERE id = ? AND held = 0", wid)
            raise WithdrawalRefused(
                "insufficient_funds",
                f"your available {asset.code} does not cover {asset.format_amount(amount)}",
                409,
            )
        await self.db.execute("UPDATE withdrawals SET held = 1 WHERE id = ?", wid)
        await self.audit.append(
            None,
            player,
            "withdrawal.request",
            wid,
            {
                "asset": w.asset,
                "amount": str(w.amount),
                "state": str(w.state),
                "risk_score": w.risk_score,
                "risk_reasons": list(w.risk_reasons),
            },
        )
        if w.state is wd.State.APPROVED:
            return await self.send(wid)
        return w

    # -- confirmation, approval, cancellation ------------------------------------------------

    async def _step(
        self,
        wid: str,
        actor: str,
        action: str,
        change: Callable[[wd.Withdrawal], tuple[wd.Withdrawal, list[Any]]],
        player: str | None = None,
    ) -> wd.Withdrawal:
        for _ in range(10):
            found = await self.get(wid)
            if found is None or not found[1] or (player is not None and found[0].player != player):
                raise WithdrawalRefused("not_found", "no such withdrawal", 404)
            w, _, version = found
            try:
                after, transfers = change(w)
            except wd.IllegalTransition as illegal:
                raise WithdrawalRefused("wrong_state", str(illegal), 409) from None
            except wd.Refused as refused:
                raise WithdrawalRefused(refused.code, str(refused), 403) from None
            if not await self._save(None, version, after):
                continue
            if transfers:
                outcomes = await self.ledger.create_transfers(transfers)
                bad = [o.result for o in outcomes if not o.result.succeeded]
                if bad:
                    raise RuntimeError(f"the ledger refused a withdrawal's holds: {bad}")
            await self.audit.append(None, actor, action, wid, {"state": str(after.state)})
            await self.publish(
                f"user:{after.player}",
                {"kind": "wallet.withdrawal", "withdrawal": withdrawal_json(after)},
            )
            if after.state is wd.State.APPROVED:
                return await self.send(wid)
            return after
        raise RuntimeError("a withdrawal kept changing under a command")

    async def confirm(self, player: str, wid: str, code: object) -> wd.Withdrawal:
        await self.two_factor.check(player, code)
        return await self._step(
            wid, player, "withdrawal.confirm_totp", lambda w: (wd.confirm_totp(w), []), player
        )

    async def approve(self, admin: str, wid: str) -> wd.Withdrawal:
        return await self._step(
            wid, admin, "withdrawal.approve", lambda w: (wd.approve(w, admin), [])
        )

    async def reject(self, admin: str, wid: str) -> wd.Withdrawal:
        return await self._step(wid, admin, "withdrawal.reject", lambda w: wd.reject(w, admin))

    async def cancel(self, player: str, wid: str) -> wd.Withdrawal:
        return await self._step(wid, player, "withdrawal.cancel", wd.cancel, player)

    # -- sending -------------------------------------------------------------------------------

    async def send(self, wid: str) -> wd.Withdrawal:
        """Carry an approved (or interrupted) withdrawal to its end on its rail; a chain send
        stays ``sending`` until its transaction is confirmed (the chain's loop calls again)."""
        found = await self.get(wid)
        assert found is not None
        w, _, version = found
        resumed = w.state is wd.State.SENDING  # a crash came between asking the rail and now
        if w.state is wd.State.APPROVED:
            out = wd.sending(w)
            if not await self._save(None, version, out):
                return (await self.get(wid) or found)[0]
            w, version = out, version + 1
        if w.state is not wd.State.SENDING:
            return w
        if w.rail == CARD_REFUND:
            done, transfers, action = await self._send_card(w, resumed)
        else:
            ended = await self._send_chain(w)
            if ended is None:
                return w
            done, transfers, action = ended
        outcomes = await self.ledger.create_transfers(transfers)
        bad = [o.result for o in outcomes if not o.result.succeeded]
        if bad:
            raise RuntimeError(f"the ledger refused to resolve a withdrawal's holds: {bad}")
        if await self._save(None, version, done):
            await self.audit.append(
                None,
                "system",
                action,
                w.id,
                {"state": str(done.state), "provider_ref": done.provider_ref},
            )
            await self.publish(
                f"user:{w.player}",
                {"kind": "wallet.withdrawal", "withdrawal": withdrawal_json(done)},
            )
        return done

    async def _send_card(
        self, w: wd.Withdrawal, resumed: bool
    ) -> tuple[wd.Withdrawal, list[Transfer], str]:
        gateway = self.deposits.gateway
        cause = f"withdrawal:{w.id}"
        deposit = await self._record_refund(w, cause, +1)
        try:
            if gateway is None:
                raise GatewayError("card payments are not configured")
            assert deposit.provider_ref is not None
            ref = None
            if resumed:  # Stripe may have refunded already: never twice
                ref = await gateway.find_refund(deposit.provider_ref, w.id)
            if ref is None:
                ref = await gateway.refund(deposit.provider_ref, w.payout, w.id)
        except GatewayError as exc:
            log.warning(
                "a withdrawal failed on its rail", extra={"withdrawal": w.id, "error": str(exc)}
            )
            await self._record_refund(w, cause, -1)
            return (*wd.failed(w), "withdrawal.fail")
        return (*wd.sent(w, ref), "withdrawal.send")

    async def _send_chain(
        self, w: wd.Withdrawal
    ) -> tuple[wd.Withdrawal, list[Transfer], str] | None:
        """Sign and broadcast once, then wait for the confirmed receipt: None while waiting."""
        assert self.chains is not None
        try:
            tx_hash = await self.chains.send(w.id, w.rail, w.asset, w.destination, w.payout)
            paid = await self.chains.outcome(w.rail, w.asset, w.destination, w.payout, tx_hash)
        except (ChainSettingsError, Web3Exception, OSError) as exc:
            log.warning(
                "a chain send is waiting", extra={"withdrawal": w.id, "error": str(exc)[:200]}
            )
            return None
        if paid is None:
            return None
        if not paid:
            log.warning("a chain send reverted", extra={"withdrawal": w.id, "tx": tx_hash})
            failed, transfers = wd.failed(w)
            return replace(failed, provider_ref=tx_hash), transfers, "withdrawal.fail"
        return (*wd.sent(w, tx_hash), "withdrawal.send")

    async def advance_chain_sends(self, chain: str) -> None:
        """Take every withdrawal sending on ``chain`` one step further (after each poll)."""
        for r in await self.db.fetch(
            "SELECT id FROM withdrawals WHERE held = 1 AND rail = ? AND state IN (?, ?) "
            "ORDER BY created_at_s LIMIT ?",
            chain,
            str(wd.State.APPROVED),
            str(wd.State.SENDING),
            LIST_ROWS_MAX,
        ):
            try:
                await self.send(r[0])
            except Exception:
                log.exception("a withdrawal could not be advanced", extra={"withdrawal": r[0]})

    async def refund_failed(self, refund: dict[str, Any]) -> str:
        """Stripe says a refund we made for a withdrawal failed: the money never reached the
        card, so the withdrawal is returned (payout and fee back to the wallet), once."""
        metadata = refund.get("metadata") or {}
        wid, ref = metadata.get("withdrawal"), refund.get("id")
        if not isinstance(wid, str) or not isinstance(ref, str):
            return "not_ours"
        for _ in range(10):
            found = await self.get(wid)
            if found is None or found[0].rail != CARD_REFUND:
                return "not_ours"
            w, _, version = found
            if w.state is wd.State.RETURNED:
                return "already_returned"
            if w.state is wd.State.SENDING:
                raise RetryLater("the withdrawal is still being sent")
            if w.state is not wd.State.SENT or w.provider_ref != ref:
                log.error(
                    "a failed refund does not match its withdrawal", extra={"withdrawal": wid}
                )
                return "mismatch"
            done, transfers = wd.returned(w)
            outcomes = await self.ledger.create_transfers(transfers)
            bad = [o.result for o in outcomes if not o.result.succeeded]
            if bad:
                raise RuntimeError(f"the ledger refused a withdrawal's return: {bad}")
            if not await self._save(None, version, done):
                continue
            await self._record_refund(w, f"withdrawal:{w.id}", -1)
            await self.audit.append(None, "stripe", "withdrawal.return", w.id, {"refund": ref})
            await self.publish(
                f"user:{w.player}",
                {"kind": "wallet.withdrawal", "withdrawal": withdrawal_json(done)},
            )
            return "returned"
        raise RuntimeError("a withdrawal kept changing under a failed refund")

    async def _record_refund(self, w: wd.Withdrawal, cause: str, sign: int) -> Row:
        """Note on the deposit (once) that this withdrawal refunds part of it (sign +1), or
        take the note back (-1), so Stripe's refund webhook is not read as a reversal."""
        undo = f"undo:{cause}"
        while True:
            row = await self.deposits.get(w.destination)
            assert row is not None
            marker = cause if sign > 0 else undo
            if marker in row.causes:
                return row
            after = replace(
                row, refunded=row.refunded + sign * w.payout, causes=(*row.causes, marker)
            )
            if await self.deposits.save(row, after):
                return after

    async def sweep(self) -> None:
        """Finish what a crash interrupted: rows never marked held, withdrawals sending."""
        now = int(self.clock_s())
        for r in await self.db.fetch(
            "SELECT id FROM withdrawals WHERE held = 0 AND updated_at_s < ?", now - STUCK_AFTER_S
        ):
            found = await self.get(r[0])
            if found is None:
                continue
            hold = wd.holds(found[0])[0].id
            if await self.ledger.lookup_transfers([hold]):
                await self.db.execute("UPDATE withdrawals SET held = 1 WHERE id = ?", r[0])
            else:
                await self.db.execute("DELETE FROM withdrawals WHERE id = ? AND held = 0", r[0])
        for r in await self.db.fetch(
            "SELECT id FROM withdrawals WHERE held = 1 AND state IN (?, ?) AND updated_at_s < ?",
            str(wd.State.APPROVED),
            str(wd.State.SENDING),
            now - STUCK_AFTER_S,
        ):
            try:
                await self.send(r[0])
            except Exception:
                log.exception("a withdrawal could not be finished", extra={"withdrawal": r[0]})
