"""The double-entry, multi-asset, immutable ledger. See docs/ARCHITECTURE.md.

Public surface: assets (:mod:`ledger.asset`), accounts and transfers with their result codes,
the pure posting rules (:mod:`ledger.posting`), the store port and its SQLite and PostgreSQL
adapters, the batching writer :class:`Ledger`, and reconciliation.
"""

from .account import Account, AccountFlags, AccountKind, AccountState, Balance
from .asset import BUILTIN_ASSETS, Asset, AssetKind, nft_asset
from .ids import derive_id, id_to_text, parse_id
from .posting import TransferOutcome, expire_id
from .reconcile import Report, reconcile
from .result import CreateAccountResult, CreateTransferResult
from .store import HistoryPage, LedgerStore
from .stores import open_store
from .transfer import Transfer, TransferFlags, TransferRecord
from .writer import Ledger, LedgerBusy, LedgerClosed, LedgerLimits, RequestTooLarge

__all__ = [
    "BUILTIN_ASSETS",
    "Account",
    "AccountFlags",
    "AccountKind",
    "AccountState",
    "Asset",
    "AssetKind",
    "Balance",
    "CreateAccountResult",
    "CreateTransferResult",
    "HistoryPage",
    "Ledger",
    "LedgerBusy",
    "LedgerClosed",
    "LedgerLimits",
    "LedgerStore",
    "Report",
    "RequestTooLarge",
    "Transfer",
    "TransferFlags",
    "TransferOutcome",
    "TransferRecord",
    "derive_id",
    "expire_id",
    "id_to_text",
    "nft_asset",
    "open_store",
    "parse_id",
    "reconcile",
]
