"""On-chain deposits and sends: what a block means for our wallets, and when to trust it (pure).

A chain (Ethereum, Polygon, any EVM chain) carries some of our assets: its native coin (ETH on
Ethereum) and ERC-20 tokens (USDC, USDT; ETH as wrapped ETH on Polygon), each at a contract
address whose ``decimals`` equal the asset's scale, so an on-chain amount is already the
ledger's integer.

The watcher follows the chain one block at a time. A block is accepted only when its parent is
the block accepted before it; otherwise the chain reorganised, and the watcher steps back,
forgetting the last accepted block and what it saw there, until the parents meet again. What it
sees paid to a deposit address (an ERC-20 ``Transfer`` log to it, or a successful transaction
sending it the native coin) is *incoming* until the block is ``confirmations`` deep (the block
itself counts as one), and only then credited. Credits are keyed by (chain, transaction hash,
log index; ``-1`` for a native transfer), so seeing the same payment again, after a restart or
a reorg that re-includes it, credits nothing new. A reorg deeper than the confirmation depth
that removes a credited payment cannot be repaired by the watcher: it is reported
(:func:`rewind`) for a person to decide.

A payment below the asset's deposit minimum on that chain is *dust* (:func:`is_dust`): it is
recorded and never credited. Dust is how address-poisoning attacks plant look-alike addresses
in a player's history, and each credit would cost more to sweep than it is worth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ledger import derive_id

# keccak256("Transfer(address,address,uint256)"), the ERC-20 event's first topic
TRANSFER_TOPIC: Final = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
NATIVE_LOG_INDEX: Final = -1
CONFIRMATIONS_MAX: Final = 1_000
_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_WORD: Final = re.compile(r"0x[0-9a-fA-F]{64}")


class ChainConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Token:
    asset: str
    contract: str  # lowercase 0x address


@dataclass(frozen=True, slots=True)
class ChainConfig:
    name: str  # "ethereum", "polygon": the withdrawal rail and the address's chain
    chain_id: int
    confirmations: int  # a payment is credited once its block is this deep (itself included)
    native_asset: str | None  # ETH on Ethereum; None where the native coin is not ours
    tokens: tuple[Token, ...] = ()
    deposit_min: tuple[tuple[str, int], ...] = ()  # (asset, smallest credited amount)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", self.name):
            raise ChainConfigError(f"a chain's name is lowercase letters and digits: {self.name!r}")
        if not 1 <= self.confirmations <= CONFIRMATIONS_MAX:
            raise ChainConfigError(f"{self.name}: confirmations is 1..{CONFIRMATIONS_MAX}")
        assets = [t.asset for t in self.tokens] + ([self.native_asset] if self.native_asset else [])
        if len(set(assets)) != len(assets):
            raise ChainConfigError(f"{self.name}: an asset is carried twice")
        for token in self.tokens:
            if not _ADDRESS.fullmatch(token.contract) or token.contract != token.contract.lower():
                raise ChainConfigError(f"{self.name}: {token.asset}'s contract is not an address")
        for asset, minimum in self.deposit_min:
            if asset not in assets:
                raise ChainConfigError(f"{self.name}: a deposit minimum for {asset}, not carried")
            if type(minimum) is not int or not 1 <= minimum < 2**256:
                raise ChainConfigError(f"{self.name}: {asset}'s deposit minimum is a positive int")

    def minimum(self, asset: str) -> int:
        """The smallest payment of ``asset`` credited (in its smallest unit)."""
        return next((m for a, m in self.deposit_min if a == asset), 1)

    @property
    def assets(self) -> tuple[str, ...]:
        native = (self.native_asset,) if self.native_asset else ()
        return (*native, *(t.asset for t in self.tokens))

    def token_of_contract(self, contract: str) -> Token | None:
        contract = contract.lower()
        return next((t for t in self.tokens if t.contract == contract), None)

    def token_of_asset(self, asset: str) -> Token | None:
        return next((t for t in self.tokens if t.asset == asset), None)


def parse_address(text: object) -> str | None:
    """A 0x address in lowercase, or None (the checksum of mixed case is the shell's, which
    has keccak: see :func:`leetgaming.chain.checksum_ok`)."""
    if not isinstance(text, str) or not _ADDRESS.fullmatch(text):
        return None
    return text.lower()


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    hash: str  # lowercase 0x hex
    parent_hash: str


@dataclass(frozen=True, slots=True)
class Payment:
    """Value paid to one of our deposit addresses, seen in a block."""

    chain: str
    tx_hash: str
    log_index: int  # NATIVE_LOG_INDEX for a native transfer
    block: int
    asset: str
    to: str  # lowercase address
    amount: int

    @property
    def key(self) -> str:
        return f"{self.chain}:{self.tx_hash}:{self.log_index}"


def deposit_id(chain: str, tx_hash: str, log_index: int) -> str:
    """The deposit a payment makes, the same whenever and however often it is seen."""
    return f"dep_{derive_id('deposit.chain', chain, tx_hash.lower(), log_index):032x}"


def _topic_address(topic: str) -> str | None:
    if not _WORD.fullmatch(topic) or int(topic[2:26], 16) != 0:
        return None
    return "0x" + topic[26:].lower()


def token_payments(
    config: ChainConfig, block: Header, logs: Iterable[Mapping[str, object]]
) -> list[Payment]:
    """The ERC-20 ``Transfer`` logs of ``block`` from our token contracts, as payments to
    whatever address they name (the shell keeps those to our deposit addresses). Logs are
    plain JSON-RPC shapes: hex strings and ints. A log of another block, a removed log, or one
    that is not a well-formed Transfer is left out."""
    out = []
    for log in logs:
        topics = log.get("topics")
        if (
            log.get("removed") is True
            or str(log.get("blockHash", "")).lower() != block.hash
            or not isinstance(topics, list | tuple)
            or len(topics) != 3
            or str(topics[0]).lower() != TRANSFER_TOPIC
        ):
            continue
        token = config.token_of_contract(str(log.get("address", "")))
        to = _topic_address(str(topics[2]).lower())
        data = str(log.get("data", ""))
        index, tx = log.get("logIndex"), str(log.get("transactionHash", "")).lower()
        if token is None or to is None or not _WORD.fullmatch(data) or not isinstance(index, int):
            continue
        amount = int(data, 16)
        if amount > 0 and _WORD.fullmatch(tx):
            out.append(Payment(config.name, tx, index, block.number, token.asset, to, amount))
    return out


def native_payment(
    config: ChainConfig, block: Header, tx_hash: str, to: str | None, value: int
) -> Payment | None:
    """A transaction of ``block`` sending the native coin (the shell checks that it did not
    revert: a reverted transaction moves no value)."""
    if config.native_asset is None or to is None or value <= 0:
        return None
    return Payment(
        config.name,
        tx_hash.lower(),
        NATIVE_LOG_INDEX,
        block.number,
        config.native_asset,
        to.lower(),
        value,
    )


def is_dust(config: ChainConfig, payment: Payment) -> bool:
    """Whether ``payment`` is below its asset's deposit minimum: recorded, never credited."""
    return payment.amount < config.minimum(payment.asset)


