"""The posting rules: a pure function from (ledger view, batch of requests, time) to outcomes.

No I/O, no clock, no ``await``. A store shell loads a :class:`LedgerView` holding every account
and transfer the batch touches (accounts locked against other writers), calls
:func:`apply_batch`, writes the new records and account counters in one database transaction,
and only then answers the callers.

Invariants this module keeps, for every batch:

- a transfer id is recorded at most once; a retry with the same fields answers ``exists`` with
  the first record, with other fields ``exists_with_different_fields``;
- every record moves the same amount out of one account and into another of the same asset, so
  for every asset the sum of all balances stays zero;
- a flagged account's limit holds after every record (debits pending + posted <= credits posted
  for ``DEBITS_MUST_NOT_EXCEED_CREDITS``, and the mirror);
- a hold is resolved (posted, voided or expired) at most once, never after its timeout;
- a linked chain is applied whole or not at all; a request never links into the next one;
- timestamps strictly increase per account and within a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from .account import (
    ACCOUNT_FLAGS_ALL,
    OWNER_CHARS_MAX,
    Account,
    AccountFlags,
    AccountState,
    Balance,
    is_valid_kind,
    same_identity,
)
from .asset import AMOUNT_MAX, Asset, is_valid_asset_code
from .ids import ID_MAX, ID_MIN, derive_id
from .result import CreateAccountResult
from .result import CreateTransferResult as R
from .transfer import (
    CLIENT_TRANSFER_FLAGS,
    CODE_MAX,
    METADATA_BYTES_MAX,
    TIMEOUT_S_MAX,
    Expire,
    Transfer,
    TransferFlags,
    TransferRecord,
)

NS_PER_S = 1_000_000_000
# Plain ints: IntFlag arithmetic costs a Python call per operation on the hot path.
_DEBITS_LIMITED = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDITS_LIMITED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)
_LINKED = int(TransferFlags.LINKED)
_EXPIRED = int(TransferFlags.EXPIRED)
_CLIENT_FLAGS = int(CLIENT_TRANSFER_FLAGS)
_FLAGS = {value: TransferFlags(value) for value in range(32)}

Command = Transfer | Expire


@dataclass(slots=True)
class LedgerView:
    """What the shell loaded for one batch.

    ``transfers`` holds the existing records among the batch's transfer ids and pending ids;
    ``resolutions`` maps a pending id to the record that resolved it, for the pending ids the
    batch names; ``accounts`` holds every account named by the batch or by its pending records.
    Absence from these maps means "does not exist".
    """

    accounts: Mapping[int, AccountState]
    transfers: Mapping[int, TransferRecord]
    resolutions: Mapping[int, TransferRecord]
    assets: Mapping[str, Asset]


class TransferOutcome(NamedTuple):
    result: R
    record: TransferRecord | None = None  # the new record on ok, the first one on exists


@dataclass(slots=True)
class BatchOutcome:
    outcomes: list[list[TransferOutcome]]  # one list per request, one outcome per command
    records: list[TransferRecord] = field(default_factory=list)  # new records, in order
    accounts: dict[int, AccountState] = field(default_factory=dict)  # changed accounts, final


def needs_records(outcome: BatchOutcome) -> bool:
    """Whether ``outcome``, computed from a view without the batch's own records, may differ
    from the outcome with them. An ``ok`` cannot: the database refuses a second record with the
    same id and the shell runs the batch again. Any other result can (an existing id pre-empts
    a balance failure with ``exists``, and fails a linked chain that looked fine), so the shell
    reads the records and applies the batch again whenever anything is not ``ok``."""
    return any(o.result is not R.OK for results in outcome.outcomes for o in results)


def expire_id(pending_id: int) -> int:
    """The id of the void the ledger writes when the hold ``pending_id`` times out."""
    return derive_id("ledger.expire", pending_id)


def canonical_metadata(metadata: Mapping[str, object] | None) -> str | R | None:
    """Metadata as canonical JSON text, or the result code that refuses it."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        return R.METADATA_INVALID
    try:
        encoded = orjson.dumps(dict(metadata), option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return R.METADATA_INVALID
    if len(encoded) > METADATA_BYTES_MAX:
        return R.METADATA_TOO_LARGE
    return encoded.decode()


def _static_check(t: Transfer) -> R | None:
    """Everything that can be said of a transfer without looking at the ledger."""
    if type(t.id) is not int or not ID_MIN <= t.id <= ID_MAX:
        return R.ID_INVALID
    if type(t.flags) is not TransferFlags and type(t.flags) is not int:
        return R.FLAGS_INVALID
    flags = int(t.flags)
    if flags & ~_CLIENT_FLAGS:
        return R.FLAGS_INVALID
    kind = flags & (_PENDING | _POST | _VOID)
    if kind & (kind - 1):
        return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    resolving = bool(kind & (_POST | _VOID))
    for account_id, code in (
        (t.debit_account_id, R.DEBIT_ACCOUNT_ID_INVALID),
        (t.credit_account_id, R.CREDIT_ACCOUNT_ID_INVALID),
    ):
        if type(account_id) is not int:
            return code
        if resolving and account_id == 0:
            continue
        if not ID_MIN <= account_id <= ID_MAX:
            return code
    if t.debit_account_id != 0 and t.debit_account_id == t.credit_account_id:
        return R.ACCOUNTS_MUST_BE_DIFFERENT
    if type(t.pending_id) is not int:
        return R.PENDING_ID_INVALID
    if resolving:
        if not ID_MIN <= t.pending_id <= ID_MAX:
            return R.PENDING_ID_INVALID
        if t.pending_id == t.id:
            return R.PENDING_ID_MUST_BE_DIFFERENT
    elif t.pending_id != 0:
        return R.PENDING_ID_MUST_BE_ZERO
    if type(t.timeout_s) is not int:
        return R.TIMEOUT_INVALID
    if t.timeout_s != 0 and not kind & _PENDING:
        return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if not 0 <= t.timeout_s <= TIMEOUT_S_MAX:
        return R.TIMEOUT_INVALID
    if type(t.amount) is not int or not 0 <= t.amount <= AMOUNT_MAX:
        return R.AMOUNT_INVALID
    if t.amount == 0 and not resolving:
        return R.AMOUNT_INVALID
    if not (resolving and t.asset == "") and not is_valid_asset_code(t.asset):
        return R.ASSET_INVALID
    if type(t.code) is not int or not 0 <= t.code <= CODE_MAX:
        return R.CODE_INVALID
    return None


class _Batch:
    """Mutable working state of one batch; discarded after :func:`apply_batch` returns."""

    __slots__ = (
        "assets",
        "base_accounts",
        "counters",
        "new_records",
        "new_resolutions",
        "now",
        "prev_ts",
        "records",
        "resolutions",
        "undo",
    )

    def __init__(self, view: LedgerView, now_ns: int) -> None:
        self.base_accounts = view.accounts
        self.records = view.transfers
        self.resolutions = view.resolutions
        self.assets = view.assets
        # account id -> [debits_pending, debits_posted, credits_pending, credits_posted, last_ts]
        self.counters: dict[int, list[int]] = {}
        self.new_records: dict[int, TransferRecord] = {}
        self.new_resolutions: dict[int, TransferRecord] = {}
        self.now = now_ns
        self.prev_ts = 0
        # Undo log of the open linked chain: (account id, counters before) and new record ids.
        self.undo: list[tuple[int, list[int]] | int] | None = None

    def account(self, account_id: int) -> AccountState | None:
        return self.base_accounts.get(account_id)

    def live(self, state: AccountState) -> list[int]:
        c = self.counters.get(state.id)
        if c is None:
            b = state.balance
            c = [
                b.debits_pending,
                b.debits_posted,
                b.credits_pending,
                b.credits_posted,
                state.last_timestamp,
            ]
            self.counters[state.id] = c
        if self.undo is not None:
            self.undo.append((state.id, list(c)))
        return c

    def record(self, record_id: int) -> TransferRecord | None:
        found = self.new_records.get(record_id)
        return found if found is not None else self.records.get(record_id)

    def resolution(self, pending_id: int) -> TransferRecord | None:
        found = self.new_resolutions.get(pending_id)
        return found if found is not None else self.resolutions.get(pending_id)

    def timestamp(self, dr: list[int], cr: list[int]) -> int:
        ts = max(self.now, self.prev_ts + 1, dr[4] + 1, cr[4] + 1)
        self.prev_ts = ts
        return ts

    def add(self, record: TransferRecord) -> None:
        self.new_records[record.id] = record
        if record.pending_id:
            self.new_resolutions[record.pending_id] = record
        if self.undo is not None:
            self.undo.append(record.id)

    def begin_chain(self) -> None:
        self.undo = []

    def end_chain(self, commit: bool) -> None:
        undo, self.undo = self.undo, None
        if commit or not undo:
            return
        for entry in reversed(undo):
            if isinstance(entry, int):
                record = self.new_records.pop(entry)
                if record.pending_id:
                    self.new_resolutions.pop(record.pending_id, None)
            else:
                account_id, before = entry
                self.counters[account_id][:] = before


_new_tuple = tuple.__new__


def _balance(c: list[int]) -> Balance:
    # tuple.__new__ skips the named tuple's Python-level constructor: same object, a third of
    # the cost, and it is made twice per transfer.
    return _new_tuple(Balance, c[:4])


def _same_request(
    t: Transfer, metadata: str | None, e: TransferRecord, pending: TransferRecord | None
) -> bool:
    """Whether request ``t`` is the one that produced record ``e`` (fields left empty on a
    post or void of a hold take the hold's values, as when it was first applied)."""
    flags = int(t.flags)
    if flags != int(e.flags) & ~_EXPIRED or flags & _EXPIRED:
        return False
    if t.pending_id != e.pending_id or t.code != e.code or metadata != e.metadata:
        return False
    if flags & (_POST | _VOID):
        if t.debit_account_id not in (0, e.debit_account_id):
            return False
        if t.credit_account_id not in (0, e.credit_account_id):
            return False
        if t.asset not in ("", e.asset):
            return False
        full = pending.amount if pending is not None else e.amount
        requested = t.amount if t.amount != 0 else full
        return requested == e.amount
    return (
        t.debit_account_id == e.debit_account_id
        and t.credit_account_id == e.credit_account_id
        and t.amount == e.amount
        and t.asset == e.asset
        and t.timeout_s == e.timeout_s
    )


def _apply_transfer(b: _Batch, t: Transfer) -> TransferOutcome:
    failed = _static_check(t)
    if failed is not None:
        return TransferOutcome(failed)
    metadata = canonical_metadata(t.metadata)
    if isinstance(metadata, R):
        return TransferOutcome(metadata)
    flags = int(t.flags)
    if flags & (_POST | _VOID):
        return _resolve_pending(b, t, flags, metadata)

    dr_state = b.account(t.debit_account_id)
    if dr_state is None:
        return TransferOutcome(R.DEBIT_ACCOUNT_NOT_FOUND)
    cr_state = b.account(t.credit_account_id)
    if cr_state is None:
        return TransferOutcome(R.CREDIT_ACCOUNT_NOT_FOUND)
    if dr_state.asset != cr_state.asset:
        return TransferOutcome(R.ASSET_MISMATCH)
    if t.asset != dr_state.asset:
        return TransferOutcome(R.TRANSFER_ASSET_MISMATCH)
    existing = b.record(t.id)
    if existing is not None:
        if _same_request(t, metadata, existing, None):
            return TransferOutcome(R.EXISTS, existing)
        return TransferOutcome(R.EXISTS_WITH_DIFFERENT_FIELDS, existing)
    asset = b.assets.get(t.asset)
    amount = t.amount
    if asset is not None and asset.unit and amount != 1:
        return TransferOutcome(R.UNIT_ASSET_AMOUNT_MUST_BE_ONE)

    # live() also remembers the counters before any change when inside a linked chain.
    dr = b.live(dr_state)
    cr = b.live(cr_state)
    pending = bool(flags & _PENDING)
    if (dr[0] if pending else dr[1]) + amount > AMOUNT_MAX:
        return TransferOutcome(R.OVERFLOWS_DEBITS)
    if (cr[2] if pending else cr[3]) + amount > AMOUNT_MAX:
        return TransferOutcome(R.OVERFLOWS_CREDITS)
    if int(dr_state.flags) & _DEBITS_LIMITED and dr[0] + dr[1] + amount > dr[3]:
        return TransferOutcome(R.INSUFFICIENT_FUNDS)
    if int(cr_state.flags) & _CREDITS_LIMITED and cr[2] + cr[3] + amount > cr[1]:
        return TransferOutcome(R.EXCEEDS_DEBITS)

    ts = b.timestamp(dr, cr)
    if pending:
        dr[0] += amount
        cr[2] += amount
    else:
        dr[1] += amount
        cr[3] += amount
    dr[4] = cr[4] = ts
    record = TransferRecord(
        id=t.id,
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=amount,
        asset=t.asset,
        code=t.code,
        flags=_FLAGS[flags],
        pending_id=0,
        timeout_s=t.timeout_s,
        expires_at=ts + t.timeout_s * NS_PER_S if pending and t.timeout_s else 0,
        timestamp=ts,
        metadata=metadata,
        debit_after=_balance(dr),
        credit_after=_balance(cr),
    )
    b.add(record)
    return TransferOutcome(R.OK, record)


def _pending_status(b: _Batch, pending: TransferRecord) -> R | None:
    resolved = b.resolution(pending.id)
    if resolved is not None:
        if int(resolved.flags) & _EXPIRED:
            return R.PENDING_TRANSFER_EXPIRED
        if int(resolved.flags) & _POST:
            return R.PENDING_TRANSFER_ALREADY_POSTED
        return R.PENDING_TRANSFER_ALREADY_VOIDED
    return None


def _resolve_pending(b: _Batch, t: Transfer, flags: int, metadata: str | None) -> TransferOutcome:
    p = b.record(t.pending_id)
    if p is None:
        return TransferOutcome(R.PENDING_TRANSFER_NOT_FOUND)
    if not p.is_pending:
        return TransferOutcome(R.PENDING_TRANSFER_NOT_PENDING)
    if t.debit_account_id not in (0, p.debit_account_id):
        return TransferOutcome(R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT)
    if t.credit_account_id not in (0, p.credit_account_id):
        return TransferOutcome(R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT)
    if t.asset not in ("", p.asset):
        return TransferOutcome(R.PENDING_TRANSFER_HAS_DIFFERENT_ASSET)
    posting = bool(flags & _POST)
    if posting and t.amount > p.amount:
        return TransferOutcome(R.EXCEEDS_PENDING_TRANSFER_AMOUNT)
    if not posting and t.amount not in (0, p.amount):
        return TransferOutcome(R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT)
    existing = b.record(t.id)
    if existing is not None:
        if _same_request(t, metadata, existing, p):
            return TransferOutcome(R.EXISTS, existing)
        return TransferOutcome(R.EXISTS_WITH_DIFFERENT_FIELDS, existing)
    status = _pending_status(b, p)
    if status is not None:
        return TransferOutcome(status)
    if p.expires_at and b.now >= p.expires_at:
        return TransferOutcome(R.PENDING_TRANSFER_EXPIRED)
    amount = (t.amount or p.amount) if posting else p.amount
    record = _release(b, p, t.id, amount, flags, t.code, metadata)
    if record is None:  # the hold's accounts were not loaded: the shell broke its contract
        raise AssertionError(f"accounts of pending transfer {p.id:x} missing from the view")
    return TransferOutcome(R.OK, record)


def _release(
    b: _Batch,
    p: TransferRecord,
    record_id: int,
    amount: int,
    flags: int,
    code: int,
    metadata: str | None,
) -> TransferRecord | None:
    dr_state = b.account(p.debit_account_id)
    cr_state = b.account(p.credit_account_id)
    if dr_state is None or cr_state is None:
        return None
    dr = b.live(dr_state)
    cr = b.live(cr_state)
    ts = b.timestamp(dr, cr)
    dr[0] -= p.amount
    cr[2] -= p.amount
    if flags & _POST:
        dr[1] += amount
        cr[3] += amount
    dr[4] = cr[4] = ts
    record = TransferRecord(
        id=record_id,
        debit_account_id=p.debit_account_id,
        credit_account_id=p.credit_account_id,
        amount=amount,
        asset=p.asset,
        code=code,
        flags=_FLAGS[flags],
        pending_id=p.id,
        timeout_s=0,
        expires_at=0,
        timestamp=ts,
        metadata=metadata,
        debit_after=_balance(dr),
        credit_after=_balance(cr),
    )
    b.add(record)
    return record


def _apply_expire(b: _Batch, command: Expire) -> TransferOutcome:
    p = b.record(command.pending_id)
    if p is None:
        return TransferOutcome(R.PENDING_TRANSFER_NOT_FOUND)
    if not p.is_pending:
        return TransferOutcome(R.PENDING_TRANSFER_NOT_PENDING)
    status = _pending_status(b, p)
    if status is not None:
        return TransferOutcome(status)
    if not p.expires_at or b.now < p.expires_at:
        return TransferOutcome(R.PENDING_TRANSFER_NOT_EXPIRED)
    record = _release(b, p, expire_id(p.id), p.amount, _VOID | _EXPIRED, p.code, None)
    if record is None:
        raise AssertionError(f"accounts of pending transfer {p.id:x} missing from the view")
    return TransferOutcome(R.OK, record)


def _apply_one(b: _Batch, command: Command) -> TransferOutcome:
    if isinstance(command, Expire):
        return _apply_expire(b, command)
    if not isinstance(command, Transfer):
        return TransferOutcome(R.FLAGS_INVALID)
    return _apply_transfer(b, command)


def _linked(command: Command) -> bool:
    return (
        isinstance(command, Transfer)
        and type(command.flags) in (TransferFlags, int)
        and bool(int(command.flags) & _LINKED)
    )


def apply_batch(
    view: LedgerView, requests: Sequence[Sequence[Command]], now_ns: int
) -> BatchOutcome:
    """Apply ``requests`` in order at time ``now_ns``; see the module docstring."""
    b = _Batch(view, now_ns)
    outcomes: list[list[TransferOutcome]] = []
    for commands in requests:
        results: list[TransferOutcome] = []
        i = 0
        n = len(commands)
        while i < n:
            if not _linked(commands[i]):
                results.append(_apply_one(b, commands[i]))
                i += 1
                continue
            # A linked chain: commands[i .. j], j the first without LINKED (or the last).
            j = i
            while j < n - 1 and _linked(commands[j]):
                j += 1
            chain_open = _linked(commands[j])
            b.begin_chain()
            chain: list[TransferOutcome] = []
            failed_at = -1
            for k in range(i, j + 1):
                outcome = _apply_one(b, commands[k])
                chain.append(outcome)
                if not outcome.result.succeeded:
                    failed_at = k - i
                    break
            if failed_at < 0 and chain_open:
                failed_at = j - i
                chain[failed_at] = TransferOutcome(R.LINKED_EVENT_CHAIN_OPEN)
            if failed_at < 0:
                b.end_chain(commit=True)
                results.extend(chain)
            else:
                b.end_chain(commit=False)
                for k in range(j - i + 1):
                    if k == failed_at:
                        results.append(chain[k])
                    else:
                        results.append(TransferOutcome(R.LINKED_EVENT_FAILED))
            i = j + 1
        outcomes.append(results)

    changed: dict[int, AccountState] = {}
    for account_id, c in b.counters.items():
        base = b.base_accounts[account_id]
        balance = Balance(c[0], c[1], c[2], c[3])
        if balance != base.balance or c[4] != base.last_timestamp:
            changed[account_id] = AccountState(
                id=base.id,
                asset=base.asset,
                owner=base.owner,
                kind=base.kind,
                flags=base.flags,
                code=base.code,
                timestamp=base.timestamp,
                balance=balance,
                last_timestamp=c[4],
            )
    return BatchOutcome(outcomes, list(b.new_records.values()), changed)


@dataclass(frozen=True, slots=True)
class BatchKeys:
    """What a shell must load before :func:`apply_batch`: transfers by id (the batch's ids and
    the holds it names), resolutions by pending id, and accounts (to which the shell adds the
    accounts of the holds it found)."""

    transfer_ids: frozenset[int]
    pending_ids: frozenset[int]
    account_ids: frozenset[int]


def _valid(value: object) -> bool:
    return type(value) is int and ID_MIN <= value <= ID_MAX


def batch_keys(requests: Sequence[Sequence[Command]]) -> BatchKeys:
    transfer_ids: set[int] = set()
    pending_ids: set[int] = set()
    account_ids: set[int] = set()
    for commands in requests:
        for c in commands:
            if isinstance(c, Expire):
                if _valid(c.pending_id):
                    pending_ids.add(c.pending_id)
                    transfer_ids.add(c.pending_id)
                continue
            if not isinstance(c, Transfer):
                continue
            if _valid(c.id):
                transfer_ids.add(c.id)
            if _valid(c.pending_id):
                pending_ids.add(c.pending_id)
                transfer_ids.add(c.pending_id)
            if _valid(c.debit_account_id):
                account_ids.add(c.debit_account_id)
            if _valid(c.credit_account_id):
                account_ids.add(c.credit_account_id)
    return BatchKeys(frozenset(transfer_ids), frozenset(pending_ids), frozenset(account_ids))


# Account creation ---------------------------------------------------------------------------


def check_account(a: Account) -> CreateAccountResult | None:
    """Everything that can be said of an account request without looking at the ledger."""
    if type(a.id) is not int or not ID_MIN <= a.id <= ID_MAX:
        return CreateAccountResult.ID_INVALID
    if type(a.flags) not in (AccountFlags, int) or int(a.flags) & ~int(ACCOUNT_FLAGS_ALL):
        return CreateAccountResult.FLAGS_INVALID
    if a.flags & _DEBITS_LIMITED and a.flags & _CREDITS_LIMITED:
        return CreateAccountResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if not is_valid_asset_code(a.asset):
        return CreateAccountResult.ASSET_INVALID
    if not isinstance(a.owner, str) or not 0 < len(a.owner) <= OWNER_CHARS_MAX:
        return CreateAccountResult.OWNER_INVALID
    if not a.owner.isprintable():
        return CreateAccountResult.OWNER_INVALID
    if not is_valid_kind(a.kind):
        return CreateAccountResult.KIND_INVALID
    if type(a.code) is not int or not 0 <= a.code <= CODE_MAX:
        return CreateAccountResult.CODE_INVALID
    return None


@dataclass(frozen=True, slots=True)
class AccountPlan:
    results: list[CreateAccountResult]
    new: list[Account]  # to insert, in order


def plan_accounts(
    requests: Sequence[Account],
    existing: Mapping[int, AccountState],
    assets: Mapping[str, Asset],
    now_ns: int,
) -> AccountPlan:
    """Decide each account request against the accounts that exist; linked chains fail whole."""
    del now_ns  # accounts take the time of the transaction that writes them
    results: list[CreateAccountResult] = []
    new: dict[int, Account] = {}
    chain_start: int | None = None
    chain_new: list[int] = []
    failed = False
    for index, a in enumerate(requests):
        linked = type(a.flags) in (AccountFlags, int) and bool(int(a.flags) & AccountFlags.LINKED)
        if chain_start is None and linked:
            chain_start, chain_new, failed = index, [], False
        result = (
            CreateAccountResult.LINKED_EVENT_FAILED
            if chain_start is not None and failed
            else check_account(a)
        )
        if result is None and a.asset not in assets:
            result = CreateAccountResult.ASSET_NOT_FOUND
        if result is None:
            prior = existing.get(a.id)
            pending = new.get(a.id)
            if prior is not None:
                same = same_identity(a, prior)
            elif pending is not None:
                same = (pending.asset, pending.owner, pending.kind, pending.code) == (
                    a.asset,
                    a.owner,
                    a.kind,
                    a.code,
                ) and int(pending.flags) & ~1 == int(a.flags) & ~1
            else:
                same = None
            if same is None:
                new[a.id] = a
                if chain_start is not None:
                    chain_new.append(a.id)
                result = CreateAccountResult.OK
            else:
                result = (
                    CreateAccountResult.EXISTS
                    if same
                    else CreateAccountResult.EXISTS_WITH_DIFFERENT_FIELDS
                )
        results.append(result)
        if chain_start is not None and not result.succeeded:
            failed = True
        last_of_request = index == len(requests) - 1
        if chain_start is not None and (not linked or last_of_request):
            if linked and last_of_request and not failed:
                results[index] = CreateAccountResult.LINKED_EVENT_CHAIN_OPEN
                failed = True
            if failed:
                for k in range(chain_start, index + 1):
                    if (
                        results[k].succeeded
                        or results[k] == CreateAccountResult.LINKED_EVENT_FAILED
                    ):
                        results[k] = CreateAccountResult.LINKED_EVENT_FAILED
                for account_id in chain_new:
                    new.pop(account_id, None)
            chain_start = None
    return AccountPlan(results, list(new.values()))
