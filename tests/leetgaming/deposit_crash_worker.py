"""A process that credits one deposit and is SIGKILLed after its ``kill_after``-th write (0:
before the first), so that a fresh process (the test's) can find what it left and finish it:

    python -m tests.leetgaming.deposit_crash_worker card DATABASE_URL STRIPE_BASE EVENT_FILE N
    python -m tests.leetgaming.deposit_crash_worker chain DATABASE_URL CHAINS_FILE N

``card``: one Stripe webhook delivery (the signed payload in EVENT_FILE, a ``.sig`` file beside
it holding its ``Stripe-Signature``) handled as the app's webhook route handles it. ``chain``:
one poll of the chain watcher (its node reached over JSON-RPC at the chains file's
``rpc_url``), which accepts the blocks and credits what is confirmed; the writes counted are
those of crediting. A write is a ledger request, a statement outside a transaction, a
transaction's commit, or a publication; ``step <name>`` is printed after each. The process
prints ``survived`` when there were fewer than N.

The parts (database, ledger, audit log, deposits, chains) are the app's own classes, wired as
:mod:`leetgaming.app` wires them; the test opens the same parts to recover.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import Asset, Ledger, LedgerStore, open_store
from leetgaming.audit import AuditLog
from leetgaming.db import Conn, Database, open_database
from leetgaming.deposits import Deposits
from wallet.fees import FeeSchedule
from wallet.stripe_gateway import StripeGateway

SK = "sk_test_leetgaming"  # as tests/leetgaming/test_deposits.py
WHSEC = "whsec_leetgaming_test"
SEED = "s" * 40


@dataclass
class Parts:
    db: Database
    store: LedgerStore
    ledger: Ledger
    audit: AuditLog
    deposits: Deposits
    chains: Any = None  # leetgaming.chain.Chains (web3 is imported only where it is used)
    published: list[tuple[str, Any]] = field(default_factory=list)


async def open_parts(
    url: str,
    stripe_base: str | None = None,
    chains_file: str | None = None,
    fees: FeeSchedule | None = None,
) -> Parts:
    db = await open_database(url)
    store = await open_store(url)
    await store.migrate()
    ledger = Ledger(store)
    ledger.start()
    audit = AuditLog(db, time.time_ns)
    await audit.start()
    published: list[tuple[str, Any]] = []

    async def publish(channel: str, body: object) -> int:
        published.append((channel, body))
        return len(published)

    async def assets() -> dict[str, Asset]:
        return await store.assets()

    gateway = None if stripe_base is None else StripeGateway(SK, WHSEC, stripe_base)
    deposits = Deposits(db, ledger, audit, gateway, fees or FeeSchedule(), publish, assets)
    await deposits.start()
    parts = Parts(db, store, ledger, audit, deposits, published=published)
    if chains_file is not None:
        from web3 import AsyncHTTPProvider, AsyncWeb3

        from leetgaming.chain import Chains, Node, load_chains

        setups = load_chains(chains_file)
        nodes = {
            name: Node(AsyncWeb3(AsyncHTTPProvider(setup.rpc_url)))
            for name, setup in setups.items()
        }

        async def scales() -> dict[str, int]:
            return {code: asset.scale for code, asset in (await assets()).items()}

        parts.chains = Chains(db, audit, setups, nodes, SEED, None, deposits.credit_payment, scales)
        await parts.chains.start()
    return parts


async def close_parts(parts: Parts) -> None:
    if parts.deposits.gateway is not None:
        await parts.deposits.gateway.close()
    if parts.chains is not None:
        for node in parts.chains.nodes.values():
            await node.w3.provider.disconnect()
    await parts.ledger.close()
    await parts.store.close()
    await parts.db.close()


@asynccontextmanager
async def parts_on(
    url: str,
    stripe_base: str | None = None,
    chains_file: str | None = None,
    fees: FeeSchedule | None = None,
) -> AsyncIterator[Parts]:
    parts = await open_parts(url, stripe_base, chains_file, fees)
    try:
        yield parts
    finally:
        await close_parts(parts)


def _what(sql: str) -> str:
    """A statement's name in the steps: its verb and table (``UPDATE deposits``)."""
    words = sql.split()
    verb = words[0].upper()
    table = words[2] if verb in ("INSERT", "DELETE") else words[1]
    return f"{verb} {table}"


