"""Reconciliation: recompute every balance from the transfers and compare; never patch.

:class:`Reconciler` is pure: feed it every account and every transfer record (in any order),
then :meth:`Reconciler.report`. It checks that

- each account's four counters equal the sums recomputed from the records that touch it;
- each account's counters equal the balances-after carried by its latest record;
- for every asset the balances of all accounts sum to zero (posted and pending);
- every record names existing accounts of its own asset, and every post or void names an
  existing hold of the same accounts;
- every flagged account is within its limit.

A difference is a :class:`Problem` naming the accounts or transfers involved. ``reconcile``
reads a store page by page and returns the report; ``leetgaming reconcile`` prints it and exits
non-zero when it is not clean.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .account import AccountFlags, AccountState, Balance
from .ids import id_to_text
from .store import LedgerStore
from .transfer import TransferFlags, TransferRecord

PROBLEMS_SHOWN_MAX = 1000


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    detail: str
    account_id: int | None = None
    transfer_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        if self.account_id is not None:
            out["account_id"] = id_to_text(self.account_id)
        if self.transfer_id is not None:
            out["transfer_id"] = id_to_text(self.transfer_id)
        return out


@dataclass(slots=True)
class Report:
    accounts: int = 0
    transfers: int = 0
    assets: dict[str, dict[str, int]] = field(default_factory=dict)  # asset -> sums
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accounts": self.accounts,
            "transfers": self.transfers,
            "assets": {
                code: {k: str(v) for k, v in sums.items()} for code, sums in self.assets.items()
            },
            "problems_total": self.problems_total,
            "problems": [p.to_json() for p in self.problems],
        }

    def to_text(self) -> str:
        lines = [
            f"reconciliation: {'clean' if self.ok else 'DIFFERENCES FOUND'}",
            f"accounts: {self.accounts}  transfers: {self.transfers}",
        ]
        for code, sums in sorted(self.assets.items()):
            lines.append(
                f"  {code}: posted net {sums['posted_net']}, pending net {sums['pending_net']}"
                f" over {sums['accounts']} accounts"
            )
        if not self.ok:
            lines.append(f"problems: {self.problems_total}")
            for p in self.problems:
                who = []
                if p.account_id is not None:
                    who.append(f"account {id_to_text(p.account_id)}")
                if p.transfer_id is not None:
                    who.append(f"transfer {id_to_text(p.transfer_id)}")
                lines.append(f"  [{p.kind}] {', '.join(who)}: {p.detail}")
        return "\n".join(lines)


class Reconciler:
    def __init__(self) -> None:
        self._accounts: dict[int, AccountState] = {}
        # account id -> [debits_pending, debits_posted, credits_pending, credits_posted]
        self._sums: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._latest: dict[int, tuple[int, Balance]] = {}
        self._holds: dict[int, TransferRecord] = {}
        self._resolutions: list[TransferRecord] = []
        self._records: list[tuple[int, int, int, str]] = []  # id, debit, credit, asset
        self._transfers = 0

    def add_account(self, account: AccountState) -> None:
        self._accounts[account.id] = account

    def add_transfer(self, r: TransferRecord) -> None:
        self._transfers += 1
        self._records.append((r.id, r.debit_account_id, r.credit_account_id, r.asset))
        for account_id, after in (
            (r.debit_account_id, r.debit_after),
            (r.credit_account_id, r.credit_after),
        ):
            latest = self._latest.get(account_id)
            if latest is None or r.timestamp > latest[0]:
                self._latest[account_id] = (r.timestamp, after)
        dr = self._sums[r.debit_account_id]
        cr = self._sums[r.credit_account_id]
        if r.flags & TransferFlags.PENDING:
            self._holds[r.id] = r
            dr[0] += r.amount
            cr[2] += r.amount
        elif r.flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING):
            self._resolutions.append(r)
            if r.flags & TransferFlags.POST_PENDING:
                dr[1] += r.amount
                cr[3] += r.amount
        else:
            dr[1] += r.amount
            cr[3] += r.amount

    def report(self) -> Report:
        report = Report(accounts=len(self._accounts), transfers=self._transfers)

        def problem(p: Problem) -> None:
            report.problems_total += 1
            if len(report.problems) < PROBLEMS_SHOWN_MAX:
                report.problems.append(p)

        for r in self._resolutions:  # a resolved hold releases its whole amount
            hold = self._holds.get(r.pending_id)
            if hold is None:
                problem(
                    Problem(
                        "orphan_resolution", "resolves a hold that does not exist", transfer_id=r.id
                    )
                )
                continue
            if (hold.debit_account_id, hold.credit_account_id) != (
                r.debit_account_id,
                r.credit_account_id,
            ):
                problem(
                    Problem(
                        "resolution_accounts", "accounts differ from its hold's", transfer_id=r.id
                    )
                )
            if r.flags & TransferFlags.POST_PENDING and r.amount > hold.amount:
                problem(Problem("resolution_amount", "posts more than its hold", transfer_id=r.id))
            self._sums[r.debit_account_id][0] -= hold.amount
            self._sums[r.credit_account_id][2] -= hold.amount

        for transfer_id, debit, credit, asset in self._records:
            for account_id in (debit, credit):
                account = self._accounts.get(account_id)
                if account is None:
                    problem(
                        Problem(
                            "missing_account",
                            "named by a transfer but not found",
                            account_id,
                            transfer_id,
                        )
                    )
                elif account.asset != asset:
                    problem(
                        Problem(
                            "asset_mismatch",
                            f"transfer in {asset}, account holds {account.asset}",
                            account_id,
                            transfer_id,
                        )
                    )

        totals: dict[str, dict[str, int]] = {}
        for account in self._accounts.values():
            b = account.balance
            sums = totals.setdefault(
                account.asset, {"posted_net": 0, "pending_net": 0, "accounts": 0}
            )
            sums["posted_net"] += b.debits_posted - b.credits_posted
            sums["pending_net"] += b.debits_pending - b.credits_pending
            sums["accounts"] += 1
            expected = Balance(*self._sums.get(account.id, [0, 0, 0, 0]))
            if expected != b:
                problem(
                    Problem(
                        "balance_differs",
                        f"stored {b.as_tuple()} but the transfers sum to {expected.as_tuple()} "
                        "(debits pending, debits posted, credits pending, credits posted)",
                        account.id,
                    )
                )
            latest = self._latest.get(account.id)
            if latest is not None and latest[1] != b:
                problem(
                    Problem(
                        "latest_balance_differs",
                        f"stored {b.as_tuple()} but its latest transfer left {latest[1].as_tuple()}",
                        account.id,
                    )
                )
            if account.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and (
                b.debits_pending + b.debits_posted > b.credits_posted
            ):
                problem(Problem("limit_exceeded", "debits exceed credits", account.id))
            if account.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and (
                b.credits_pending + b.credits_posted > b.debits_posted
            ):
                problem(Problem("limit_exceeded", "credits exceed debits", account.id))
        for code, sums in totals.items():
            if sums["posted_net"] != 0 or sums["pending_net"] != 0:
                problem(
                    Problem(
                        "asset_not_zero",
                        f"{code}: balances sum to {sums['posted_net']} posted, "
                        f"{sums['pending_net']} pending (must be 0)",
                    )
                )
        report.assets = totals
        return report


async def reconcile(store: LedgerStore) -> Report:
    """Read every account and transfer of ``store`` and reconcile them. Writes nothing.

    Run it on a quiet ledger (or accept that transfers committed during the scan may show up as
    differences); it reads accounts after transfers so that a transfer committed in between
    shows as a difference rather than hiding one.
    """
    reconciler = Reconciler()
    async for record in store.scan_transfers():
        reconciler.add_transfer(record)
    async for account in store.scan_accounts():
        reconciler.add_account(account)
    return reconciler.report()