def default_deposit_min(scale: int) -> int:
    """A thousandth of a unit (0.001 USDC, 0.001 ETH); 1 for an asset of scale 3 or less."""
    return int(10 ** max(scale - 3, 0))


def follows(tip: Header | None, block: Header) -> bool:
    """Whether ``block`` extends the chain the watcher accepted so far."""
    return tip is None or (block.number == tip.number + 1 and block.parent_hash == tip.hash)


@dataclass(frozen=True, slots=True)
class Rewind:
    drop: Header  # the accepted block that is no longer on the chain
    forget: tuple[Payment, ...]  # incoming payments seen there: no longer incoming
    lost: tuple[Payment, ...]  # credited payments seen there: a reorg deeper than confirmations


def rewind(tip: Header, seen: Iterable[tuple[Payment, bool]]) -> Rewind:
    """What stepping back over ``tip`` undoes, given the payments seen in it and whether each
    was credited."""
    forget: list[Payment] = []
    lost: list[Payment] = []
    for payment, credited in seen:
        if payment.block == tip.number:
            (lost if credited else forget).append(payment)
    return Rewind(tip, tuple(forget), tuple(lost))


def confirmed(payment_block: int, tip: int, confirmations: int) -> bool:
    """Whether a payment in ``payment_block`` is deep enough under ``tip`` to be credited."""
    return tip - payment_block + 1 >= confirmations