class Steps:
    """Counts the writes and dies (SIGKILL: nothing runs after it) after the ``kill_after``-th."""

    def __init__(self, kill_after: int) -> None:
        self.kill_after = kill_after
        self.done = 0
        self.armed = False

    def arm(self) -> None:
        """From here on the writes count."""
        self.armed = True
        if self.kill_after == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    def step(self, name: str) -> None:
        if not self.armed:
            return
        self.done += 1
        print(f"step {name}", flush=True)
        if self.done >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def watch(self, parts: Parts) -> None:
        """Wrap every way the parts write (instance attributes over the real methods)."""
        ledger, db = parts.ledger, parts.db
        real_accounts, real_transfers = ledger.create_accounts, ledger.create_transfers
        real_execute, real_transaction = db.execute, db.transaction
        real_publish = parts.deposits.publish

        async def create_accounts(accounts: Sequence[Any]) -> Any:
            done = await real_accounts(accounts)
            self.step("ledger.create_accounts")
            return done

        async def create_transfers(transfers: Sequence[Any]) -> Any:
            done = await real_transfers(transfers)
            self.step("ledger.create_transfers")
            return done

        async def execute(sql: str, *args: Any) -> int:
            changed = await real_execute(sql, *args)
            self.step(_what(sql))
            return changed

        @asynccontextmanager
        async def transaction() -> AsyncIterator[Conn]:
            statements: list[str] = []
            async with real_transaction() as tx:
                yield _Recording(tx, statements)
            self.step(f"commit[{', '.join(statements)}]")

        async def publish(channel: str, body: object) -> object:
            done = await real_publish(channel, body)
            self.step("publish")
            return done

        ledger.create_accounts = create_accounts  # type: ignore[method-assign]
        ledger.create_transfers = create_transfers  # type: ignore[method-assign]
        db.execute = execute  # type: ignore[method-assign]
        db.transaction = transaction  # type: ignore[method-assign]
        parts.deposits.publish = publish


class _Recording:
    """A transaction's connection that notes the statements run in it."""

    def __init__(self, tx: Conn, statements: list[str]) -> None:
        self._tx = tx
        self._statements = statements

    async def execute(self, sql: str, *args: Any) -> int:
        self._statements.append(_what(sql))
        return await self._tx.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._statements.append(_what(sql))
        await self._tx.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await self._tx.fetch(sql, *args)

    async def fetchone(self, sql: str, *args: Any) -> Any:
        return await self._tx.fetchone(sql, *args)


def _armed_at_entry(
    steps: Steps, real: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any) -> Any:
        steps.arm()
        return await real(*args)

    return run


async def card(url: str, stripe_base: str, event_file: str, kill_after: int) -> None:
    payload = Path(event_file).read_bytes()
    signature = Path(event_file + ".sig").read_text()
    async with parts_on(url, stripe_base) as parts:
        steps = Steps(kill_after)
        steps.watch(parts)
        steps.arm()  # the delivery is in: it verified, nothing is written yet
        print(f"outcome {await parts.deposits.on_stripe(payload, signature)}", flush=True)
        print("survived", flush=True)


async def chain(url: str, chains_file: str, kill_after: int) -> None:
    async with parts_on(url, chains_file=chains_file) as parts:
        chains = parts.chains
        steps = Steps(kill_after)
        steps.watch(parts)
        # the blocks are accepted (their own transactions, not counted); the crediting counts
        chains._credit_due = _armed_at_entry(steps, chains._credit_due)
        for name in chains.names:
            print(f"accepted {await chains.poll(name)}", flush=True)
        print("survived", flush=True)


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "card":
        asyncio.run(card(args[0], args[1], args[2], int(args[3])))
    elif kind == "chain":
        asyncio.run(chain(args[0], args[1], int(args[2])))
    else:
        raise SystemExit(__doc__)
