"""The chain core: Transfer logs read right, blocks accepted only on their parent, rewinds that
forget what was incoming and report what was credited, confirmations, and send plans."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wallet import chain as ch

USDC = "0x" + "aa" * 20
USDT = "0x" + "bb" * 20
ME = "0x" + "12" * 20
ETHEREUM = ch.ChainConfig("ethereum", 1, 3, "ETH", (ch.Token("USDC", USDC), ch.Token("USDT", USDT)))
BLOCK = ch.Header(7, "0x" + "07" * 32, "0x" + "06" * 32)


def word(n: int) -> str:
    return f"0x{n:064x}"


def topic(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


def transfer_log(**overrides: object) -> dict[str, object]:
    log: dict[str, object] = {
        "address": USDC.upper().replace("0X", "0x"),  # nodes answer in checksum case
        "topics": [ch.TRANSFER_TOPIC, topic("0x" + "99" * 20), topic(ME)],
        "data": word(2_500_000),
        "blockHash": BLOCK.hash,
        "transactionHash": "0x" + "ab" * 32,
        "logIndex": 4,
        "removed": False,
    }
    return log | overrides


def test_a_transfer_log_of_our_token_is_a_payment_in_the_asset_scale() -> None:
    [p] = ch.token_payments(ETHEREUM, BLOCK, [transfer_log()])
    assert (p.asset, p.to, p.amount, p.block, p.log_index) == ("USDC", ME, 2_500_000, 7, 4)
    assert p.key == f"ethereum:{'0x' + 'ab' * 32}:4"


@pytest.mark.parametrize(
    "bad",
    [
        {"address": "0x" + "cc" * 20},  # a token we do not carry
        {"blockHash": "0x" + "08" * 32},  # a log of another block (the chain moved)
        {"removed": True},
        {"topics": [ch.TRANSFER_TOPIC, topic(ME)]},  # an ERC-721 style or malformed event
        {"topics": ["0x" + "00" * 32, topic("0x" + "99" * 20), topic(ME)]},
        {
            "topics": [ch.TRANSFER_TOPIC, topic("0x" + "99" * 20), "0x" + "ff" * 32]
        },  # not an address
        {"data": word(0)},
        {"data": "0x1234"},
        {"logIndex": None},
        {"transactionHash": "0x12"},
    ],
)
def test_what_is_not_a_payment_to_us_is_left_out(bad: dict[str, object]) -> None:
    assert ch.token_payments(ETHEREUM, BLOCK, [transfer_log(**bad)]) == []


def test_native_payments_only_where_the_native_coin_is_ours() -> None:
    p = ch.native_payment(ETHEREUM, BLOCK, "0x" + "CD" * 32, ME.upper(), 10**18)
    assert p is not None and (p.asset, p.log_index, p.to) == ("ETH", -1, ME)
    polygon = ch.ChainConfig("polygon", 137, 3, None, (ch.Token("ETH", USDT),))
    assert ch.native_payment(polygon, BLOCK, "0x" + "cd" * 32, ME, 10**18) is None
    assert ch.native_payment(ETHEREUM, BLOCK, "0x" + "cd" * 32, None, 10**18) is None  # a deploy
    assert ch.native_payment(ETHEREUM, BLOCK, "0x" + "cd" * 32, ME, 0) is None


def test_a_block_is_accepted_only_on_its_parent() -> None:
    child = ch.Header(8, "0x" + "08" * 32, BLOCK.hash)
    assert ch.follows(None, BLOCK)
    assert ch.follows(BLOCK, child)
    assert not ch.follows(BLOCK, ch.Header(8, "0x" + "08" * 32, "0x" + "66" * 32))  # a reorg
    assert not ch.follows(BLOCK, ch.Header(9, "0x" + "09" * 32, BLOCK.hash))


def payment(block: int, index: int = 0) -> ch.Payment:
    return ch.Payment("ethereum", "0x" + f"{block:02x}" * 32, index, block, "USDC", ME, 5)


def test_a_rewind_forgets_incoming_and_reports_credited_payments_of_the_dropped_block() -> None:
    undo = ch.rewind(BLOCK, [(payment(7, 0), False), (payment(7, 1), True), (payment(6), False)])
    assert undo.drop == BLOCK
    assert undo.forget == (payment(7, 0),)
    assert undo.lost == (payment(7, 1),)


def test_confirmations_count_the_block_itself() -> None:
    assert not ch.confirmed(10, 11, 3)
    assert ch.confirmed(10, 12, 3)
    assert ch.confirmed(10, 10, 1)
    assert ch.due([payment(12), payment(9), payment(10)], 12, 3) == [payment(9), payment(10)]


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 100))
def test_a_payment_is_due_exactly_when_deep_enough(block: int, tip: int, depth: int) -> None:
    assert (ch.due([payment(block % 256)], tip, depth) != []) == (tip - block % 256 + 1 >= depth)


def test_deposit_ids_are_per_payment_and_case_blind() -> None:
    tx = "0x" + "ab" * 32
    assert ch.deposit_id("ethereum", tx, 1) == ch.deposit_id("ethereum", tx.upper(), 1)
    assert ch.deposit_id("ethereum", tx, 1) != ch.deposit_id("ethereum", tx, 2)
    assert ch.deposit_id("ethereum", tx, 1) != ch.deposit_id("polygon", tx, 1)


def test_a_token_send_is_an_erc20_transfer_call_to_the_contract() -> None:
    plan = ch.plan_send(ETHEREUM, "USDT", ME, 1_000_000, 5, 10, 2)
    assert (plan.to, plan.value, plan.gas, plan.nonce) == (USDT, 0, ch.GAS_TOKEN, 5)
    assert plan.data == "0xa9059cbb" + "00" * 12 + "12" * 20 + f"{1_000_000:064x}"
    assert (plan.max_fee_per_gas, plan.max_priority_fee_per_gas) == (22, 2)
    native = ch.plan_send(ETHEREUM, "ETH", ME, 10**17, 6, 10, 2)
    assert (native.to, native.value, native.data, native.gas) == (ME, 10**17, "0x", 21_000)
    assert native.as_dict()["type"] == 2 and native.as_dict()["chainId"] == 1
    with pytest.raises(ValueError):
        ch.plan_send(ETHEREUM, "EUR", ME, 1, 0, 1, 1)
    with pytest.raises(ValueError):
        ch.transfer_call(ME, 0)


def test_a_receipt_pays_a_token_only_with_its_transfer_log() -> None:
    logs = [transfer_log()]
    assert ch.receipt_pays(ETHEREUM, "USDC", ME, 2_500_000, BLOCK.hash, logs)
    assert not ch.receipt_pays(ETHEREUM, "USDC", ME, 2_500_001, BLOCK.hash, logs)
    assert not ch.receipt_pays(ETHEREUM, "USDC", "0x" + "34" * 20, 2_500_000, BLOCK.hash, logs)
    assert not ch.receipt_pays(ETHEREUM, "USDC", ME, 2_500_000, BLOCK.hash, [])  # returned false
    assert ch.receipt_pays(ETHEREUM, "ETH", ME, 1, BLOCK.hash, [])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Ethereum"},
        {"confirmations": 0},
        {"native_asset": "USDC"},  # carried twice
        {"tokens": (ch.Token("USDC", "0x" + "AA" * 20),)},  # contracts in lowercase
        {"tokens": (ch.Token("USDC", "0x1234"),)},
    ],
)
def test_a_bad_chain_config_is_refused(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "name": "ethereum",
        "chain_id": 1,
        "confirmations": 3,
        "native_asset": "ETH",
        "tokens": (ch.Token("USDC", USDC),),
    }
    with pytest.raises(ch.ChainConfigError):
        ch.ChainConfig(**(base | kwargs))  # type: ignore[arg-type]


def test_addresses_parse_to_lowercase() -> None:
    assert ch.parse_address("0x" + "Ab" * 20) == "0x" + "ab" * 20
    assert ch.parse_address("0x" + "ab" * 19) is None
    assert ch.parse_address(12) is None


def test_a_payment_under_the_deposit_minimum_is_dust() -> None:
    config = ch.ChainConfig("eth", 1, 3, "ETH", (), (("ETH", 10**15),))
    payment = ch.Payment("eth", "0x" + "a" * 64, -1, 5, "ETH", "0x" + "b" * 40, 10**15 - 1)
    assert ch.is_dust(config, payment)
    assert not ch.is_dust(config, dataclasses.replace(payment, amount=10**15))
    assert config.minimum("ETH") == 10**15
    assert ch.default_deposit_min(18) == 10**15 and ch.default_deposit_min(6) == 1_000
    assert ch.default_deposit_min(2) == 1
    for bad in ((("USDC", 5),), (("ETH", 0),), (("ETH", "1"),)):
        with pytest.raises(ch.ChainConfigError):
            ch.ChainConfig("eth", 1, 3, "ETH", (), bad)  # type: ignore[arg-type]