def due(incoming: Iterable[Payment], tip: int, confirmations: int) -> list[Payment]:
    """The incoming payments to credit now, oldest first."""
    ready = [p for p in incoming if confirmed(p.block, tip, confirmations)]
    return sorted(ready, key=lambda p: (p.block, p.tx_hash, p.log_index))


# -- sends -------------------------------------------------------------------------------------

GAS_NATIVE: Final = 21_000
GAS_TOKEN: Final = 100_000  # an ERC-20 transfer takes about 35,000 to 55,000
_TRANSFER_SELECTOR: Final = "a9059cbb"  # transfer(address,uint256)


def transfer_call(to: str, amount: int) -> str:
    """The calldata of an ERC-20 ``transfer(to, amount)``."""
    address = parse_address(to)
    if address is None or not 0 < amount < 2**256:
        raise ValueError("a token transfer needs an address and a positive amount")
    return "0x" + _TRANSFER_SELECTOR + address[2:].rjust(64, "0") + f"{amount:064x}"


@dataclass(frozen=True, slots=True)
class SendPlan:
    """An unsigned EIP-1559 transaction paying ``amount`` of ``asset`` to ``to``."""

    chain_id: int
    nonce: int
    to: str  # the recipient, or the token contract
    value: int
    data: str
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def as_dict(self) -> dict[str, object]:
        return {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self.nonce,
            "to": self.to,
            "value": self.value,
            "data": self.data,
            "gas": self.gas,
            "maxFeePerGas": self.max_fee_per_gas,
            "maxPriorityFeePerGas": self.max_priority_fee_per_gas,
        }


def plan_send(
    config: ChainConfig,
    asset: str,
    to: str,
    amount: int,
    nonce: int,
    base_fee_per_gas: int,
    priority_fee_per_gas: int,
) -> SendPlan:
    """The transaction that pays a withdrawal: the fee cap is twice the base fee plus the tip,
    which survives six full blocks of base-fee rises (12.5% each)."""
    max_fee = 2 * base_fee_per_gas + priority_fee_per_gas
    if asset == config.native_asset:
        return SendPlan(
            config.chain_id, nonce, to, amount, "0x", GAS_NATIVE, max_fee, priority_fee_per_gas
        )
    token = config.token_of_asset(asset)
    if token is None:
        raise ValueError(f"{config.name} does not carry {asset}")
    return SendPlan(
        config.chain_id,
        nonce,
        token.contract,
        0,
        transfer_call(to, amount),
        GAS_TOKEN,
        max_fee,
        priority_fee_per_gas,
    )


def receipt_pays(
    config: ChainConfig,
    asset: str,
    to: str,
    amount: int,
    block_hash: str,
    logs: Iterable[Mapping[str, object]],
) -> bool:
    """Whether a successful transaction's receipt shows ``amount`` of ``asset`` reaching
    ``to``: for a native send its success is the payment; for a token, a ``Transfer`` log of
    the token's contract must say so (a token may answer ``false`` without reverting)."""
    if asset == config.native_asset:
        return True
    header = Header(-1, block_hash.lower(), "")
    return any(
        p.asset == asset and p.to == to.lower() and p.amount == amount
        for p in token_payments(config, header, logs)
    )
