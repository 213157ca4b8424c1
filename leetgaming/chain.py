"""Chains: deposit addresses, the watcher that credits what is paid to them, and hot-wallet sends.

Configured by a TOML file (``LEETGAMING_CHAINS_FILE``), one table per chain::

    [chains.polygon]
    chain_id = 137
    rpc_url = "https://polygon-rpc.example"
    confirmations = 64
    start_block = "latest"      # or a block number: where a new watcher starts
    [chains.polygon.tokens]     # asset = ERC-20 contract; its decimals must be the asset's scale
    USDC = "0x3c499c542cef5e3811e1192ce70d8cc03d5c3359"
    ETH = "0x7ceb23fd6bc0add59e62ac25578270cff1b9f619"

and ``native_asset = "ETH"`` where the chain's own coin is one of our assets. A table
``[chains.polygon.deposit_min]`` sets the smallest credited payment per asset, in its smallest
unit (``USDC = 1000000``: one USDC); smaller payments are dust, recorded and never credited.
Unset, it is a thousandth of a unit.

**Deposit addresses.** A player's address on a chain is derived from a secret seed
(``LEETGAMING_CHAIN_ADDRESS_SEED``): its key is HMAC-SHA256(seed, chain and player), so the same
address comes back on every node and after any restart, and the keys to sweep the funds can be
derived again offline from the seed alone. The address is stored when first handed out; the
watcher looks payments up there.

**The watcher** (one process at a time per chain, under a lease) follows the chain block by
block (:mod:`wallet.chain`): each accepted block, with the payments it carries to our
addresses, is written in one transaction; a block whose parent is not the last accepted one
rewinds; payments ``confirmations`` deep are credited as deposits (keyed by chain, transaction
and log index: once). What is written is the whole state, so a watcher that dies anywhere
starts again where the last one left off.

**Sends** pay on-chain withdrawals from the platform's hot wallet (``LEETGAMING_CHAIN_HOT_WALLET_
KEY``, never logged). A withdrawal's transaction is signed once, with a nonce allocated under a
row lock, and stored before it is broadcast; after a crash the same signed bytes are broadcast
again, and a transaction can be mined only once, so nothing is paid twice. The withdrawal is
``sent`` once its receipt is ``confirmations`` deep and shows the payment; a reverted
transaction fails it and releases the held money.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from eth_typing import HexStr
from eth_utils.address import is_checksum_address, to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3Exception

from leetgaming.audit import AuditLog
from leetgaming.db import Database, one_of
from wallet import chain as ch

log = logging.getLogger("leetgaming.chain")

BLOCKS_PER_POLL_MAX: Final = 200  # a watcher catching up does this many blocks, then yields
KEPT_BLOCKS_MIN: Final = 128  # accepted headers kept to rewind over (at least 2x confirmations)
PAYMENTS_PER_CREDIT_MAX: Final = 500
REBROADCAST_AFTER_S: Final = 30  # a signed send with no receipt is broadcast again this often
PRIORITY_FEE_DEFAULT_WEI: Final = 1_000_000_000  # when the node cannot suggest a tip

MIGRATIONS: Final = (
    """
    CREATE TABLE chain_addresses (
        chain TEXT NOT NULL,
        address TEXT NOT NULL,
        player TEXT NOT NULL,
        PRIMARY KEY (chain, address)
    );
    CREATE UNIQUE INDEX chain_addresses_by_player ON chain_addresses (chain, player);
    CREATE TABLE chain_blocks (
        chain TEXT NOT NULL,
        number BIGINT NOT NULL,
        hash TEXT NOT NULL,
        parent_hash TEXT NOT NULL,
        PRIMARY KEY (chain, number)
    );
    CREATE TABLE chain_payments (
        key TEXT PRIMARY KEY,
        chain TEXT NOT NULL,
        tx_hash TEXT NOT NULL,
        log_index INTEGER NOT NULL,
        block BIGINT NOT NULL,
        asset TEXT NOT NULL,
        address TEXT NOT NULL,
        player TEXT NOT NULL,
        amount TEXT NOT NULL,
        state TEXT NOT NULL,
        seen_at_s BIGINT NOT NULL
    );
    CREATE INDEX chain_payments_by_state ON chain_payments (chain, state, block);
    CREATE INDEX chain_payments_by_player ON chain_payments (player, state);
    CREATE TABLE chain_nonces (chain TEXT PRIMARY KEY, next_nonce BIGINT NOT NULL);
    CREATE TABLE chain_sends (
        withdrawal TEXT PRIMARY KEY,
        chain TEXT NOT NULL,
        nonce BIGINT NOT NULL,
        tx_hash TEXT NOT NULL,
        raw TEXT NOT NULL,
        broadcast_at_s BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX chain_sends_by_nonce ON chain_sends (chain, nonce)
    """,
)

# chain_payments.state
INCOMING: Final = "incoming"
CREDITED: Final = "credited"
LOST: Final = "lost"  # credited, then removed by a reorg deeper than the confirmations
DUST: Final = "dust"  # below the asset's deposit minimum: recorded, never credited


class ChainSettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ChainSetup:
    config: ch.ChainConfig
    rpc_url: str | None
    start_block: int | None  # None: the head when the watcher first runs


def parse_chains(text: str) -> dict[str, ChainSetup]:
    """The chains of a TOML file (see the module's docstring), or :class:`ChainSettingsError`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChainSettingsError(f"the chains file is not TOML: {exc}") from None
    out = {}
    for name, table in (doc.get("chains") or {}).items():
        if not isinstance(table, dict):
            raise ChainSettingsError(f"chains.{name} is a table")
        known = {
            "chain_id",
            "rpc_url",
            "confirmations",
            "start_block",
            "native_asset",
            "tokens",
            "deposit_min",
        }
        if unknown := set(table) - known:
            raise ChainSettingsError(f"chains.{name}: unknown keys {sorted(unknown)}")
        start = table.get("start_block", "latest")
        tokens = table.get("tokens") or {}
        minimums = table.get("deposit_min") or {}
        if (
            type(table.get("chain_id")) is not int
            or type(table.get("confirmations", 12)) is not int
            or not (start == "latest" or (type(start) is int and start >= 0))
            or not isinstance(tokens, dict)
            or not all(isinstance(v, str) for v in tokens.values())
            or not isinstance(minimums, dict)
        ):
            raise ChainSettingsError(
                f"chains.{name}: chain_id and confirmations are integers, start_block is "
                '"latest" or a block number, tokens maps assets to contract addresses, '
                "deposit_min maps assets to amounts"
            )
        try:
            config = ch.ChainConfig(
                name,
                table["chain_id"],
                table.get("confirmations", 12),
                table.get("native_asset"),
                tuple(ch.Token(asset, address.lower()) for asset, address in tokens.items()),
                tuple(minimums.items()),
            )
        except ch.ChainConfigError as exc:
            raise ChainSettingsError(str(exc)) from None
        rpc = table.get("rpc_url")
        out[name] = ChainSetup(config, rpc, None if start == "latest" else start)
    return out


def load_chains(path: str | None) -> dict[str, ChainSetup]:
    return {} if path is None else parse_chains(Path(path).read_text())


def checksum_ok(text: str) -> bool:
    """A mixed-case address must carry a right EIP-55 checksum (all one case carries none)."""
    body = text[2:]
    return body.lower() == body or body.upper() == body or is_checksum_address(text)


def derive_key(seed: str, chain: str, player: str) -> bytes:
    return hmac.new(
        seed.encode(), f"leetgaming.deposit|{chain}|{player}".encode(), hashlib.sha256
    ).digest()


def _hex(value: Any) -> str:
    """A web3 bytes value (HexBytes) or hex string as lowercase 0x hex."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def _log_json(entry: Mapping[str, Any]) -> dict[str, object]:
    return {
        "address": str(entry.get("address", "")),
        "topics": [_hex(t) for t in entry.get("topics", ())],
        "data": _hex(entry.get("data", "0x")),
        "blockHash": _hex(entry.get("blockHash", "")),
        "transactionHash": _hex(entry.get("transactionHash", "")),
        "logIndex": entry.get("logIndex"),
        "removed": entry.get("removed", False),
    }


class Node:
    """What we ask of an EVM node (JSON-RPC through web3.py), in plain shapes."""

    def __init__(self, w3: AsyncWeb3[Any]) -> None:
        self.w3 = w3

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)

    async def block(self, number: int) -> tuple[ch.Header, list[tuple[str, str | None, int]]]:
        """The header and the (hash, to, value) of its transactions that carry value."""
        b = await self.w3.eth.get_block(number, full_transactions=True)
        header = ch.Header(int(b["number"]), _hex(b["hash"]), _hex(b["parentHash"]))
        moves = []
        for tx in b.get("transactions", ()):
            if isinstance(tx, Mapping) and int(tx.get("value", 0)) > 0:
                to = tx.get("to")
                moves.append((_hex(tx["hash"]), None if to is None else str(to), int(tx["value"])))
        return header, moves

    async def token_logs(self, number: int, contracts: list[str]) -> list[dict[str, object]]:
        if not contracts:
            return []
        logs = await self.w3.eth.get_logs(
            {
                "fromBlock": number,
                "toBlock": number,
                "address": [to_checksum_address(c) for c in contracts],
                "topics": [ch.TRANSFER_TOPIC],
            }
        )
        return [_log_json(entry) for entry in logs]

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            r = await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        return {
            "status": int(r["status"]),
            "block": int(r["blockNumber"]),
            "blockHash": _hex(r["blockHash"]),
            "logs": [_log_json(entry) for entry in r.get("logs", ())],
        }

    async def fees(self) -> tuple[int, int]:
        """(base fee of the latest block, a suggested priority fee), in wei per gas."""
        latest = await self.w3.eth.get_block("latest")
        try:
            tip = int(await self.w3.eth.max_priority_fee)
        except (Web3Exception, ValueError):
            tip = PRIORITY_FEE_DEFAULT_WEI
        return int(latest.get("baseFeePerGas", 0)), tip

    async def pending_nonce(self, address: str) -> int:
        return int(await self.w3.eth.get_transaction_count(to_checksum_address(address), "pending"))

    async def broadcast(self, raw: str) -> None:
        await self.w3.eth.send_raw_transaction(HexStr(raw))

    async def chain_id(self) -> int:
        return int(await self.w3.eth.chain_id)

    async def decimals(self, contract: str) -> int:
        call = {"to": to_checksum_address(contract), "data": "0x313ce567"}  # decimals()
        return int.from_bytes(await self.w3.eth.call(call))  # type: ignore[arg-type]


Credit = Callable[[ch.Payment, str], Awaitable[object]]  # a confirmed payment and its player


class Chains:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        setups: Mapping[str, ChainSetup],
        nodes: Mapping[str, Node],
        address_seed: str | None,
        hot_wallet_key: str | None,
        credit: Credit,
        scales: Callable[[], Awaitable[dict[str, int]]],
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.audit = audit
        self.setups = dict(setups)
        self.nodes = dict(nodes)
        self.seed = address_seed
        self._hot = None if hot_wallet_key is None else Account.from_key(hot_wallet_key)
        self.credit = credit
        self.scales = scales
        self.clock_s = clock_s

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.setups))

    @property
    def hot_address(self) -> str | None:
        return None if self._hot is None else str(self._hot.address)

    def config(self, chain: str) -> ch.ChainConfig | None:
        setup = self.setups.get(chain)
        return None if setup is None else setup.config

    async def start(self) -> None:
        """Migrate, and refuse to run against a node of another chain or a token whose decimals
        are not its asset's scale (amounts would be off by powers of ten)."""
        await self.db.migrate("chain", MIGRATIONS)
        scales = await self.scales()
        for name, setup in list(self.setups.items()):
            node = self.nodes[name]
            if (found := await node.chain_id()) != setup.config.chain_id:
                raise ChainSettingsError(
                    f"chains.{name}: the node serves chain {found}, not {setup.config.chain_id}"
                )
            for asset in setup.config.assets:
                if asset not in scales:
                    raise ChainSettingsError(f"chains.{name}: {asset} is not a known asset")
            for token in setup.config.tokens:
                if (decimals := await node.decimals(token.contract)) != scales[token.asset]:
                    raise ChainSettingsError(
                        f"chains.{name}: {token.asset}'s contract has {decimals} decimals, "
                        f"the asset's scale is {scales[token.asset]}"
                    )
            configured = dict(setup.config.deposit_min)
            minimums = tuple(
                (a, configured.get(a, ch.default_deposit_min(scales[a])))
                for a in setup.config.assets
            )
            config = dataclasses.replace(setup.config, deposit_min=minimums)
            self.setups[name] = dataclasses.replace(setup, config=config)

    # -- deposit addresses ---------------------------------------------------------------------

    async def address(self, chain: str, player: str) -> str:
        """The player's deposit address on ``chain`` (EIP-55), stored on first use."""
        if self.seed is None:
            raise ChainSettingsError("LEETGAMING_CHAIN_ADDRESS_SEED is not set")
        address = str(Account.from_key(derive_key(self.seed, chain, player)).address)
        await self.db.execute(
            "INSERT INTO chain_addresses (chain, address, player) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            chain,
            address.lower(),
            player,
        )
        return address

    async def incoming(self, player: str) -> list[dict[str, object]]:
        """Payments seen to the player's addresses, not yet deep enough to be credited."""
        rows = await self.db.fetch(
            "SELECT chain, tx_hash, log_index, block, asset, amount FROM chain_payments "
            "WHERE player = ? AND state = ? ORDER BY block LIMIT 100",
            player,
            INCOMING,
        )
        out: list[dict[str, object]] = []
        for r in rows:
            setup = self.setups.get(r[0])
            out.append(
                {
                    "chain": r[0],
                    "tx_hash": r[1],
                    "log_index": int(r[2]),
                    "block": int(r[3]),
                    "asset": r[4],
                    "amount": r[5],
                    "confirmations_needed": setup.config.confirmations if setup else None,
                }
            )
        return out

    # -- the watcher ---------------------------------------------------------------------------

    async def _tip(self, chain: str) -> ch.Header | None:
        row = await self.db.fetchone(
            "SELECT number, hash, parent_hash FROM chain_blocks WHERE chain = ? "
            "ORDER BY number DESC LIMIT 1",
            chain,
        )
        return None if row is None else ch.Header(int(row[0]), row[1], row[2])

    async def poll(self, chain: str) -> int:
        """Follow ``chain`` up to its head (at most BLOCKS_PER_POLL_MAX blocks), then credit
        what is confirmed. The number of blocks accepted."""
        setup, node = self.setups[chain], self.nodes[chain]
        head = await node.head()
        accepted = 0
        for _ in range(BLOCKS_PER_POLL_MAX):
            tip = await self._tip(chain)
            number = (
                tip.number + 1
                if tip
                else (head if setup.start_block is None else setup.start_block)
            )
            if number > head:
                # nothing new; but a reorg to a chain no longer than ours shows only here
                if tip is not None and (
                    tip.number > head or (await node.block(tip.number))[0].hash != tip.hash
                ):
                    await self._rewind(chain, tip)
                    continue
                break
            header, moves = await node.block(number)
            if not ch.follows(tip, header):
                assert tip is not None
                await self._rewind(chain, tip)
                continue
            payments = ch.token_payments(
                setup.config,
                header,
                await node.token_logs(number, [t.contract for t in setup.config.tokens]),
            )
            for tx_hash, to, value in moves:
                native = ch.native_payment(setup.config, header, tx_hash, to, value)
                if native is not None:
                    payments.append(native)
            if not await self._accept(chain, header, payments, node):
                break  # the chain moved under us: the next poll sees it settled
            accepted += 1
        tip = await self._tip(chain)
        if tip is not None:
            await self._credit_due(chain, tip.number, setup.config.confirmations)
            await self.db.execute(
                "DELETE FROM chain_blocks WHERE chain = ? AND number < ?",
                chain,
                tip.number - max(KEPT_BLOCKS_MIN, 2 * setup.config.confirmations),
            )
        return accepted

    async def _accept(
        self, chain: str, header: ch.Header, payments: list[ch.Payment], node: Node
    ) -> bool:
        players: dict[str, str] = {}
        if payments:
            addresses = sorted({p.to for p in payments})
            in_list, args = one_of(self.db.dialect, addresses)
            players = {
                r[0]: r[1]
                for r in await self.db.fetch(
                    f"SELECT address, player FROM chain_addresses WHERE chain = ? "  # nosec B608
                    f"AND address {in_list}",
                    chain,
                    *args,
                )
            }
        ours = [p for p in payments if p.to in players]
        config = self.setups[chain].config
        for p in [p for p in ours if p.log_index == ch.NATIVE_LOG_INDEX]:
            receipt = await node.receipt(p.tx_hash)
            if receipt is None or receipt["blockHash"] != header.hash:
                return False
            if receipt["status"] != 1:
                ours.remove(p)  # a reverted transaction moved no value
        now = int(self.clock_s())
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO chain_blocks (chain, number, hash, parent_hash) VALUES (?, ?, ?, ?)",
                chain,
                header.number,
                header.hash,
                header.parent_hash,
            )
            for p in ours:
                await tx.execute(
                    "INSERT INTO chain_payments (key, chain, tx_hash, log_index, block, asset, "
                    "address, player, amount, state, seen_at_s) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    p.key,
                    chain,
                    p.tx_hash,
                    p.log_index,
                    p.block,
                    p.asset,
                    p.to,
                    players[p.to],
                    str(p.amount),
                    DUST if ch.is_dust(config, p) else INCOMING,
                    now,
                )
        if dust := sum(ch.is_dust(config, p) for p in ours):
            log.info("dust payments ignored", extra={"chain": chain, "count": dust})
        if ours:
            log.info(
                "payments seen", extra={"chain": chain, "block": header.number, "count": len(ours)}
            )
        return True

    async def _rewind(self, chain: str, tip: ch.Header) -> None:
        rows = await self.db.fetch(
            "SELECT tx_hash, log_index, block, asset, address, amount, state, key "
            "FROM chain_payments WHERE chain = ? AND block = ?",
            chain,
            tip.number,
        )
        seen = [
            (ch.Payment(chain, r[0], int(r[1]), int(r[2]), r[3], r[4], int(r[5])), r[6] == CREDITED)
            for r in rows
        ]
        undo = ch.rewind(tip, seen)
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM chain_blocks WHERE chain = ? AND number = ?", chain, tip.number
            )
            for p in undo.forget:
                await tx.execute(
                    "DELETE FROM chain_payments WHERE key = ? AND state = ?", p.key, INCOMING
                )
            for p in undo.lost:
                await tx.execute("UPDATE chain_payments SET state = ? WHERE key = ?", LOST, p.key)
        log.warning("chain reorganised", extra={"chain": chain, "block": tip.number})
        for p in undo.lost:
            log.critical(
                "a credited deposit was removed by a reorg deeper than the confirmations",
                extra={
                    "chain": chain,
                    "block": p.block,
                    "deposit": ch.deposit_id(chain, p.tx_hash, p.log_index),
                },
            )
            await self.audit.append(
                None,
                "chain",
                "deposit.reorg_lost",
                ch.deposit_id(chain, p.tx_hash, p.log_index),
                {"chain": chain, "block": p.block, "tx_hash": p.tx_hash, "amount": str(p.amount)},
            )

    async def _credit_due(self, chain: str, tip: int, confirmations: int) -> None:
        rows = await self.db.fetch(
            "SELECT tx_hash, log_index, block, asset, address, amount, player FROM chain_payments "
            "WHERE chain = ? AND state = ? AND block <= ? ORDER BY block LIMIT ?",
            chain,
            INCOMING,
            tip,
            PAYMENTS_PER_CREDIT_MAX,
        )
        players = {}
        incoming = []
        for r in rows:
            payment = ch.Payment(chain, r[0], int(r[1]), int(r[2]), r[3], r[4], int(r[5]))
            players[payment.key] = r[6]
            incoming.append(payment)
        for payment in ch.due(incoming, tip, confirmations):
            await self.credit(payment, players[payment.key])
            await self.db.execute(
                "UPDATE chain_payments SET state = ? WHERE key = ? AND state = ?",
                CREDITED,
                payment.key,
                INCOMING,
            )

    # -- sends ---------------------------------------------------------------------------------

    def destination(self, chain: str, asset: str, text: object) -> str:
        """A withdrawal's destination on ``chain``, EIP-55, or ValueError saying why not."""
        config = self.config(chain)
        if config is None:
            raise ValueError(f"no chain {chain!r}")
        if asset not in config.assets:
            raise ValueError(f"{chain} carries {', '.join(config.assets)}, not {asset}")
        address = ch.parse_address(text)
        if address is None or not checksum_ok(str(text)):
            raise ValueError("destination is a 0x address (with a right checksum if mixed-case)")
        if int(address, 16) == 0:
            raise ValueError("the zero address burns what it is sent")
        return to_checksum_address(address)

    async def send(self, withdrawal: str, chain: str, asset: str, to: str, amount: int) -> str:
        """Sign (once) and broadcast the transaction paying a withdrawal; its hash."""
        if self._hot is None:
            raise ChainSettingsError("LEETGAMING_CHAIN_HOT_WALLET_KEY is not set")
        setup, node = self.setups[chain], self.nodes[chain]
        row = await self.db.fetchone(
            "SELECT tx_hash, raw, broadcast_at_s FROM chain_sends WHERE withdrawal = ?", withdrawal
        )
        if row is None:
            base_fee, tip_fee = await node.fees()
            chain_nonce = await node.pending_nonce(self._hot.address)
            async with self.db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO chain_nonces (chain, next_nonce) VALUES (?, 0) "
                    "ON CONFLICT (chain) DO NOTHING",
                    chain,
                )
                await tx.execute(
                    "UPDATE chain_nonces SET next_nonce = next_nonce WHERE chain = ?", chain
                )
                again = await tx.fetchone(
                    "SELECT tx_hash, raw, broadcast_at_s FROM chain_sends WHERE withdrawal = ?",
                    withdrawal,
                )
                if again is None:
                    stored = await tx.fetchone(
                        "SELECT next_nonce FROM chain_nonces WHERE chain = ?", chain
                    )
                    nonce = max(int(stored[0]) if stored else 0, chain_nonce)
                    plan = ch.plan_send(setup.config, asset, to, amount, nonce, base_fee, tip_fee)
                    unsigned = plan.as_dict() | {"to": to_checksum_address(plan.to)}
                    signed = self._hot.sign_transaction(unsigned)
                    tx_hash, raw = _hex(signed.hash), _hex(signed.raw_transaction)
                    await tx.execute(
                        "INSERT INTO chain_sends (withdrawal, chain, nonce, tx_hash, raw, "
                        "broadcast_at_s) VALUES (?, ?, ?, ?, ?, 0)",
                        withdrawal,
                        chain,
                        nonce,
                        tx_hash,
                        raw,
                    )
                    await tx.execute(
                        "UPDATE chain_nonces SET next_nonce = ? WHERE chain = ?", nonce + 1, chain
                    )
                    row = (tx_hash, raw, 0)
                else:
                    row = again
        tx_hash, raw, broadcast_at = str(row[0]), str(row[1]), int(row[2])
        now = int(self.clock_s())
        if now - broadcast_at >= REBROADCAST_AFTER_S and await node.receipt(tx_hash) is None:
            try:
                await node.broadcast(raw)
            except (Web3Exception, ValueError) as exc:
                # "already known", or a node that refuses for now (the hot wallet is short):
                # the held money waits and the same bytes go out again later
                log.warning(
                    "a send was not broadcast",
                    extra={"withdrawal": withdrawal, "error": str(exc)[:200]},
                )
            await self.db.execute(
                "UPDATE chain_sends SET broadcast_at_s = ? WHERE withdrawal = ?", now, withdrawal
            )
        return tx_hash

    async def outcome(
        self, chain: str, asset: str, to: str, amount: int, tx_hash: str
    ) -> bool | None:
        """Whether a send paid (True), reverted (False), or is not yet confirmed (None)."""
        setup, node = self.setups[chain], self.nodes[chain]
        receipt = await node.receipt(tx_hash)
        if receipt is None:
            return None
        if not ch.confirmed(receipt["block"], await node.head(), setup.config.confirmations):
            return None
        if receipt["status"] != 1:
            return False
        return ch.receipt_pays(
            setup.config, asset, to, amount, receipt["blockHash"], receipt["logs"]
        )
