"""A crash at every step of crediting a deposit, card or on-chain, is finished on recovery and
credits it once: a worker process (:mod:`.deposit_crash_worker`) is SIGKILLed after each of
its writes in turn; a fresh process then gets what a restarted app gets (Stripe delivers the
event again, since it got no answer; the chain watcher polls again), and the ledger holds one
transfer per effect (by its derived id), the balances are right, the ledger reconciles, the
deposit has one audit entry, and delivering or polling yet again changes nothing.

What is written, in order (each step a separate write, so a boundary between any two):

- a card deposit's ``payment_intent.succeeded`` (:meth:`leetgaming.deposits.Deposits.on_stripe`):
  the ledger accounts; the linked credit and fee transfers; the deposit row (``succeeded``, by
  compare-and-set) with its audit entry; the player's ``wallet.deposit`` publication; the
  event id (a later delivery is a duplicate);
- a confirmed chain payment (:meth:`leetgaming.chain.Chains.poll`, crediting through
  :meth:`~leetgaming.deposits.Deposits.credit_payment`): the deposit row (``pending``); the
  ledger accounts; the transfers; the deposit row (``succeeded``) with its audit entry; the
  publication; the payment marked ``credited``; old block headers pruned.

The chain is a real EVM (py-evm, as ``tests/evm.py``) served over JSON-RPC on 127.0.0.1 from
this process, so the watcher reaches it over HTTP as the app does its node, and the chain
outlives the killed process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.middleware import combine_middleware
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.middleware import (
    default_transaction_fields_middleware,
    ethereum_tester_middleware,
)

from ledger import derive_id, reconcile
from wallet import accounts
from wallet import chain as ch
from wallet import deposits as dp
from wallet.fees import FeeSchedule

from ..conftest import _pg_execute, _with_database
from ..evm import artifact
from .deposit_crash_worker import SK, Parts, parts_on
from .test_deposits import pay, signed, stripe_event

ROOT = Path(__file__).resolve().parents[2]
CARD = 10_000  # $100.00: $2.50 fee at 250 bps
CARD_FEE = 250
CHAIN = 10_000_000  # 10 USDC: 0.25 USDC fee
CHAIN_FEE = 250_000
CONFIRMATIONS = 3

CARD_STEPS = [
    "ledger.create_accounts",
    "ledger.create_transfers",
    "commit[UPDATE deposits, INSERT audit_entries]",
    "publish",
    "INSERT stripe_events",
]
CHAIN_STEPS = [
    "INSERT deposits",
    "ledger.create_accounts",
    "ledger.create_transfers",
    "commit[UPDATE deposits, INSERT audit_entries]",
    "publish",
    "UPDATE chain_payments",
    "DELETE chain_blocks",
]


def kills(steps: list[str], on_postgres: set[int]) -> list[Any]:
    """(backend, kill_after) for a kill before the first write and after each, and a run that
    survives (its steps are all there are): all on SQLite, and ``on_postgres`` there too."""
    after = range(len(steps) + 2)
    return [("sqlite", k) for k in after] + [("postgresql", k) for k in sorted(on_postgres)]


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path, postgres_server_url: str) -> Iterator[str]:
    """The app's database (and the ledger's, beside it): a SQLite file, or a PostgreSQL
    database of the test's own, so that the whole ledger is this test's."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/app.sqlite3"
        return
    name = f"lgtest_crash_{secrets.token_hex(4)}"
    asyncio.run(_pg_execute(postgres_server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(postgres_server_url, name)
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        asyncio.run(_pg_execute(postgres_server_url, drop))


def run_worker(*args: str) -> tuple[list[str], str]:
    """Run the worker until it dies (or survives); the steps it printed and its output."""
    worker = subprocess.run(
        [sys.executable, "-m", "tests.leetgaming.deposit_crash_worker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = worker.stdout
    assert "Traceback" not in worker.stderr, worker.stderr
    assert worker.returncode in (0, -9), (worker.returncode, out, worker.stderr)
    assert (worker.returncode == 0) == ("survived" in out), (out, worker.stderr)
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("step ")], out


async def credited_once(parts: Parts, player: str, deposit_id: str, amount: int, fee: int) -> None:
    """The deposit is credited, once: its two transfers are the ledger's only ones, the wallet
    holds the net, the revenue the fee, the row says so, one audit entry, and it reconciles."""
    row = await parts.deposits.get(deposit_id)
    assert row is not None
    assert (row.deposit.state, row.deposit.amount, row.deposit.fee) == (
        dp.State.SUCCEEDED,
        amount,
        fee,
    )
    asset = row.deposit.asset
    transfers = [t async for t in parts.store.scan_transfers()]
    wallet = accounts.user(player, asset).id
    assert sorted(
        (t.id, t.amount, t.debit_account_id, t.credit_account_id) for t in transfers
    ) == sorted(
        [
            (
                derive_id("deposit.credit", deposit_id),
                amount,
                accounts.settlement(asset).id,
                wallet,
            ),
            (derive_id("deposit.fee", deposit_id), fee, wallet, accounts.revenue(asset).id),
        ]
    )
    [mine, revenue] = await parts.ledger.lookup_accounts([wallet, accounts.revenue(asset).id])
    assert (mine.balance.posted, mine.balance.available) == (amount - fee, amount - fee)
    assert revenue.balance.posted == fee
    entries = await parts.db.fetch(
        "SELECT action FROM audit_entries WHERE subject = ? AND action = ?",
        deposit_id,
        "deposit.credit",
    )
    assert len(entries) == 1, entries
    report = await reconcile(parts.store)
    assert report.ok, report.problems


# -- card deposits ----------------------------------------------------------------------------


def delivery(tmp_path: Path, event: dict[str, Any]) -> str:
    """The file the worker reads ``event``'s signed webhook body from (its signature beside)."""
    event_file = tmp_path / "event.json"
    payload, signature = signed(event)
    event_file.write_bytes(payload)
    Path(f"{event_file}.sig").write_text(signature)
    return str(event_file)


def card_deposit(url: str, localstripe: str, player: str) -> tuple[str, dict[str, Any]]:
    """A card deposit asked for and paid (through localstripe); its id and the
    ``payment_intent.succeeded`` event Stripe sends about it."""

    async def create() -> tuple[str, str]:
        async with parts_on(url, localstripe) as parts:
            row, _ = await parts.deposits.create_card(player, "crash", "USD", CARD)
            assert row.provider_ref is not None
            return row.deposit.id, row.provider_ref

    deposit_id, intent = asyncio.run(create())
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    asyncio.run(pay(sdk, intent, "4242424242424242"))
    paid = sdk.v1.payment_intents.retrieve(intent).to_dict()
    assert paid["status"] == "succeeded", paid
    return deposit_id, stripe_event("payment_intent.succeeded", paid)


# on PostgreSQL too: between the ledger and the row, and between the row and the event id
@pytest.mark.parametrize(("url", "kill_after"), kills(CARD_STEPS, {2, 3}), indirect=["url"])
def test_a_kill_anywhere_in_crediting_a_card_deposit_credits_it_once(
    tmp_path: Path, url: str, localstripe: str, kill_after: int
) -> None:
    player = f"k{secrets.token_hex(4)}"
    deposit_id, event = card_deposit(url, localstripe, player)
    event_file = delivery(tmp_path, event)
    steps, out = run_worker("card", url, localstripe, event_file, str(kill_after))
    assert steps == CARD_STEPS[:kill_after], out
    assert ("survived" in out) == (kill_after > len(CARD_STEPS)), out

    async def recover() -> None:
        async with parts_on(url, localstripe) as parts:
            # Stripe had no answer: it delivers the same event again (signed anew)
            again = await parts.deposits.on_stripe(*signed(event))
            if "INSERT stripe_events" in steps:
                assert again == "duplicate"
            elif any(s.startswith("commit[UPDATE deposits") for s in steps):
                assert again == "already_settled"
            else:
                assert again == "credited"
            await credited_once(parts, player, deposit_id, CARD, CARD_FEE)
            # and again, and as another event about the same payment: nothing more
            assert await parts.deposits.on_stripe(*signed(event)) == "duplicate"
            other = event | {"id": f"evt_{secrets.token_hex(8)}"}
            assert await parts.deposits.on_stripe(*signed(other)) == "already_settled"
            await credited_once(parts, player, deposit_id, CARD, CARD_FEE)

    asyncio.run(recover())


# the amount received and its fee stored; then the accounts and the transfers posted too
@pytest.mark.parametrize("kill_after", [1, 3])
def test_a_card_credit_retried_after_the_fee_changed_posts_what_it_posted_before(
    tmp_path: Path, localstripe: str, kill_after: int
) -> None:
    """Stripe received less than was asked (``amount_received``: the fee is computed on what
    arrived); the process dies, and restarts with another deposit fee (a deploy; or the
    player took Pro meanwhile). The retry credits what arrived at the fee first computed,
    which the transfers already posted carry, instead of failing on every delivery."""
    url = f"sqlite:///{tmp_path}/app.sqlite3"
    player = f"k{secrets.token_hex(4)}"
    deposit_id, event = card_deposit(url, localstripe, player)
    event["data"]["object"]["amount_received"] = 8_000  # $80 of $100 captured
    event_file = delivery(tmp_path, event)
    steps, out = run_worker("card", url, localstripe, event_file, str(kill_after))
    assert steps == ["UPDATE deposits", *CARD_STEPS][:kill_after], out

    async def recover() -> None:
        async with parts_on(url, localstripe, fees=FeeSchedule(deposit_bps=100)) as parts:
            assert await parts.deposits.on_stripe(*signed(event)) == "credited"
            await credited_once(parts, player, deposit_id, 8_000, 200)  # 250 bps of $80

    asyncio.run(recover())


# -- on-chain deposits ------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """An eth-tester result as JSON-RPC writes it (quantities and bytes as 0x hex)."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return hex(value)
    return value


class ServedEvm:
    """py-evm (through eth-tester) answering JSON-RPC over HTTP on 127.0.0.1, as a node does,
    from a thread of this process: the processes that watch it come and go, the chain stays.
    This process changes the chain through :attr:`w3` (holding :attr:`lock`)."""

    def __init__(self) -> None:
        self.tester = EthereumTester(PyEVMBackend())
        provider = EthereumTesterProvider(self.tester)
        self.w3 = Web3(provider)
        self.lock = threading.Lock()
        request = combine_middleware(
            middleware=(default_transaction_fields_middleware, ethereum_tester_middleware),
            w3=self.w3,
            provider_request_fn=provider.make_request,
        )
        lock = self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    answer = dict(request(body["method"], body.get("params", [])))
                answer["id"] = body.get("id")
                if "result" in answer:
                    answer["result"] = _json(answer["result"])
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.funder = self.tester.get_accounts()[0]
        with self.lock:
            art = artifact()
            factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
            tx = factory.constructor("Test USDC", "USDC", 6).transact({"from": self.funder})
            address = self.w3.eth.get_transaction_receipt(tx)["contractAddress"]
            self.usdc = self.w3.eth.contract(address=address, abi=art["abi"])
            minted = self.usdc.functions.mint(self.funder, 10**15).transact({"from": self.funder})
            self.w3.eth.get_transaction_receipt(minted)

    def chain_id(self) -> int:
        with self.lock:
            return int(self.w3.eth.chain_id)

    def head(self) -> int:
        with self.lock:
            return int(self.w3.eth.block_number)

    def pay_usdc(self, to: str, amount: int) -> tuple[str, int]:
        """A USDC transfer to ``to``, mined; its transaction hash and log index."""
        with self.lock:
            tx = self.usdc.functions.transfer(Web3.to_checksum_address(to), amount).transact(
                {"from": self.funder}
            )
            receipt = self.w3.eth.get_transaction_receipt(tx)
            return "0x" + bytes(tx).hex(), int(receipt["logs"][0]["logIndex"])

    def mine(self, blocks: int) -> None:
        with self.lock:
            self.tester.mine_blocks(blocks)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def evm() -> Iterator[ServedEvm]:
    served = ServedEvm()
    try:
        yield served
    finally:
        served.close()


def chain_payment(tmp_path: Path, url: str, evm: ServedEvm) -> tuple[str, str, str, str]:
    """A chain of the test's own on ``evm`` (its own name, watched from the next block on), a
    player's deposit address on it, and a USDC payment there, confirmed: the chains file, the
    chain's name, the player, and the deposit the payment makes."""
    name, player = f"c{secrets.token_hex(3)}", f"p{secrets.token_hex(4)}"
    path = tmp_path / "chains.toml"
    path.write_text(
        f"""
[chains.{name}]
chain_id = {evm.chain_id()}
rpc_url = "{evm.url}"
confirmations = {CONFIRMATIONS}
start_block = {evm.head() + 1}
[chains.{name}.tokens]
USDC = "{str(evm.usdc.address).lower()}"
"""
    )

    async def address() -> str:
        async with parts_on(url, chains_file=str(path)) as parts:
            return str(await parts.chains.address(name, player))

    to = asyncio.run(address())
    tx, log_index = evm.pay_usdc(to, CHAIN)
    evm.mine(CONFIRMATIONS - 1)  # the payment's block and two more: deep enough
    return str(path), name, player, ch.deposit_id(name, tx, log_index)


# on PostgreSQL too: between the ledger and the row, and between the credit and the payment's mark
@pytest.mark.parametrize(("url", "kill_after"), kills(CHAIN_STEPS, {3, 5}), indirect=["url"])
def test_a_kill_anywhere_in_crediting_a_chain_payment_credits_it_once(
    tmp_path: Path, url: str, evm: ServedEvm, kill_after: int
) -> None:
    chains_file, name, player, deposit_id = chain_payment(tmp_path, url, evm)
    steps, out = run_worker("chain", url, chains_file, str(kill_after))
    assert steps == CHAIN_STEPS[:kill_after], out
    assert ("survived" in out) == (kill_after > len(CHAIN_STEPS)), out

    async def recover() -> None:
        async with parts_on(url, chains_file=chains_file) as parts:
            await parts.chains.poll(name)  # the watcher's next round, on the next process
            await credited_once(parts, player, deposit_id, CHAIN, CHAIN_FEE)
            [(state,)] = await parts.db.fetch(
                "SELECT state FROM chain_payments WHERE chain = ?", name
            )
            assert state == "credited"
            # and again, after more blocks: nothing more
            await parts.chains.poll(name)
            evm.mine(1)
            await parts.chains.poll(name)
            await credited_once(parts, player, deposit_id, CHAIN, CHAIN_FEE)

    asyncio.run(recover())
