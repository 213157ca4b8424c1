"""A Hypothesis stateful model of the ledger, checked against the real stores.

The model below is written from the specification (docs/ARCHITECTURE.md, ledger/result.py),
not from ``ledger.posting``: plain dictionaries, one rule at a time. Hypothesis drives the real
ledger (SQLite, and PostgreSQL) and the model with the same random steps (create accounts,
transfer, hold, post, void, let time pass, expire, retry an id with the same or changed fields,
linked batches with one bad member) and requires the same result code for every transfer and
the same four counters for every account after every step; at the end reconciliation must be
clean. A failure prints the shortest sequence of steps that shows it.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ledger import (
    Account,
    AccountFlags,
    CreateTransferResult,
    Ledger,
    LedgerStore,
    Transfer,
    TransferFlags,
    reconcile,
)

from .conftest import FakeClock, drop_postgres, open_postgres, open_sqlite

R = CreateTransferResult
LIMITED_DEBITS = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
LIMITED_CREDITS = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
ACCOUNT_IDS = [1, 2, 3, 4, 5, 6]
MISSING = 99
TRANSFER_IDS = list(range(1, 25))


@dataclass
class MAccount:
    asset: str
    flags: int
    counters: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # dp, dpo, cp, cpo


@dataclass
class MTransfer:
    kind: str  # plain, pending, post, void, expire
    debit: int
    credit: int
    amount: int
    asset: str
    pending_id: int
    timeout_s: int
    expires_at: int = 0
    status: str = ""  # for holds: pending, posted, voided, expired


@dataclass
class Model:
    accounts: dict[int, MAccount] = field(default_factory=dict)
    transfers: dict[int, MTransfer] = field(default_factory=dict)


def request_kind(t: Transfer) -> str:
    if t.flags & TransferFlags.PENDING:
        return "pending"
    if t.flags & TransferFlags.POST_PENDING:
        return "post"
    if t.flags & TransferFlags.VOID_PENDING:
        return "void"
    return "plain"


def model_apply(m: Model, t: Transfer, now_ns: int, timestamp: int | None) -> R:
    """One transfer against the model, in the documented order of precedence."""
    kind = request_kind(t)
    if kind in ("plain", "pending"):
        if t.debit_account_id == t.credit_account_id:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        if t.amount <= 0:
            return R.AMOUNT_INVALID
        dr = m.accounts.get(t.debit_account_id)
        if dr is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        cr = m.accounts.get(t.credit_account_id)
        if cr is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if dr.asset != cr.asset:
            return R.ASSET_MISMATCH
        if t.asset != dr.asset:
            return R.TRANSFER_ASSET_MISMATCH
        existing = m.transfers.get(t.id)
        if existing is not None:
            same = (
                existing.kind,
                existing.debit,
                existing.credit,
                existing.amount,
                existing.asset,
                existing.timeout_s,
            ) == (kind, t.debit_account_id, t.credit_account_id, t.amount, t.asset, t.timeout_s)
            return R.EXISTS if same else R.EXISTS_WITH_DIFFERENT_FIELDS
        d, c = dr.counters, cr.counters
        if dr.flags & LIMITED_DEBITS and d[0] + d[1] + t.amount > d[3]:
            return R.INSUFFICIENT_FUNDS
        if cr.flags & LIMITED_CREDITS and c[2] + c[3] + t.amount > c[1]:
            return R.EXCEEDS_DEBITS
        if kind == "pending":
            d[0] += t.amount
            c[2] += t.amount
        else:
            d[1] += t.amount
            c[3] += t.amount
        # The real ledger's time for this record (absent when it refused the transfer, and then
        # the result codes differ anyway).
        timestamp = timestamp if timestamp is not None else now_ns
        m.transfers[t.id] = MTransfer(
            kind,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            t.asset,
            0,
            t.timeout_s,
            expires_at=timestamp + t.timeout_s * 10**9 if t.timeout_s else 0,
            status="pending" if kind == "pending" else "",
        )
        return R.OK
    # post or void
    if t.pending_id == t.id:
        return R.PENDING_ID_MUST_BE_DIFFERENT
    hold = m.transfers.get(t.pending_id)
    if hold is None:
        return R.PENDING_TRANSFER_NOT_FOUND
    if hold.kind != "pending":
        return R.PENDING_TRANSFER_NOT_PENDING
    if kind == "post" and t.amount > hold.amount:
        return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
    if kind == "void" and t.amount not in (0, hold.amount):
        return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    existing = m.transfers.get(t.id)
    if existing is not None:
        requested = t.amount or hold.amount
        same = (existing.kind, existing.pending_id, existing.amount) == (
            kind,
            t.pending_id,
            requested,
        )
        return R.EXISTS if same else R.EXISTS_WITH_DIFFERENT_FIELDS
    if hold.status == "posted":
        return R.PENDING_TRANSFER_ALREADY_POSTED
    if hold.status == "voided":
        return R.PENDING_TRANSFER_ALREADY_VOIDED
    if hold.status == "expired" or (hold.expires_at and now_ns >= hold.expires_at):
        return R.PENDING_TRANSFER_EXPIRED
    amount = (t.amount or hold.amount) if kind == "post" else hold.amount
    release(m, hold, amount if kind == "post" else 0)
    hold.status = "posted" if kind == "post" else "voided"
    m.transfers[t.id] = MTransfer(
        kind, hold.debit, hold.credit, amount, hold.asset, t.pending_id, 0
    )
    return R.OK


def release(m: Model, hold: MTransfer, posted: int) -> None:
    d = m.accounts[hold.debit].counters
    c = m.accounts[hold.credit].counters
    d[0] -= hold.amount
    c[2] -= hold.amount
    d[1] += posted
    c[3] += posted


def model_request(
    m: Model, transfers: list[Transfer], now_ns: int, stamps: list[int | None]
) -> list[R]:
    """A request: linked chains apply whole or not at all; a chain open at the end fails."""
    out: list[R] = []
    i = 0
    while i < len(transfers):
        j = i
        while j < len(transfers) - 1 and transfers[j].flags & TransferFlags.LINKED:
            j += 1
        chain = transfers[i : j + 1]
        if len(chain) == 1 and not chain[0].flags & TransferFlags.LINKED:
            out.append(model_apply(m, chain[0], now_ns, stamps[i]))
            i = j + 1
            continue
        trial = copy.deepcopy(m)
        codes: list[R] = []
        for k, t in enumerate(chain):
            code = model_apply(trial, t, now_ns, stamps[i + k])
            codes.append(code)
            if not code.succeeded:
                break
        if all(c.succeeded for c in codes) and chain[-1].flags & TransferFlags.LINKED:
            codes[-1] = R.LINKED_EVENT_CHAIN_OPEN
        if all(c.succeeded for c in codes):
            m.accounts, m.transfers = trial.accounts, trial.transfers
            out += codes
        else:
            failed = len(codes) - 1
            out += [
                codes[failed] if k == failed else R.LINKED_EVENT_FAILED for k in range(len(chain))
            ]
        i = j + 1
    return out


account_ids = st.sampled_from([*ACCOUNT_IDS, MISSING])
transfer_ids = st.sampled_from(TRANSFER_IDS)
amounts = st.sampled_from([0, 1, 5, 50, 100, 250, 1000])


@st.composite
def transfers(draw: st.DrawFn) -> Transfer:
    kind = draw(st.sampled_from(["plain", "plain", "pending", "post", "void"]))
    linked = (
        TransferFlags.LINKED if draw(st.booleans()) and draw(st.booleans()) else TransferFlags.NONE
    )
    if kind in ("plain", "pending"):
        flags = TransferFlags.PENDING if kind == "pending" else TransferFlags.NONE
        return Transfer(
            id=draw(transfer_ids),
            debit_account_id=draw(account_ids),
            credit_account_id=draw(account_ids),
            amount=draw(amounts),
            asset=draw(st.sampled_from(["USD", "USD", "USD", "EUR"])),
            flags=flags | linked,
            timeout_s=draw(st.sampled_from([0, 1, 3])) if kind == "pending" else 0,
        )
    flags = TransferFlags.POST_PENDING if kind == "post" else TransferFlags.VOID_PENDING
    return Transfer(
        id=draw(transfer_ids),
        amount=draw(st.sampled_from([0, 0, 1, 50, 100])),
        flags=flags | linked,
        pending_id=draw(transfer_ids),
    )


class LedgerMachine(RuleBasedStateMachine):
    backend = "sqlite"
    postgres_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.model = Model()
        self.tmp = tempfile.TemporaryDirectory()
        self.store: LedgerStore = self.run(self.open())
        self.ledger = Ledger(self.store, clock_ns=self.clock, expire_on_timer=False)
        self.run(self._start())

    async def _start(self) -> None:
        self.ledger.start()

    async def open(self) -> LedgerStore:
        if self.backend == "postgres":
            return await open_postgres(self.postgres_url)
        return await open_sqlite(Path(self.tmp.name) / "ledger.sqlite3")

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @rule(
        account_id=st.sampled_from(ACCOUNT_IDS),
        asset=st.sampled_from(["USD", "USD", "EUR"]),
        limit=st.sampled_from([AccountFlags.NONE, LIMITED_DEBITS, LIMITED_DEBITS, LIMITED_CREDITS]),
    )
    def create_account(self, account_id: int, asset: str, limit: AccountFlags) -> None:
        [result] = self.run(
            self.ledger.create_accounts([Account(account_id, asset, "owner", "user", limit)])
        )
        existing = self.model.accounts.get(account_id)
        if existing is None:
            assert result.value == "ok"
            self.model.accounts[account_id] = MAccount(asset, int(limit))
        else:
            same = (existing.asset, existing.flags) == (asset, int(limit))
            assert result.value == ("exists" if same else "exists_with_different_fields")

    @rule(request=st.lists(transfers(), min_size=1, max_size=4))
    def transfer(self, request: list[Transfer]) -> None:
        outcomes = self.run(self.ledger.create_transfers(request))
        stamps = [o.record.timestamp if o.result is R.OK and o.record else None for o in outcomes]
        for stamp in stamps:
            assert stamp is None or self.clock.now_ns <= stamp < self.clock.now_ns + 10**6
        expected = model_request(self.model, request, self.clock.now_ns, stamps)
        assert [o.result for o in outcomes] == expected, request
        for o in outcomes:
            event(f"result: {o.result.value}")

    @rule(seconds=st.sampled_from([1, 2]))
    def let_time_pass(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def expire(self) -> None:
        voided = self.run(self.ledger.expire_due())
        due = [
            t
            for t in self.model.transfers.values()
            if t.kind == "pending"
            and t.status == "pending"
            and t.expires_at
            and self.clock.now_ns >= t.expires_at
        ]
        for hold in due:
            release(self.model, hold, 0)
            hold.status = "expired"
        assert voided == len(due)

    @invariant()
    def balances_agree(self) -> None:
        states = self.run(self.ledger.lookup_accounts(ACCOUNT_IDS))
        real = {a.id: list(a.balance.as_tuple()) for a in states}
        assert real == {i: a.counters for i, a in self.model.accounts.items()}

    def teardown(self) -> None:
        try:
            report = self.run(reconcile(self.store))
            assert report.ok, report.to_text()
        finally:
            self.run(self.ledger.close())
            if self.backend == "postgres":
                self.run(drop_postgres(self.postgres_url, self.store))  # type: ignore[arg-type]
            else:
                self.run(self.store.close())
            self.loop.close()
            self.tmp.cleanup()


MODEL_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_model_agrees_with_sqlite() -> None:
    class Machine(LedgerMachine):
        backend = "sqlite"

    run_state_machine_as_test(Machine, settings=MODEL_SETTINGS)


@pytest.mark.postgres
def test_model_agrees_with_postgres(postgres_url: str) -> None:
    class Machine(LedgerMachine):
        backend = "postgres"

    Machine.postgres_url = postgres_url
    run_state_machine_as_test(Machine, settings=MODEL_SETTINGS)


def test_model_catches_a_wrong_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model test is not vacuous: break one posting rule and it fails."""
    import ledger.posting as posting

    monkeypatch.setattr(posting, "_DEBITS_LIMITED", 0)  # stop enforcing the balance limit

    class Machine(LedgerMachine):
        backend = "sqlite"

    quick = settings(
        MODEL_SETTINGS,
        max_examples=200,
        database=None,
        phases=[Phase.generate],  # no shrinking: we only need to see it fail
        report_multiple_bugs=False,
    )
    with pytest.raises(AssertionError):
        run_state_machine_as_test(Machine, settings=quick)
