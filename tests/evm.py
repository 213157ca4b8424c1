"""A real EVM in the test process (py-evm through eth-tester), reached with web3.py's async API,
and the committed ERC-20 contract deployed on it. Blocks are mined one per transaction; a test
mines empty blocks to confirm, and reverts to a snapshot to stage a reorg."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import AsyncWeb3
from web3.providers.eth_tester import AsyncEthereumTesterProvider

HOT_KEY = "0x" + "5a" * 32  # the platform's hot wallet in the tests


def artifact(name: str = "TestStablecoin") -> dict[str, Any]:
    text = resources.files("wallet").joinpath(f"contracts/{name}.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


class Evm:
    def __init__(self) -> None:
        self.tester = EthereumTester(PyEVMBackend())
        provider = AsyncEthereumTesterProvider()
        provider.ethereum_tester = self.tester  # one chain shared by the app and the test
        self.w3: AsyncWeb3[Any] = AsyncWeb3(provider)
        self.funder = self.tester.get_accounts()[0]
        self.tokens: dict[str, Any] = {}

    async def deploy(self, symbol: str, decimals: int) -> str:
        """A new token; its address in lowercase."""
        art = artifact()
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx = await factory.constructor(f"Test {symbol}", symbol, decimals).transact(
            {"from": self.funder}
        )
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx)
        self.tokens[symbol] = self.w3.eth.contract(address=receipt.contractAddress, abi=art["abi"])
        return str(receipt.contractAddress).lower()

    async def wallet(self, eth: int = 10**18) -> Any:
        """A new funded externally owned account (a player's own wallet)."""
        account = Account.create()
        await self.w3.eth.send_transaction(
            {"from": self.funder, "to": account.address, "value": eth}
        )
        return account

    async def mint(self, symbol: str, to: str, amount: int) -> None:
        fn = self.tokens[symbol].functions.mint(self.w3.to_checksum_address(to), amount)
        await self.w3.eth.wait_for_transaction_receipt(await fn.transact({"from": self.funder}))

    async def pay_token(self, sender: Any, symbol: str, to: str, amount: int) -> str:
        """``sender`` (an account with a key) sends ``amount`` of a token; the tx hash."""
        fn = self.tokens[symbol].functions.transfer(self.w3.to_checksum_address(to), amount)
        tx = await fn.build_transaction(
            {
                "from": sender.address,
                "nonce": await self.w3.eth.get_transaction_count(sender.address),
                "gas": 100_000,
            }
        )
        signed = sender.sign_transaction(tx)
        return "0x" + (await self.w3.eth.send_raw_transaction(signed.raw_transaction)).hex()

    async def pay_eth(self, to: str, amount: int) -> str:
        tx = await self.w3.eth.send_transaction(
            {"from": self.funder, "to": self.w3.to_checksum_address(to), "value": amount}
        )
        return "0x" + tx.hex()

    async def balance(self, symbol: str, owner: str) -> int:
        fn = self.tokens[symbol].functions.balanceOf(self.w3.to_checksum_address(owner))
        return int(await fn.call())

    def mine(self, blocks: int) -> None:
        self.tester.mine_blocks(blocks)

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)
