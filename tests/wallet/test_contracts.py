"""The committed ERC-20 contract: its artifact is the compiled source (``scripts/compile-
contracts``), and the bytecode behaves as EIP-20 says on a real EVM."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
from eth_tester.exceptions import TransactionFailed

from ..evm import Evm, artifact


def test_the_artifact_was_compiled_from_the_committed_source() -> None:
    art = artifact()
    source = resources.files("wallet").joinpath("contracts/TestStablecoin.sol").read_bytes()
    assert art["source_sha256"] == hashlib.sha256(source).hexdigest(), (
        "wallet/contracts/TestStablecoin.sol changed: run ./scripts/compile-contracts"
    )
    assert art["compiler"].startswith("solc 0.8.28")
    assert art["bytecode"].startswith("0x60") and len(art["bytecode"]) > 1000
    names = {entry.get("name") for entry in art["abi"]}
    assert {"transfer", "transferFrom", "approve", "balanceOf", "decimals", "Transfer"} <= names


async def test_the_token_moves_balances_and_emits_transfer_events() -> None:
    evm = Evm()
    address = await evm.deploy("USDC", 6)
    token = evm.tokens["USDC"]
    assert await token.functions.decimals().call() == 6
    alice, bob = await evm.wallet(), await evm.wallet()
    await evm.mint("USDC", alice.address, 5_000_000)
    assert await token.functions.totalSupply().call() == 5_000_000
    tx = await evm.pay_token(alice, "USDC", bob.address, 1_250_000)
    receipt = await evm.w3.eth.wait_for_transaction_receipt(tx)
    assert receipt.status == 1
    [event] = token.events.Transfer().process_receipt(receipt)
    assert (event.args["from"], event.args["to"], event.args["value"]) == (
        alice.address,
        bob.address,
        1_250_000,
    )
    assert str(receipt.logs[0]["address"]).lower() == address
    assert (await evm.balance("USDC", alice.address), await evm.balance("USDC", bob.address)) == (
        3_750_000,
        1_250_000,
    )


async def test_the_token_refuses_overdrafts_strangers_minting_and_unapproved_spending() -> None:
    evm = Evm()
    await evm.deploy("USDT", 6)
    token = evm.tokens["USDT"]
    alice, bob = await evm.wallet(), await evm.wallet()
    await evm.mint("USDT", alice.address, 100)
    with pytest.raises(TransactionFailed, match="balance too small"):
        await token.functions.transfer(bob.address, 101).call({"from": alice.address})
    with pytest.raises(TransactionFailed, match="only the minter"):
        await token.functions.mint(bob.address, 1).call({"from": alice.address})
    with pytest.raises(TransactionFailed, match="allowance too small"):
        await token.functions.transferFrom(alice.address, bob.address, 1).call(
            {"from": bob.address}
        )
    assert await evm.balance("USDT", alice.address) == 100
