"""The chains file and the checks made at start: a wrong file is refused with its reason, and
so is a node of another chain or a token whose decimals are not its asset's scale."""

from __future__ import annotations

import time

import pytest

from leetgaming.audit import AuditLog
from leetgaming.chain import Chains, ChainSettingsError, Node, parse_chains
from leetgaming.db import Database

from ..evm import Evm

GOOD = """
[chains.polygon]
chain_id = 137
rpc_url = "https://polygon.example"
confirmations = 64
[chains.polygon.tokens]
USDC = "0x3C499c542cEF5E3811e1192ce70d8cC03d5c3359"
"""


def test_a_good_file_gives_each_chain() -> None:
    [(name, setup)] = parse_chains(GOOD).items()
    assert (name, setup.config.chain_id, setup.config.confirmations) == ("polygon", 137, 64)
    assert setup.config.tokens[0].contract == "0x3c499c542cef5e3811e1192ce70d8cc03d5c3359"
    assert (setup.rpc_url, setup.start_block, setup.config.native_asset) == (
        "https://polygon.example",
        None,
        None,
    )


def test_deposit_minimums_are_read_per_asset() -> None:
    [setup] = parse_chains(GOOD + "[chains.polygon.deposit_min]\nUSDC = 1000000\n").values()
    assert setup.config.minimum("USDC") == 1_000_000


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[chains", "not TOML"),
        ("[chains.polygon]\nchain_id = '137'", "integers"),
        ("[chains.polygon]\nchain_id = 137\nstart_block = -1", "block number"),
        ("[chains.polygon]\nchain_id = 137\nconfirmation = 3", "unknown keys"),
        ("[chains.polygon]\nchain_id = 137\nconfirmations = 0", "confirmations"),
        ("[chains.polygon]\nchain_id = 137\n[chains.polygon.tokens]\nUSDC = '0x12'", "address"),
        ("[chains.Polygon]\nchain_id = 137", "lowercase"),
        ("[chains.polygon]\nchain_id = 137\ndeposit_min = 5", "deposit_min maps"),
        ("[chains.polygon]\nchain_id = 137\n[chains.polygon.deposit_min]\nUSDC = 5", "not carried"),
        (GOOD + "[chains.polygon.deposit_min]\nUSDC = 0", "positive int"),
        (GOOD + "[chains.polygon.deposit_min]\nUSDC = '1.0'", "positive int"),
    ],
)
def test_a_bad_file_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(ChainSettingsError, match=reason):
        parse_chains(text)


async def chains_on(database: Database, evm: Evm, text: str) -> Chains:
    async def scales() -> dict[str, int]:
        return {"USDC": 6, "ETH": 18}

    async def credit(*_: object) -> None:
        raise AssertionError("nothing is credited here")

    audit = AuditLog(database, time.time_ns)
    await audit.start()
    setups = parse_chains(text)
    nodes = {name: Node(evm.w3) for name in setups}
    return Chains(database, audit, setups, nodes, None, None, credit, scales)


async def test_start_refuses_another_chain_and_wrong_decimals(database: Database) -> None:
    evm = Evm()
    six, eighteen = await evm.deploy("USDC", 6), await evm.deploy("WETH", 18)
    chain_id = await evm.w3.eth.chain_id
    ok = f"[chains.e]\nchain_id = {chain_id}\n[chains.e.tokens]\nUSDC = '{six}'\nETH = '{eighteen}'"
    await (await chains_on(database, evm, ok)).start()
    other = ok.replace(f"chain_id = {chain_id}", "chain_id = 1")
    with pytest.raises(ChainSettingsError, match="serves chain"):
        await (await chains_on(database, evm, other)).start()
    swapped = f"[chains.e]\nchain_id = {chain_id}\n[chains.e.tokens]\nUSDC = '{eighteen}'"
    with pytest.raises(ChainSettingsError, match="18 decimals"):
        await (await chains_on(database, evm, swapped)).start()
    unknown = f"[chains.e]\nchain_id = {chain_id}\nnative_asset = 'MATIC'"
    with pytest.raises(ChainSettingsError, match="not a known asset"):
        await (await chains_on(database, evm, unknown)).start()
