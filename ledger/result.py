"""Result codes, one per event, in order of precedence.

When an event is wrong in several ways, the first code in declaration order is the one
returned. ``ok`` and ``exists`` are the two successes: ``exists`` means the same event was
applied before and nothing changed now. Each code says whether retrying the *same* event can
ever help (``retryable``): a missing account may be created later, funds may arrive, but a
malformed event stays malformed.
"""

from __future__ import annotations

import enum


class CreateAccountResult(enum.StrEnum):
    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    ID_INVALID = "id_invalid"
    FLAGS_INVALID = "flags_invalid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    ASSET_INVALID = "asset_invalid"
    OWNER_INVALID = "owner_invalid"
    KIND_INVALID = "kind_invalid"
    CODE_INVALID = "code_invalid"
    ASSET_NOT_FOUND = "asset_not_found"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    EXISTS = "exists"

    @property
    def succeeded(self) -> bool:
        return self in (CreateAccountResult.OK, CreateAccountResult.EXISTS)

    @property
    def retryable(self) -> bool:
        return self in (
            CreateAccountResult.LINKED_EVENT_FAILED,
            CreateAccountResult.ASSET_NOT_FOUND,
        )


class CreateTransferResult(enum.StrEnum):
    OK = "ok"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    # The event on its own.
    ID_INVALID = "id_invalid"
    FLAGS_INVALID = "flags_invalid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    DEBIT_ACCOUNT_ID_INVALID = "debit_account_id_invalid"
    CREDIT_ACCOUNT_ID_INVALID = "credit_account_id_invalid"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_INVALID = "pending_id_invalid"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    TIMEOUT_INVALID = "timeout_invalid"
    AMOUNT_INVALID = "amount_invalid"
    ASSET_INVALID = "asset_invalid"
    CODE_INVALID = "code_invalid"
    METADATA_INVALID = "metadata_invalid"
    METADATA_TOO_LARGE = "metadata_too_large"
    # Against the ledger's state.
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ASSET_MISMATCH = "asset_mismatch"  # the two accounts hold different assets
    TRANSFER_ASSET_MISMATCH = "transfer_asset_mismatch"  # the transfer names another asset
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT = "pending_transfer_has_different_debit_account"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT = "pending_transfer_has_different_credit_account"
    PENDING_TRANSFER_HAS_DIFFERENT_ASSET = "pending_transfer_has_different_asset"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    EXISTS = "exists"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_NOT_EXPIRED = "pending_transfer_not_expired"  # ledger's own Expire only
    UNIT_ASSET_AMOUNT_MUST_BE_ONE = "unit_asset_amount_must_be_one"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    INSUFFICIENT_FUNDS = "insufficient_funds"  # debits would exceed credits
    EXCEEDS_DEBITS = "exceeds_debits"  # credits would exceed debits

    @property
    def succeeded(self) -> bool:
        return self is CreateTransferResult.OK or self is CreateTransferResult.EXISTS

    @property
    def retryable(self) -> bool:
        """Whether the same transfer may succeed later, once the ledger's state has changed."""
        return self in _RETRYABLE_TRANSFER


_RETRYABLE_TRANSFER = frozenset(
    {
        CreateTransferResult.LINKED_EVENT_FAILED,
        CreateTransferResult.DEBIT_ACCOUNT_NOT_FOUND,
        CreateTransferResult.CREDIT_ACCOUNT_NOT_FOUND,
        CreateTransferResult.PENDING_TRANSFER_NOT_FOUND,
        CreateTransferResult.INSUFFICIENT_FUNDS,
        CreateTransferResult.EXCEEDS_DEBITS,
    }
)
