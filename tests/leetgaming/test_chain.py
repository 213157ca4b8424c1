"""On-chain money end to end: the real app (embedded and distributed) watching a real EVM
(py-evm) through web3.py, with the committed ERC-20 contract standing in for USDC and USDT.

Deposit addresses per player and chain; ERC-20 and native payments incoming until confirmed,
then credited minus the deposit fee, once, across restarts and a reorg; withdrawals paid by
the hot wallet after confirmations, a reverted send released, a send whose broadcast failed
sent again with the same signed bytes, and bad destinations refused without holding money."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from ledger import reconcile
from leetgaming.chain import derive_key
from wallet import chain as ch

from ..evm import HOT_KEY, Evm
from .test_play import serving_play
from .test_wallet_api import QUEUES, token

SEED = "s" * 40
CONFIRMATIONS = 3


async def chains_file(tmp_path: Path, evm: Evm, chain: str) -> dict[str, str]:
    """Settings for ``chain`` on ``evm``: a name of its own per test, since every fresh EVM
    starts from the same genesis and the distributed tests share one database."""
    usdc = await evm.deploy("USDC", 6)
    usdt = await evm.deploy("USDT", 6)
    path = tmp_path / "chains.toml"
    path.write_text(
        f"""
[chains.{chain}]
chain_id = {await evm.w3.eth.chain_id}
confirmations = {CONFIRMATIONS}
start_block = 0
native_asset = "ETH"
[chains.{chain}.tokens]
USDC = "{usdc}"
USDT = "{usdt}"
"""
    )
    return {
        "chains_file": str(path),
        "chain_address_seed": SEED,
        "chain_hot_wallet_key": HOT_KEY,
        "chain_poll_interval_ms": "100",
        "rest_requests_per_min": "100000",
    }


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def available(http: httpx.AsyncClient, me: str, asset: str) -> int:
    body = (await http.get("/v1/wallet", headers=token(me))).json()
    found = next((b for b in body["balances"] if b["asset"] == asset), None)
    return 0 if found is None else int(found["available"])


async def address_of(http: httpx.AsyncClient, me: str, chain: str) -> dict[str, Any]:
    answer = await http.get(f"/v1/deposit-addresses/{chain}", headers=token(me))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def credited(http: httpx.AsyncClient, me: str, asset: str, want: int) -> None:
    async def check() -> bool:
        return await available(http, me, asset) == want

    await eventually(check, f"{me}'s {asset} to be {want}")


async def test_deposit_addresses_confirmations_reorgs_and_restarts(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    evm, chain = Evm(), f"eth{secrets.token_hex(3)}"
    settings = await chains_file(tmp_path, evm, chain)
    me, other = f"c{secrets.token_hex(4)}", f"c{secrets.token_hex(4)}"
    options = {"chain_nodes": {chain: evm.w3}}
    async with serving_play(tmp_path, backends, QUEUES, options, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            mine = await address_of(http, me, chain)
            assert mine["address"] == (await address_of(http, me, chain))["address"]  # stable
            assert mine["address"] != (await address_of(http, other, chain))["address"]
            assert (mine["chain"], mine["confirmations"], mine["assets"]) == (
                chain,
                CONFIRMATIONS,
                ["ETH", "USDC", "USDT"],
            )
            assert mine["address"] == Account.from_key(derive_key(SEED, chain, me)).address
            assert (
                await http.get("/v1/deposit-addresses/bitcoin", headers=token(me))
            ).status_code == 404
            assert (await http.get("/v1/deposit-addresses/ethereum")).status_code == 401
            to = mine["address"]

            # an ERC-20 payment: incoming at once, credited (minus 2.5%) once 3 blocks deep
            alice = await evm.wallet()
            await evm.mint("USDC", alice.address, 50_000_000)
            tx = await evm.pay_token(alice, "USDC", to, 10_000_000)

            async def incoming() -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = (await address_of(http, me, chain))["incoming"]
                return rows

            [seen] = await eventually(incoming, "the payment to be seen")
            assert (seen["asset"], seen["amount"], seen["tx_hash"]) == ("USDC", "10000000", tx)
            await asyncio.sleep(0.5)
            assert await available(http, me, "USDC") == 0  # 1 block deep of 3
            evm.mine(CONFIRMATIONS - 1)
            await credited(http, me, "USDC", 9_750_000)

            async def cleared() -> bool:
                return await incoming() == []

            # (the incoming row clears just after the credit, not in the same step)
            assert await eventually(cleared, "the credited payment to leave incoming")
            deposit = ch.deposit_id(chain, tx, seen["log_index"])
            row = (await http.get(f"/v1/deposits/{deposit}", headers=token(me))).json()
            assert (row["method"], row["state"], row["fee"], row["net"]) == (
                "chain",
                "succeeded",
                "250000",
                "9750000",
            )
            assert (
                await http.get(f"/v1/deposits/{deposit}", headers=token(other))
            ).status_code == 404

            # the native coin
            await evm.pay_eth(to, 4 * 10**17)
            evm.mine(CONFIRMATIONS - 1)
            await credited(http, me, "ETH", 4 * 10**17 - 10**16)

            # a payment to nobody's address and a token we do not carry credit nothing
            await evm.pay_token(alice, "USDC", alice.address, 1)
            await evm.deploy("DOGE", 6)
            await evm.mint("DOGE", to, 10**6)
            # nor does a look-alike: a contract also named USDC, with USDC's decimals, that is
            # not the configured one
            real = evm.tokens["USDC"]
            await evm.deploy("USDC", 6)
            await evm.mint("USDC", to, 10**9)
            evm.tokens["USDC"] = real
            # dust (under 0.001 USDC, 0.001 ETH) is recorded and never credited
            await evm.pay_token(alice, "USDC", to, 999)
            await evm.pay_eth(to, 10**15 - 1)
            evm.mine(CONFIRMATIONS)

            async def dust() -> list[tuple[str, str]]:
                rows = await state.chains.db.fetch(
                    "SELECT asset, amount FROM chain_payments WHERE chain = ? AND state = 'dust'",
                    chain,
                )
                return sorted((r[0], r[1]) for r in rows) if len(rows) == 2 else []

            found = await eventually(dust, "the dust to be recorded")
            assert found == [("ETH", str(10**15 - 1)), ("USDC", "999")]
            await asyncio.sleep(0.5)  # the watcher's next rounds credit nothing of it
            assert await incoming() == []
            assert await available(http, me, "USDC") == 9_750_000
            assert await available(http, me, "ETH") == 4 * 10**17 - 10**16

            # a reorg shallower than the confirmations: the payment's block is dropped before
            # it is deep enough; the same signed transaction lands in a later block of the new
            # chain and is credited there, once; one never re-included is never credited
            snapshot = evm.tester.take_snapshot()
            nonce = await evm.w3.eth.get_transaction_count(alice.address)
            fn = evm.tokens["USDC"].functions.transfer(to, 3_000_000)
            raw = alice.sign_transaction(
                await fn.build_transaction({"from": alice.address, "nonce": nonce, "gas": 100_000})
            ).raw_transaction
            orphan = alice.sign_transaction(
                await evm.tokens["USDC"]
                .functions.transfer(to, 7_000_000)
                .build_transaction({"from": alice.address, "nonce": nonce + 1, "gas": 100_000})
            ).raw_transaction
            await evm.w3.eth.send_raw_transaction(raw)
            await evm.w3.eth.send_raw_transaction(orphan)

            async def both() -> bool:
                return len(await incoming()) == 2

            await eventually(both, "two payments before the reorg")
            evm.tester.revert_to_snapshot(snapshot)
            evm.mine(2)  # the new chain is longer: the watcher must step back over its blocks
            await eventually(lambda: _none(incoming), "the reorged payments to be forgotten")
            await evm.w3.eth.send_raw_transaction(raw)  # re-included, in another block
            evm.mine(CONFIRMATIONS)
            await credited(http, me, "USDC", 9_750_000 + 2_925_000)
            await asyncio.sleep(0.5)
            assert await available(http, me, "USDC") == 9_750_000 + 2_925_000

    # a restart on the same database rescans nothing twice
    async with serving_play(tmp_path, backends, QUEUES, options, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            evm.mine(5)
            await evm.pay_eth(to, 10**17)
            evm.mine(CONFIRMATIONS)
            await credited(http, me, "ETH", 4 * 10**17 - 10**16 + 10**17 - 25 * 10**14)
            assert await available(http, me, "USDC") == 9_750_000 + 2_925_000
            audit = await http.get(
                "/v1/admin/audit?action=deposit.credit&limit=200", headers=token("root", "admin")
            )
            credits = [
                e for e in audit.json()["entries"] if e["detail"]["payment"].startswith(f"{chain}:")
            ]
            assert len(credits) == 4  # USDC, ETH, the re-included USDC, ETH after the restart
            assert (await reconcile(state.ledger.store)).ok


async def _none(check: Callable[[], Awaitable[list[Any]]]) -> bool:
    return not await check()


async def test_withdrawals_on_chain_sent_reverted_rebroadcast_and_refused(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    backends = own_backends  # it sets prices
    evm, chain = Evm(), f"eth{secrets.token_hex(3)}"
    settings = await chains_file(tmp_path, evm, chain)
    me = f"c{secrets.token_hex(4)}"
    hot = Account.from_key(HOT_KEY).address
    await evm.pay_eth(hot, 10**18)  # gas
    await evm.mint("USDC", hot, 1_000_000_000)  # the hot wallet has USDC, and no USDT
    options = {"chain_nodes": {chain: evm.w3}}
    async with serving_play(tmp_path, backends, QUEUES, options, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        admin = token("root", "admin")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for asset in ("USDC", "USDT"):
                put = await http.put(
                    f"/v1/admin/prices/{asset}", json={"price_usd": "1"}, headers=admin
                )
                assert put.status_code == 200, put.text
            to = (await address_of(http, me, chain))["address"]
            alice = await evm.wallet()
            await evm.mint("USDC", alice.address, 100_000_000)
            await evm.mint("USDT", alice.address, 20_000_000)
            await evm.pay_token(alice, "USDC", to, 100_000_000)
            await evm.pay_token(alice, "USDT", to, 20_000_000)
            evm.mine(CONFIRMATIONS)
            await credited(http, me, "USDC", 97_500_000)
            await credited(http, me, "USDT", 19_500_000)
            payee = Account.create().address

            def withdraw(asset: str, amount: int, destination: object, rail: str = chain) -> Any:
                return http.post(
                    "/v1/withdrawals",
                    json={
                        "asset": asset,
                        "amount": str(amount),
                        "rail": rail,
                        "destination": destination,
                    },
                    headers=token(me) | {"Idempotency-Key": secrets.token_hex(8)},
                )

            # bad destinations are refused and hold nothing
            for destination, code in [
                ("0x1234", "bad_destination"),
                (payee.lower()[:-1] + "G", "bad_destination"),
                ("0x" + "00" * 20, "bad_destination"),
                ("0x" + payee[2:].swapcase(), "bad_destination"),  # a wrong EIP-55 checksum
                (12, "bad_destination"),
            ]:
                refused = await withdraw("USDC", 10_000_000, destination)
                assert (refused.status_code, refused.json()["code"]) == (422, code), destination
            refused = await withdraw("EUR", 10_000_000, payee)
            assert refused.status_code == 422
            refused = await withdraw("USDC", 10_000_000, payee, rail="bitcoin")
            assert (refused.status_code, refused.json()["code"]) == (422, "bad_rail")
            assert await available(http, me, "USDC") == 97_500_000

            # sent: broadcast at once, "sent" once the receipt is 3 blocks deep
            made = await withdraw("USDC", 50_000_000, payee.lower())
            assert made.status_code == 201, made.text
            w = made.json()
            assert (w["state"], w["fee"], w["payout"], w["destination"]) == (
                "sending",
                "1500000",
                "48500000",
                payee,
            )
            assert await available(http, me, "USDC") == 47_500_000  # held at once
            assert await evm.balance("USDC", payee) == 48_500_000  # mined (1 block deep)

            async def state_is(wid: str, want: str) -> dict[str, Any] | None:
                body: dict[str, Any] = (
                    await http.get(f"/v1/withdrawals/{wid}", headers=token(me))
                ).json()
                return body if body["state"] == want else None

            await asyncio.sleep(0.5)
            assert await state_is(w["id"], "sending")
            evm.mine(CONFIRMATIONS - 1)
            done = await eventually(lambda: state_is(w["id"], "sent"), "the send to confirm")
            receipt = await evm.w3.eth.get_transaction_receipt(done["provider_ref"])
            assert receipt.status == 1
            assert await evm.balance("USDC", payee) == 48_500_000  # paid once

            # reverted: the hot wallet holds no USDT, the token refuses, the money comes back
            made = await withdraw("USDT", 10_000_000, payee)
            assert made.status_code == 201, made.text
            assert await available(http, me, "USDT") == 9_500_000
            evm.mine(CONFIRMATIONS)
            failed = await eventually(lambda: state_is(made.json()["id"], "failed"), "a revert")
            assert (await evm.w3.eth.get_transaction_receipt(failed["provider_ref"])).status == 0
            assert await available(http, me, "USDT") == 19_500_000
            assert await evm.balance("USDT", payee) == 0

            # a broadcast that fails (the node unreachable) is retried with the same bytes
            node = state.chains.nodes[chain]
            real = node.broadcast
            calls: list[str] = []

            async def flaky(raw: str) -> None:
                calls.append(raw)
                if len(calls) == 1:
                    raise ConnectionError("the node is unreachable")
                await real(raw)

            node.broadcast = flaky
            made = await withdraw("USDC", 20_000_000, payee)
            assert made.status_code == 201, made.text
            assert made.json()["state"] == "sending"

            async def retried() -> bool:
                return len(calls) == 2

            await eventually(retried, "the broadcast to be retried")
            evm.mine(CONFIRMATIONS - 1)
            await eventually(lambda: state_is(made.json()["id"], "sent"), "the retried send")
            assert len(calls) == 2 and calls[0] == calls[1]  # signed once, sent twice
            assert await evm.balance("USDC", payee) == 48_500_000 + 19_400_000
            assert await available(http, me, "USDC") == 27_500_000

            # another account withdrawing to the same address (one person behind two
            # accounts, or two colluding) goes to an admin, whatever else it looks like
            other = f"c{secrets.token_hex(4)}"
            await evm.mint("USDC", alice.address, 20_000_000)
            await evm.pay_token(
                alice, "USDC", (await address_of(http, other, chain))["address"], 20_000_000
            )
            evm.mine(CONFIRMATIONS)
            await credited(http, other, "USDC", 19_500_000)
            second = await http.post(
                "/v1/withdrawals",
                json={"asset": "USDC", "amount": "10000000", "rail": chain, "destination": payee},
                headers=token(other) | {"Idempotency-Key": secrets.token_hex(8)},
            )
            assert second.status_code == 201, second.text
            body = second.json()
            assert body["state"] == "in_review" and "shared_destination" in body["risk_reasons"]
            assert await evm.balance("USDC", payee) == 48_500_000 + 19_400_000  # nothing sent
            assert (await reconcile(state.ledger.store)).ok


async def test_two_chains_at_once_with_eth_as_a_token_where_it_is_not_native(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    """Ethereum-like (ETH native) and Polygon-like (the native coin is not ours; ETH is wrapped
    ETH, an ERC-20 with 18 decimals) watched side by side, each its own EVM."""
    ethereum, polygon = Evm(), Evm()
    eth_name, pol_name = f"eth{secrets.token_hex(3)}", f"pol{secrets.token_hex(3)}"
    eth_usdc = await ethereum.deploy("USDC", 6)
    pol_usdc, pol_weth = await polygon.deploy("USDC", 6), await polygon.deploy("WETH", 18)
    chain_id = await ethereum.w3.eth.chain_id
    path = tmp_path / "chains.toml"
    path.write_text(
        f"""
