"""In Debian's Chromium: a player's wallet shows their deposit address on a chain (a real EVM,
eth-tester's py-evm), a stablecoin payment to it shows as on its way at once and is credited,
less the 2.5 % fee, once deep enough, with no reload."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from playwright.async_api import Page, expect

from ..evm import Evm
from ..leetgaming.test_chain import CONFIRMATIONS, chains_file
from ..leetgaming.test_wallet_api import QUEUES
from .conftest import (
    open_confirmation,
    open_registration,
    portal_app,
    screenshot,
    submit_registration,
)


async def test_a_stablecoin_deposit_to_the_address_the_wallet_shows(
    tmp_path: Path, page: Page, screenshots: Path
) -> None:
    evm, chain = Evm(), f"eth{secrets.token_hex(3)}"
    settings = await chains_file(tmp_path, evm, chain)
    async with portal_app(
        tmp_path, QUEUES, app_options={"chain_nodes": {chain: evm.w3}}, **settings
    ) as (base, _state, _http):
        await open_registration(page, base)
        await submit_registration(page, f"onchain{secrets.token_hex(3)}@example.com")
        await open_confirmation(page, tmp_path / "mail")
        shown = page.get_by_test_id("deposit-address")
        await expect(shown).to_have_text(re.compile(r"^0x[0-9a-fA-F]{40}$"))
        address = await shown.inner_text()
        assert address.startswith("0x") and len(address) == 42

        payer = await evm.wallet()
        await evm.mint("USDC", payer.address, 50_000_000)
        await evm.pay_token(payer, "USDC", address, 10_000_000)  # 10 USDC
        incoming = page.get_by_role("list", name="Incoming")
        await expect(incoming).to_contain_text("10.000000 USDC on its way")
        await screenshot(page, screenshots, "chain-1-incoming")
        evm.mine(CONFIRMATIONS - 1)
        await expect(page.get_by_test_id("available-USDC")).to_have_text("9.750000")
        await expect(incoming).to_have_count(0)
        await screenshot(page, screenshots, "chain-2-credited")