[chains.{eth_name}]
chain_id = {chain_id}
confirmations = 2
start_block = 0
native_asset = "ETH"
[chains.{eth_name}.tokens]
USDC = "{eth_usdc}"

[chains.{pol_name}]
chain_id = {chain_id}
confirmations = 4
start_block = 0
[chains.{pol_name}.tokens]
USDC = "{pol_usdc}"
ETH = "{pol_weth}"
"""
    )
    settings = {
        "chains_file": str(path),
        "chain_address_seed": SEED,
        "chain_hot_wallet_key": HOT_KEY,
        "chain_poll_interval_ms": "100",
        "rest_requests_per_min": "100000",
    }
    hot = Account.from_key(HOT_KEY).address
    await polygon.pay_eth(hot, 10**18)  # gas on Polygon
    await polygon.mint("WETH", hot, 10**18)
    me = f"c{secrets.token_hex(4)}"
    options = {"chain_nodes": {eth_name: ethereum.w3, pol_name: polygon.w3}}
    async with serving_play(tmp_path, own_backends, QUEUES, options, **settings) as (ws, state):
        base = ws.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            put = await http.put(
                "/v1/admin/prices/ETH", json={"price_usd": "2000"}, headers=token("root", "admin")
            )
            assert put.status_code == 200, put.text
            on_eth = await address_of(http, me, eth_name)
            on_pol = await address_of(http, me, pol_name)
            assert on_eth["address"] != on_pol["address"]
            assert (on_eth["assets"], on_pol["assets"]) == (["ETH", "USDC"], ["USDC", "ETH"])
            alice = await polygon.wallet()
            await polygon.mint("WETH", alice.address, 10**18)
            await polygon.mint("USDC", alice.address, 5_000_000)
            await polygon.pay_token(alice, "WETH", on_pol["address"], 4 * 10**17)
            await polygon.pay_token(alice, "USDC", on_pol["address"], 5_000_000)
            await polygon.pay_eth(on_pol["address"], 10**18)  # the native coin: not ours
            await ethereum.pay_eth(on_eth["address"], 10**17)
            ethereum.mine(1)
            polygon.mine(3)
            await credited(http, me, "ETH", 4 * 10**17 - 10**16 + 10**17 - 25 * 10**14)
            await credited(http, me, "USDC", 4_875_000)

            # ETH out on Polygon: a WETH transfer from the hot wallet
            payee = Account.create().address
            made = await http.post(
                "/v1/withdrawals",
                json={
                    "asset": "ETH",
                    "amount": str(10**17),
                    "rail": pol_name,
                    "destination": payee,
                },
                headers=token(me) | {"Idempotency-Key": secrets.token_hex(8)},
            )
            assert made.status_code == 201, made.text
            polygon.mine(3)

            async def sent() -> bool:
                got = await http.get(f"/v1/withdrawals/{made.json()['id']}", headers=token(me))
                return bool(got.json()["state"] == "sent")

            await eventually(sent, "the Polygon send to confirm")
            assert await polygon.balance("WETH", payee) == 10**17 - 3 * 10**15  # less the 3 %
            assert await ethereum.w3.eth.get_balance(payee) == 0  # nothing on the other chain
            assert (await reconcile(state.ledger.store)).ok
