"""Tournaments: the flow that crosses domains (the tournament core, the ledger, the match
lifecycle, the hub), so it lives here.

Every change is a command of :mod:`matchmaking.tournament` run in one database transaction
that holds the tournament's row: the new document and the command's effects (an outbox, one
row per effect) are written together, or nothing is. Then the outbox is carried out in order
and each row deleted once done. A crash anywhere leaves rows that the next drain (on start,
and every second by the sweeper's lease holder) carries out again; every effect is idempotent:

- ledger transfers have ids derived from what they are (``tournament.entry`` of a team's
  registration attempt and player, ``tournament.prize`` of a place and player, ...), so a
  repeat answers ``exists`` and moves nothing twice;
- matches have ids derived from the bracket match and its attempt (``t.<id>.<match>.<n>``), and
  starting one twice starts it once; a result for an attempt no longer on counts for nothing;
- publications carry the tournament's version: a client ignores one it has seen.

Spectators: ``tournament:<id>`` carries ``tournament.delta`` publications, each the changes
from the tournament's snapshot at version ``base`` to the one at ``version`` (``set``: [path,
value]; ``unset``: paths; a path is a top-level key, or a key and an entry of ``entries`` or
``matches``). A client subscribes, fetches the snapshot (``GET /v1/tournaments/{id}/bracket``,
which carries ``version``), then applies each delta whose ``base`` is its version, ignores one
whose ``version`` it has, and fetches the snapshot again when a ``base`` is ahead of it (a delta
it missed): it then holds what a fresh snapshot says. A delta is published right after its
command commits (spectators wait for nothing else). Payouts go to the winners' ``user:``
channels and the tournament channel.

Match outcomes come in bursts (a Swiss round ends with hundreds of results): they are queued
per tournament and applied together, one command for whatever arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from ledger import CreateTransferResult, Ledger, Transfer, TransferFlags, derive_id
from leetgaming import tournament_store
from leetgaming.audit import AuditLog
from leetgaming.db import Conn, Database
from leetgaming.play import AfterCommit, Play, PublishMany, publish_all
from matchmaking import formats, prizes, swiss
from matchmaking import tournament as tm
from matchmaking.match import Match
from matchmaking.queues import mode_of
from wallet import accounts, corrections
from wallet.accounts import Code

log = logging.getLogger("leetgaming.tournaments")
# The tournaments whose outbox this task is carrying out: a command run from there (a hold's
# answer, a match withdrawn) leaves its rows to that drain instead of waiting for it.
_DRAINING: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "draining", default=frozenset()
)

Publish = Callable[[str, object], Awaitable[int]]
Step = Callable[[tm.Tournament], tuple[tm.Tournament, list[tm.Effect]]]

MIGRATIONS: Final = [
    f"""
    CREATE TABLE tournaments (
        id TEXT PRIMARY KEY,
        phase TEXT NOT NULL,
        version INTEGER NOT NULL,
        entries_version INTEGER NOT NULL DEFAULT 0,
        created_s DOUBLE PRECISION NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX tournaments_by_phase ON tournaments (phase, created_s);
    CREATE TABLE tournament_outbox (
        tournament TEXT NOT NULL,
        seq BIGINT NOT NULL,
        effect TEXT NOT NULL,
        PRIMARY KEY (tournament, seq)
    );
    CREATE TABLE tournament_players (
        tournament TEXT NOT NULL,
        player TEXT NOT NULL,
        team TEXT NOT NULL,
        PRIMARY KEY (tournament, player)
    );
    CREATE INDEX tournament_players_by_player ON tournament_players (player, tournament);
    {tournament_store.MIGRATION.strip()};
    CREATE TABLE audit_log (
        at_s DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    )
    """,
    # The audit log became one for the whole product (leetgaming.audit, which migrates first):
    # the rows written here before are copied there, their detail text kept as {"text": ...}.
    """
    INSERT INTO audit_entries (id, at_ns, actor, action, subject, detail)
    SELECT 'tournaments:' || CAST(CAST(at_s * 1000000000 AS BIGINT) AS TEXT) || ':' || action
           || ':' || target,
           CAST(at_s * 1000000000 AS BIGINT), actor, action, target,
           '{"text":"' || replace(replace(detail, '\\', '\\\\'), '"', '\\"') || '"}'
    FROM audit_log;
    DROP TABLE audit_log
    """,
]
HOLD_ANSWER_WAIT_S: Final = 5.0  # a registration waits this long for its fee's hold
DRAIN_ROUNDS_MAX: Final = 20  # follow-up commands (a hold's answer) add rows; never loop forever
LIST_ROWS_MAX: Final = 100
OUTBOX_ROWS_PER_VERSION: Final = 100_000
SNAPSHOTS_CACHED_MAX: Final = 64
STOP_DRAIN_S: Final = 5.0
# The order an outbox round is carried out in (ties by row number): the ledger, the
# matches, then players' events.
_CARRY_ORDER: Final = {
    "hold": 0,
    "void": 0,
    "post": 0,
    "start_pool": 0,
    "payout": 0,
    "repayout": 0,
    "start_match": 1,
    "cancel_match": 1,
    "event": 2,
}


class TournamentNotFound(Exception):
    pass


def match_id_of(tournament: str, match: str, attempt: int) -> str:
    """The matchmaking match of a bracket match's attempt."""
    return f"t.{tournament}.{match}.{attempt}"


def parse_match_id(match_id: str) -> tuple[str, str, int] | None:
    parts = match_id.split(".")
    if len(parts) != 4 or parts[0] != "t" or not parts[3].isdigit():
        return None
    return parts[1], parts[2], int(parts[3])


# pg_try_advisory_xact_lock(class, key): the class says "a tournament's outbox" (any int4 of
# our own), the key is the tournament's id hashed to an int4
_OUTBOX_LOCK_CLASS: Final = 0x1EE7_0B0


def _lock_key(tournament_id: str) -> int:
    return int.from_bytes(hashlib.sha256(tournament_id.encode()).digest()[:4], "big", signed=True)


class Tournaments:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        play: Play,
        publish: Publish,
        clock: Callable[[], float],
        publish_many: PublishMany | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.publish_many = publish_many
        self.audit = audit or AuditLog(db, lambda: int(self.clock() * 1_000_000_000))
        self.db = db
        self.ledger = ledger
        self.play = play
        self.publish = publish
        self.clock = clock
        # with a spectator delay, deltas go to referees at once and to the public later
        self.feed: Any = None  # leetgaming.spectators.SpectatorFeed
        self._draining: dict[str, asyncio.Lock] = {}
        self._batching: dict[str, asyncio.Lock] = {}
        self._drain_scheduled: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._queued: dict[str, list[Step]] = {}
        self._snapshots: collections.OrderedDict[str, tuple[tm.Tournament, dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self._tournaments: collections.OrderedDict[str, tm.Tournament] = collections.OrderedDict()
        # Fault injection for the crash tests: called after each outbox row is carried out
        self.after_effect: Callable[[str, dict[str, Any]], None] | None = None

    async def start(self) -> None:
        await self.audit.start()
        await self.db.migrate("tournaments", MIGRATIONS)
        self.play.on_settled.append(self._settled)
        self.play.on_failed.append(self._failed)

    # Commands -------------------------------------------------------------------------------

    async def create(self, admin: str, config: tm.Config) -> tm.Tournament:
        tournament = tm.create(f"{secrets.token_hex(6)}", config, self.clock())
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO tournaments (id, phase, version, created_s, document) "
                "VALUES (?, ?, ?, ?, ?)",
                tournament.id,
                str(tournament.phase),
                tournament.version,
                self.clock(),
                _dumps(tm.to_document(tournament, whole=False)),
            )
            await self._audit(tx, admin, "tournament.create", tournament.id, config.name)
        return tournament

    async def command(
        self,
        tournament_id: str,
        step: Step,
        actor: tuple[str, str] | None = None,
        drain: bool = True,
    ) -> tm.Tournament:
        """Run ``step`` on the tournament holding its row; write the result and its outbox;
        publish the spectators' delta; carry the outbox out (unless ``drain`` is False).
        ``actor``: (admin, action) to write to the audit log."""
        async with self.db.transaction() as tx:
            applied = await self._apply(tx, tournament_id, step, actor)
        if isinstance(applied, tm.Tournament):
            return applied
        after = await self._applied(applied)
        if drain:
            await self._drain_unless_draining(tournament_id)
        return after

    async def _apply(
        self, tx: Conn, tournament_id: str, step: Step, actor: tuple[str, str] | None = None
    ) -> _Applied | tm.Tournament:
        """``step`` on the tournament in ``tx``, written with its outbox; the tournament
        itself when the step changed nothing. Nothing is cached or published before the
        transaction commits: then :meth:`_applied`."""
        before = await self._load(tournament_id, tx, lock=True)
        after, effects = step(before)
        if after is before and not effects:  # the core returns its input when unchanged
            return before
        changed = tournament_store.changes(before, after)
        await tournament_store.write(tx, before, after, changed)
        # events for nobody's channel (the tournament's gets the delta) are not kept
        rows = [
            encode_effect(e, after.config.queue)
            for e in effects
            if not (isinstance(e, tm.Event) and not e.to)
        ]
        await self._append(tx, after.id, after.version, rows)
        await self._sync_players(tx, before, after)
        if actor is not None:
            await self._audit(tx, actor[0], actor[1], after.id, "")
        return _Applied(before, after, changed.matches)

    async def _applied(self, applied: _Applied) -> tm.Tournament:
        """Once the command has committed: remembered, and the delta published at once, not
        through the outbox: it is what spectators wait for. Lost in a crash right here, the
        next delta's ``base`` tells clients to fetch a snapshot."""
        before, after = applied.before, applied.after
        self._remember(after)
        earlier = self._snapshot(before)
        delta = diff(earlier, self._snapshot(after, (before, earlier), applied.matches))
        if after.version != before.version:
            # a version nobody sees change still gets its (empty) delta: the next one's
            # ``base`` is this version, and a hole would send every spectator for a snapshot
            delta = delta or {"set": [], "unset": []}
            body = {
                "kind": "tournament.delta",
                "tournament": after.id,
                "base": before.version,
                "version": after.version,
                **delta,
            }
            delay = after.config.spectator_delay_s
            if delay > 0 and self.feed is not None:
                # referees now; the public later, with the snapshot it then holds
                await self.publish(referee_channel(after.id), body)
                await self.feed.later(
                    f"tournament:{after.id}",
                    [body],
                    delay,
                    snapshot={"bracket": self._snapshot(after), "standings": standings(after)},
                    baseline={"bracket": earlier, "standings": standings(before)},
                )
            else:
                await self.publish(f"tournament:{after.id}", body)
        return after

    async def public_view(self, t: tm.Tournament) -> tuple[dict[str, Any], list[Any]]:
        """The bracket snapshot and standings the public may see: with a spectator delay,
        those its delayed deltas have reached; else the current ones."""
        if t.config.spectator_delay_s > 0 and self.feed is not None:
            held = await self.feed.public_snapshot(f"tournament:{t.id}")
            if held is not None:
                return dict(held["bracket"]), list(held["standings"])
        return self._snapshot(t), standings(t)

    async def _publish_public(self, t: tm.Tournament, body: dict[str, Any]) -> None:
        """``body`` on the tournament's channel: after its spectator delay (referees at once)
        when it has one."""
        delay = t.config.spectator_delay_s
        if delay > 0 and self.feed is not None:
            await self.publish(referee_channel(t.id), body)
            await self.feed.later(f"tournament:{t.id}", [body], delay)
        else:
            await self.publish(f"tournament:{t.id}", body)

    async def report(self, tournament_id: str, step: Step) -> None:
        """Match outcomes that come one at a time (an abort, a failed ready check): queued,
        and applied together in one command by whoever gets the tournament first, so a burst
        costs one load, one write and one delta instead of one each. A step the core refuses
        (a late outcome) is logged and skipped; the others stand."""
        self._queued.setdefault(tournament_id, []).append(step)
        async with self._batching.setdefault(tournament_id, asyncio.Lock()):
            steps = self._queued.pop(tournament_id, [])
            if steps:
                await self.command(tournament_id, _folded(steps, self.clock()), drain=False)
        self._drain_soon(tournament_id)

    def _drain_soon(self, tournament_id: str) -> None:
        """Carry the outbox out in the background: the caller (a game server's result, whose
        connection reads nothing else meanwhile) need not wait for the next matches to be
        started. The outbox is written already, so nothing is lost if this process dies."""
        if tournament_id in _DRAINING.get() or tournament_id in self._drain_scheduled:
            return  # a drain under way, or about to start, will read the new rows
        self._drain_scheduled.add(tournament_id)

        async def drain() -> None:
            self._drain_scheduled.discard(tournament_id)  # rows from now on: a new drain
            try:
                await self.drain(tournament_id)
            except Exception:
                log.exception("tournament outbox failed", extra={"tournament": tournament_id})

        task = asyncio.create_task(drain())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def quiet(self) -> None:
        """Until no drain runs in the background (tests, and a clean stop)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def stop(self) -> None:
        """Wait for the drains under way (what they leave, the next start carries out)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=STOP_DRAIN_S)

    async def _drain_unless_draining(self, tournament_id: str) -> None:
        if tournament_id not in _DRAINING.get():  # else the drain under way carries them out
            await self.drain(tournament_id)

    def _snapshot(
        self,
        t: tm.Tournament,
        earlier: tuple[tm.Tournament, dict[str, Any]] | None = None,
        changed: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """The snapshot of ``t``, made once per version (the next command's diff needs it).

        Without ``earlier``, it is made from the last one this process made, when that is
        of an earlier version: with two processes taking turns, the version a command starts
        from is often the other's, and a 1,024-player Swiss's snapshot from scratch costs
        5,120 match entries where catching up costs the few matches changed in between."""
        cached = self._snapshots.get(t.id)
        if cached is not None:
            known, made_then = cached
            if known.version == t.version:
                return made_then
            if earlier is None and known.version < t.version and _rounds_kept(known, t):
                earlier, changed = (known, made_then), tournament_store.changes(known, t).matches
        made = snapshot(t, earlier, changed)
        self._snapshots[t.id] = (t, made)
        self._snapshots.move_to_end(t.id)
        while len(self._snapshots) > SNAPSHOTS_CACHED_MAX:
            self._snapshots.popitem(last=False)
        return made

    async def get(self, tournament_id: str) -> tm.Tournament:
        return await self._load(tournament_id, self.db, lock=False)

    async def recent(self, limit: int = LIST_ROWS_MAX) -> list[tm.Tournament]:
        rows = await self.db.fetch(
            "SELECT id FROM tournaments ORDER BY created_s DESC, id LIMIT ?",
            max(1, min(limit, LIST_ROWS_MAX)),
        )
        return [await self.get(row[0]) for row in rows]

    async def of_player(self, player: str) -> list[tm.Tournament]:
        rows = await self.db.fetch(
            "SELECT t.id FROM tournaments t JOIN tournament_players p "
            "ON p.tournament = t.id WHERE p.player = ? ORDER BY t.created_s DESC LIMIT ?",
            player,
            LIST_ROWS_MAX,
        )
        return [await self.get(row[0]) for row in rows]

    async def register(
        self, tournament_id: str, player: str, team: str | None, roster: Sequence[str] | None
    ) -> tm.Tournament:
        """``player`` registers (a solo tournament) or registers ``team`` with ``roster``
        (``player`` among them). Refused with ``insufficient_funds`` when a fee cannot be held."""
        name = team if team is not None else player
        players = list(roster) if roster is not None else [player]
        if player not in players:
            raise tm.TournamentRefused("bad_roster", "you are one of the team you register")
        now = self.clock()
        after = await self.command(tournament_id, lambda t: tm.register(t, name, players, now))
        attempt = after.registrations[name]
        # The hold's answer: carried out by the drain above, or by another process that had
        # claimed the row first (wait for it, a little)
        deadline = self.clock() + HOLD_ANSWER_WAIT_S
        while True:
            current = await self.get(tournament_id)
            entry = current.entry(name)
            if entry is None or entry.attempt != attempt:
                raise tm.TournamentRefused("insufficient_funds", "the entry fee could not be held")
            if entry.hold is tm.HoldState.HELD or self.clock() > deadline:
                return current  # still holding past the wait: the sweeper will answer it
            await asyncio.sleep(0.02)
            await self._drain_unless_draining(tournament_id)

    # The outbox -----------------------------------------------------------------------------

    async def drain(self, tournament_id: str) -> int:
        """Carry out the tournament's outbox in order; how many rows were carried out."""
        lock = self._draining.setdefault(tournament_id, asyncio.Lock())
        done = 0
        async with lock:
            marked = _DRAINING.set(_DRAINING.get() | {tournament_id})
            try:
                done = await self._drain_rounds(tournament_id)
            finally:
                _DRAINING.reset(marked)
        return done

    async def _drain_rounds(self, tournament_id: str) -> int:
        """Rounds of: the rows there now, money first (in their order: a post before the
        pool's rake, the pool before the prizes), then matches, then players' events, which
        are many (two per result) and wait for nothing; then one delete for what was done."""
        done = 0
        for _ in range(DRAIN_ROUNDS_MAX):
            carried = await self._drain_round(tournament_id)
            if carried is None:
                break
            done += carried
        return done

    async def _drain_round(self, tournament_id: str) -> int | None:
        """One round; None when there was nothing to carry out, or another process is carrying
        out this tournament's rows. On PostgreSQL one process at a time drains a tournament: a
        transaction-level advisory lock on the tournament, held while the round's rows are
        carried out and deleted; another process draining it meanwhile does nothing (the
        holder's next round takes what was added). Claiming rows one by one (``SKIP LOCKED``)
        would let a later row overtake an earlier one that another process holds: a
        withdrawal's void run before its registration's hold, which then lands and keeps the
        fee of a player with no seat. A process that dies mid-round releases the lock with
        its connection, and the rows are carried out again (their effects are idempotent).
        SQLite has one writer, and a transaction held open would lock out the effects' own
        writes: its rows are read, carried out and then deleted in one transaction."""
        select = "SELECT seq, effect FROM tournament_outbox WHERE tournament = ? ORDER BY seq"
        if self.db.dialect == "postgresql":
            async with self.db.transaction() as tx:
                locked = await tx.fetchone(
                    "SELECT pg_try_advisory_xact_lock(?, ?)",
                    _OUTBOX_LOCK_CLASS,
                    _lock_key(tournament_id),
                )
                if locked is None or not locked[0]:
                    return None  # another process drains it: its next round takes the rest
                rows = await tx.fetch(select + " FOR UPDATE", tournament_id)
                if not rows:
                    return None
                carried, failed = await self._carry_rows(tournament_id, rows)
                await _delete_rows(tx, tournament_id, carried)
        else:
            rows = await self.db.fetch(select, tournament_id)
            if not rows:
                return None
            carried, failed = await self._carry_rows(tournament_id, rows)
            if carried:
                async with self.db.transaction() as tx:
                    await _delete_rows(tx, tournament_id, carried)
        if failed is not None:
            raise failed
        return len(carried)

    async def _carry_rows(
        self, tournament_id: str, rows: list[tuple[Any, ...]]
    ) -> tuple[list[int], Exception | None]:
        """Carry the rows out in order; the ones done, and what stopped the others."""
        decoded = [(int(seq), orjson.loads(raw)) for seq, raw in rows]
        decoded.sort(key=lambda row: (_CARRY_ORDER.get(row[1]["type"], 1), row[0]))
        events = [row for row in decoded if row[1]["type"] == "event"]
        carried: list[int] = []
        try:
            for seq, effect in decoded:
                if effect["type"] == "event":
                    continue  # last, all at once
                await self._carry_out(tournament_id, effect)
                self._carried(tournament_id, effect, seq, carried)
            await publish_all(
                self.publish,
                self.publish_many,
                [
                    (f"user:{player}", {"kind": effect["kind"], **effect["data"]})
                    for _, effect in events
                    for player in effect["to"]
                ],
            )
            for seq, effect in events:
                self._carried(tournament_id, effect, seq, carried)
        except Exception as exc:
            return carried, exc
        return carried, None

    def _carried(
        self, tournament_id: str, effect: dict[str, Any], seq: int, carried: list[int]
    ) -> None:
        if self.after_effect is not None:
            self.after_effect(tournament_id, effect)
        carried.append(seq)

    async def sweep(self) -> int:
        """Take the scheduled steps that are due (check-in opening and closing, the start),
        and drain every tournament with an outbox left (a crash, or a drain that failed)."""
        done = await self._scheduled()
        rows = await self.db.fetch("SELECT DISTINCT tournament FROM tournament_outbox")
        for (tournament_id,) in rows:
            try:
                done += await self.drain(tournament_id)
            except Exception:
                log.exception("tournament outbox failed", extra={"tournament": tournament_id})
        return done

    async def _scheduled(self) -> int:
        rows = await self.db.fetch(
            "SELECT document FROM tournaments WHERE phase IN (?, ?, ?)",
            str(tm.Phase.REGISTRATION),
            str(tm.Phase.CHECK_IN),
            str(tm.Phase.SEEDED),
        )
        now = self.clock()
        taken = 0
        for (document,) in rows:
            header = tm.from_document(orjson.loads(document))  # enough to know what is due
            transition = tm.due(header, now)
            if transition is None:
                continue
            t = await self.get(header.id)
            strength = await self.strengths(t) if transition is tm.Transition.SEED else {}

            def step(
                current: tm.Tournament,
                transition: tm.Transition = transition,
                strength: dict[str, float] = strength,
            ) -> tuple[tm.Tournament, list[tm.Effect]]:
                if tm.due(current, now) is not transition:  # another process took it
                    return current, []
                if transition is tm.Transition.OPEN_CHECK_IN:
                    return tm.open_check_in(current, now)
                if transition is tm.Transition.SEED:
                    return tm.seed(current, None, strength, now)
                return tm.start(current, now)

            try:
                await self.command(t.id, step, ("scheduler", f"tournament.{transition}"))
                taken += 1
            except (tm.TournamentRefused, tm.IllegalTransition):
                log.exception("scheduled step refused", extra={"tournament": t.id})
        return taken

    async def _carry_out(self, tournament_id: str, effect: dict[str, Any]) -> None:
        kind = effect["type"]
        if kind == "hold":
            await self._hold(tournament_id, effect)
        elif kind in ("void", "post"):
            await self._resolve_holds(tournament_id, effect)
        elif kind == "start_pool":
            await self._start_pool(tournament_id)
        elif kind == "payout":
            split = effect.get("split")  # (rows written before it was stored: recomputed)
            await self._payout(tournament_id, None if split is None else _decode_split(split))
        elif kind == "repayout":
            await self._repayout(tournament_id, effect)
        elif kind == "start_match":
            teams = tuple(tuple(team) for team in effect["teams"])
            await self.play.start_match(
                match_id_of(tournament_id, effect["match"], effect["attempt"]),
                effect["queue"],
                teams,
                int(effect.get("best_of", 1)),
            )
        elif kind == "cancel_match":
            await self.play.withdraw_match(
                match_id_of(tournament_id, effect["match"], effect["attempt"])
            )
        else:
            raise ValueError(f"unknown outbox effect {kind!r}")

    # Money ----------------------------------------------------------------------------------

    async def _hold(self, tournament_id: str, effect: dict[str, Any]) -> None:
        """The team's fees held as one linked batch; the answer goes back as a command."""
        team, attempt, asset, amount = (effect[k] for k in ("team", "attempt", "asset", "amount"))
        players = effect["players"]
        credit = self._fee_account(tournament_id, asset)
        await self.ledger.create_accounts([credit, *[accounts.user(p, asset) for p in players]])
        transfers = [
            Transfer(
                _entry_id(tournament_id, team, attempt, player),
                accounts.user(player, asset).id,
                credit.id,
                int(amount),
                asset,
                Code.ENTRY_FEE,
                TransferFlags.PENDING | (TransferFlags.LINKED if n < len(players) - 1 else 0),
            )
            for n, player in enumerate(players)
        ]
        outcomes = await self.ledger.create_transfers(transfers)
        if all(o.result.succeeded for o in outcomes):
            step = tm.held
        else:
            # short of funds, or a hold the ledger cannot take at all (an amount or asset
            # nobody should have configured): either way the entry is refused, not left
            # waiting on a hold that will never be placed
            if not any(o.result is CreateTransferResult.INSUFFICIENT_FUNDS for o in outcomes):
                log.error(
                    "entry-fee holds refused",
                    extra={
                        "tournament": tournament_id,
                        "results": [str(o.result) for o in outcomes],
                    },
                )
            step = tm.hold_failed
        await self.command(tournament_id, lambda t: step(t, team, attempt))

    def _fee_account(self, tournament_id: str, asset: str) -> Any:
        """Where entry fees go: the tournament's pool; FREE_ENTRY tickets are spent (revenue)."""
        if asset == tm.FREE_ENTRY:
            return accounts.revenue(asset)
        return accounts.prize_pool(tournament_id, asset)

    async def _resolve_holds(self, tournament_id: str, effect: dict[str, Any]) -> None:
        post = effect["type"] == "post"
        team, attempt = effect["team"], effect["attempt"]
        transfers = [
            Transfer(
                derive_id(f"tournament.entry.{effect['type']}", tournament_id, team, attempt, p),
                flags=TransferFlags.POST_PENDING if post else TransferFlags.VOID_PENDING,
                pending_id=_entry_id(tournament_id, team, attempt, p),
                code=Code.ENTRY_FEE,
            )
            for p in effect["players"]
        ]
        outcomes = await self.ledger.create_transfers(transfers)
        for outcome in outcomes:
            if not outcome.result.succeeded and outcome.result not in (
                CreateTransferResult.PENDING_TRANSFER_NOT_FOUND,  # the hold was never placed
                CreateTransferResult.PENDING_TRANSFER_EXPIRED,
            ):
                raise RuntimeError(f"entry-fee {effect['type']} refused: {outcome.result}")

    async def _start_pool(self, tournament_id: str) -> None:
        t = await self.get(tournament_id)
        pool, asset = tm.pool_of(t), t.config.prize_asset
        prize_pool = accounts.prize_pool(tournament_id, asset)
        await self.ledger.create_accounts(
            [prize_pool, accounts.revenue(asset), accounts.expense(asset)]
        )
        transfers = []
        if pool.top_up:
            transfers.append(
                Transfer(
                    derive_id("tournament.guarantee", tournament_id),
                    accounts.expense(asset).id,
                    prize_pool.id,
                    pool.top_up,
                    asset,
                    Code.GUARANTEE,
                )
            )
        if pool.rake:
            transfers.append(
                Transfer(
                    derive_id("tournament.rake", tournament_id),
                    prize_pool.id,
                    accounts.revenue(asset).id,
                    pool.rake,
                    asset,
                    Code.RAKE,
                )
            )
        await self._all_succeed(transfers, "rake and guarantee")

    async def _payout(self, tournament_id: str, split: prizes.Split | None = None) -> None:
        """The prizes, one linked batch: each winner once, the remainder to rounding; the
        pool ends at zero."""
        t = await self.get(tournament_id)
        split = split or tm.payout_split(t)
        asset = t.config.prize_asset
        prize_pool = accounts.prize_pool(tournament_id, asset)
        await self.ledger.create_accounts(
            [
                prize_pool,
                accounts.rounding(asset),
                *[accounts.user(p.player, asset) for p in split.payouts],
            ]
        )
        transfers = [
            Transfer(
                derive_id("tournament.prize", tournament_id, p.place, p.player),
                prize_pool.id,
                accounts.user(p.player, asset).id,
                p.amount,
                asset,
                Code.PRIZE,
            )
            for p in split.payouts
        ]
        if split.remainder:
            transfers.append(
                Transfer(
                    derive_id("tournament.remainder", tournament_id),
                    prize_pool.id,
                    accounts.rounding(asset).id,
                    split.remainder,
                    asset,
                    Code.ROUNDING,
                )
            )
        linked = [
            replace(x, flags=TransferFlags.LINKED) if n < len(transfers) - 1 else x
            for n, x in enumerate(transfers)
        ]
        await self._all_succeed(linked, "prizes")
        [state] = await self.ledger.lookup_accounts([prize_pool.id])
        if state.balance.posted != 0 or state.balance.pending != 0:
            log.error("prize pool not empty after payout", extra={"tournament": tournament_id})
        payouts = [
            {"place": p.place, "team": p.participant, "player": p.player, "amount": str(p.amount)}
            for p in split.payouts
        ]
        body = {"kind": "tournament.payouts", "tournament": tournament_id, "asset": asset}
        for p in split.payouts:
            await self.publish(
                f"user:{p.player}",
                {**body, "place": p.place, "amount": str(p.amount)},
            )
        await self._publish_public(await self.get(tournament_id), {**body, "payouts": payouts})

    async def _repayout(self, tournament_id: str, effect: Mapping[str, Any]) -> None:
        """A correction after payout: each player's prize moved by the difference, once
        (:mod:`wallet.corrections`); the players hear of their new prize."""
        t = await self.get(tournament_id)
        asset, key = t.config.prize_asset, int(effect["key"])
        before_split, after_split = _decode_split(effect["before"]), _decode_split(effect["after"])
        before = corrections.per_player((p.player, p.amount) for p in before_split.payouts)
        after = corrections.per_player((p.player, p.amount) for p in after_split.payouts)
        ids = corrections.possible_ids(tournament_id, key, before, after)
        if await self.ledger.lookup_transfers(ids):
            return  # posted already: a linked request is all or nothing
        players = sorted(set(before) | set(after))
        wallets = [accounts.user(p, asset) for p in players]
        pool, rounding, expense = (
            accounts.prize_pool(tournament_id, asset),
            accounts.rounding(asset),
            accounts.expense(asset),
        )
        await self.ledger.create_accounts([pool, rounding, expense, *wallets])
        states = await self.ledger.lookup_accounts([w.id for w in wallets])
        available = {p: s.balance.available for p, s in zip(players, states, strict=True)}
        transfers = corrections.repayout(
            tournament_id,
            key,
            asset,
            before,
            after,
            after_split.remainder - before_split.remainder,
            available,
        )
        await self._all_succeed(transfers, "prize correction")
        changed = [p for p in players if before.get(p, 0) != after.get(p, 0)]
        lost = sum(t.amount for t in transfers if (t.metadata or {}).get("loss"))
        if lost:
            log.warning(
                "prize correction took back less than was paid",
                extra={"tournament": tournament_id, "loss": str(lost), "asset": asset},
            )
        body = {"kind": "tournament.prize_corrected", "tournament": tournament_id, "asset": asset}
        for p in changed:
            await self.publish(
                f"user:{p}",
                {**body, "before": str(before.get(p, 0)), "after": str(after.get(p, 0))},
            )

    async def _all_succeed(self, transfers: list[Transfer], what: str) -> None:
        if not transfers:
            return
        outcomes = await self.ledger.create_transfers(transfers)
        refused = [str(o.result) for o in outcomes if not o.result.succeeded]
        if refused:
            raise RuntimeError(f"{what} refused by the ledger: {refused}")

    # Matches --------------------------------------------------------------------------------

    async def _settled(self, tx: Conn, matches: Sequence[Match]) -> AfterCommit | None:
        """Matches settled by Play, in its transaction: each tournament's results applied
        as one command there (a Swiss round's burst: one load, one write, one delta), so the
        match and its bracket commit together. Then, after the commit, the deltas and the
        outbox."""
        steps: dict[str, list[Step]] = {}
        for match in matches:
            parsed = parse_match_id(match.id)
            if parsed is not None and match.ranks is not None:
                tournament_id, bracket_match, attempt = parsed
                steps.setdefault(tournament_id, []).append(
                    _outcome(bracket_match, attempt, list(match.ranks), self.clock())
                )
        if not steps:
            return None
        applied: list[_Applied] = []
        for tournament_id in sorted(steps):  # one lock order for every writer
            done = await self._apply(tx, tournament_id, _folded(steps[tournament_id], self.clock()))
            if isinstance(done, _Applied):
                applied.append(done)

        async def after_commit() -> None:
            for done in applied:
                await self._applied(done)
                self._drain_soon(done.after.id)

        return after_commit

    async def _failed(self, match: Match) -> None:
        parsed = parse_match_id(match.id)
        if parsed is None:
            return
        tournament_id, bracket_match, attempt = parsed
        absent = match.declined | match.afk
        now = self.clock()

        def failed(t: tm.Tournament) -> tuple[tm.Tournament, list[tm.Effect]]:
            sides = _sides(t, bracket_match)
            if sides is None or t.phase is not tm.Phase.RUNNING:
                return t, []
            rosters = t.rosters
            missing = [team for team in sides if set(rosters[team]) & absent]
            return tm.match_failed(t, bracket_match, attempt, missing, now, start_next=False)

        await self.report(tournament_id, failed)

    # Storage --------------------------------------------------------------------------------

    async def _load(self, tournament_id: str, conn: Conn, lock: bool) -> tm.Tournament:
        """The tournament as stored: its version read first (locking the row when ``lock``),
        and its document decoded only when this process does not hold that version already
        (a 1,024-player Swiss is half a megabyte of JSON)."""
        lock_clause = " FOR UPDATE" if lock and self.db.dialect == "postgresql" else ""
        row = await conn.fetchone(
            "SELECT version FROM tournaments WHERE id = ?" + lock_clause,  # nosec B608
            tournament_id,
        )
        if row is None:
            raise TournamentNotFound(tournament_id)
        cached = self._tournaments.get(tournament_id)
        if cached is not None and cached.version == int(row[0]):
            return cached
        if cached is not None and cached.version < int(row[0]):  # another process moved it
            caught_up = await tournament_store.refresh(conn, cached)
            assert caught_up is not None
            return self._remember(caught_up)
        read = await tournament_store.read(conn, tournament_id)
        assert read is not None
        return self._remember(read)

    def _remember(self, t: tm.Tournament) -> tm.Tournament:
        """Keep the latest version this process wrote or read (tournaments are immutable)."""
        self._tournaments[t.id] = t
        self._tournaments.move_to_end(t.id)
        while len(self._tournaments) > SNAPSHOTS_CACHED_MAX:
            self._tournaments.popitem(last=False)
        return t

    async def _append(
        self, tx: Conn, tournament_id: str, version: int, rows: list[dict[str, Any]]
    ) -> None:
        """A command's rows, numbered from its version: numbers are never reused, so a slow
        drain elsewhere can only delete rows it read (and carried out)."""
        assert len(rows) < OUTBOX_ROWS_PER_VERSION
        await tx.executemany(
            "INSERT INTO tournament_outbox (tournament, seq, effect) VALUES (?, ?, ?)",
            [
                (tournament_id, version * OUTBOX_ROWS_PER_VERSION + n, _dumps(row))
                for n, row in enumerate(rows)
            ],
        )

    async def _sync_players(self, tx: Conn, before: tm.Tournament, after: tm.Tournament) -> None:
        if before.entries is after.entries:
            return
        old = {p: e.team for e in before.entries for p in e.roster}
        new = {p: e.team for e in after.entries for p in e.roster}
        for player in old.keys() - new.keys():
            await tx.execute(
                "DELETE FROM tournament_players WHERE tournament = ? AND player = ?",
                after.id,
                player,
            )
        for player in new.keys() - old.keys():
            await tx.execute(
                "INSERT INTO tournament_players (tournament, player, team) VALUES (?, ?, ?)",
                after.id,
                player,
                new[player],
            )

    async def _audit(self, tx: Conn, actor: str, action: str, target: str, detail: str) -> None:
        await self.audit.append(tx, actor, action, target, {"text": detail} if detail else {})

    async def strengths(self, t: tm.Tournament) -> dict[str, float]:
        """Each team's conservative rating (mu - 3 sigma) for the tournament's mode, summed
        over its roster (players without a rating count as new)."""
        mode = mode_of(t.config.queue)
        config = self.play.queues.get(t.config.queue)
        strength: dict[str, float] = {}
        for entry in t.entries:
            total = 0.0
            for player in entry.roster:
                row = await self.db.fetchone(
                    "SELECT mu, sigma FROM ratings WHERE player = ? AND mode = ?", player, mode
                )
                if row is None:
                    fresh = config.model.new() if config is not None else None
                    total += 0.0 if fresh is None else fresh.mu - 3 * fresh.sigma
                else:
                    total += float(row[0]) - 3 * float(row[1])
            strength[entry.team] = total
        return strength


def _outcome(bracket_match: str, attempt: int, ranks: list[int], now_s: float) -> Step:
    """A settled match's ranks as a bracket step: the best rank's side won; a draw decides
    nothing (played again)."""
    best = min(ranks)
    if ranks.count(best) > 1:
        return lambda t: tm.match_failed(t, bracket_match, attempt, [], now_s, start_next=False)
    side = ranks.index(best)

    def won(t: tm.Tournament) -> tuple[tm.Tournament, list[tm.Effect]]:
        sides = _sides(t, bracket_match)
        if sides is None:
            return t, []
        return tm.match_won(t, bracket_match, attempt, sides[side], now_s, start_next=False)

    return won


@dataclass(frozen=True)
class _Applied:
    """A command written in a transaction, to remember and publish once it has committed."""

    before: tm.Tournament
    after: tm.Tournament
    matches: frozenset[str]


async def _delete_rows(tx: Conn, tournament_id: str, seqs: list[int]) -> None:
    """The outbox rows carried out, deleted in one statement's round trip: a crash before it
    carries them out again, which their idempotence allows."""
    await tx.executemany(
        "DELETE FROM tournament_outbox WHERE tournament = ? AND seq = ?",
        [(tournament_id, seq) for seq in seqs],
    )


def _folded(steps: Sequence[Step], now_s: float) -> Step:
    """The steps one after the other, then the next matches started once for all of them."""

    def run(t: tm.Tournament) -> tuple[tm.Tournament, list[tm.Effect]]:
        effects: list[tm.Effect] = []
        for step in steps:
            try:
                t, more = step(t)
            except (tm.TournamentRefused, tm.IllegalTransition) as refused:
                log.warning(
                    "match outcome refused", extra={"tournament": t.id, "why": str(refused)}
                )
                continue
            effects += more
        t, more = tm.start_next_matches(t, now_s)
        return t, effects + more

    return run


def _entry_id(tournament_id: str, team: str, attempt: int, player: str) -> int:
    return derive_id("tournament.entry", tournament_id, team, attempt, player)


def _sides(t: tm.Tournament, match_id: str) -> tuple[str, str] | None:
    try:
        match = formats.playable_match(t.config.format, t.participants, t.progress, match_id)
    except formats.FormatError:
        return None
    return str(match.sides[0]), str(match.sides[1])


# Effects as outbox rows ---------------------------------------------------------------------


def _encode_split(split: prizes.Split) -> dict[str, Any]:
    return {
        "payouts": [[p.place, p.participant, p.player, str(p.amount)] for p in split.payouts],
        "remainder": str(split.remainder),
    }


def _decode_split(raw: Mapping[str, Any]) -> prizes.Split:
    return prizes.Split(
        tuple(
            prizes.Payout(int(place), str(team), str(player), int(amount))
            for place, team, player, amount in raw["payouts"]
        ),
        int(raw["remainder"]),
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def encode_effect(effect: tm.Effect, queue: str) -> dict[str, Any]:
    """An effect as an outbox row (``queue``: the tournament's, where its matches are played)."""
    if isinstance(effect, tm.Hold):
        return {
            "type": "hold",
            "team": effect.team,
            "attempt": effect.attempt,
            "players": list(effect.players),
            "asset": effect.asset,
            "amount": str(effect.amount),
        }
    if isinstance(effect, tm.Void | tm.Post):
        return {
            "type": "void" if isinstance(effect, tm.Void) else "post",
            "team": effect.team,
            "attempt": effect.attempt,
            "players": list(effect.players),
        }
    if isinstance(effect, tm.StartPool):
        return {"type": "start_pool"}  # recomputed from the state when carried out
    if isinstance(effect, tm.Payout):
        # the split as it was at the end: a correction carried out before this row must not
        # change what this row pays (the correction moves the difference itself)
        return {"type": "payout", "split": _encode_split(effect.split)}
    if isinstance(effect, tm.Repayout):
        return {
            "type": "repayout",
            "key": effect.key,
            "before": _encode_split(effect.before),
            "after": _encode_split(effect.after),
        }
    if isinstance(effect, tm.StartMatch):
        return {
            "type": "start_match",
            "queue": queue,
            "match": effect.match,
            "attempt": effect.attempt,
            "teams": [list(team) for team in effect.teams],
            "best_of": effect.best_of,
        }
    if isinstance(effect, tm.CancelMatch):
        return {"type": "cancel_match", "match": effect.match, "attempt": effect.attempt}
    return {"type": "event", "kind": effect.kind, "data": effect.data, "to": list(effect.to)}


# Snapshots and deltas -----------------------------------------------------------------------


def referee_channel(tournament_id: str) -> str:
    """Where referees and admins follow a tournament with a spectator delay as it happens."""
    return f"referee:tournament.{tournament_id}"


def snapshot(
    t: tm.Tournament,
    earlier: tuple[tm.Tournament, dict[str, Any]] | None = None,
    changed: frozenset[str] | None = None,
) -> dict[str, Any]:
    """What spectators see of a tournament, as JSON-ready data. With ``earlier`` (an earlier
    version and its snapshot) and ``changed`` (the matches whose result, attempt or run
    changed since), a Swiss's match entries are copied and only those remade, and unchanged
    entries reused: a 1,024-player Swiss has 5,120 matches, a result changes a few."""
    config = t.config
    fee = config.entry_fee
    matches: dict[str, Any] = {}
    places = None
    if t.phase in (tm.Phase.RUNNING, tm.Phase.COMPLETE):
        swiss_rounds = config.format.kind is formats.Kind.SWISS and earlier is not None
        if swiss_rounds and changed is not None and earlier is not None and earlier[1]["matches"]:
            before, previous = earlier
            matches = dict(previous["matches"])
            touched = set(changed) | (set(t.disputes) ^ set(before.disputes))
            for r in t.progress.swiss[len(before.progress.swiss) :]:
                touched |= {p.id for p in r.pairings}
            for match_id in touched:
                pairing = swiss.find(t.progress.swiss, match_id)
                result = t.progress.results.get(match_id)
                view = formats.MatchView(
                    pairing.id, pairing.round, "swiss", pairing.sides, result, result is not None
                )
                matches[match_id] = _match_entry(t, view)
        else:
            for m in formats.matches(config.format, t.participants, t.progress):
                matches[m.id] = _match_entry(t, m)
    if t.phase is tm.Phase.COMPLETE:
        places = [
            [place, who]
            for place, who in formats.placements(config.format, t.participants, t.progress)
        ]
    pool = tm.pool_of(t) if t.phase in (tm.Phase.RUNNING, tm.Phase.COMPLETE) else None
    if earlier is not None and earlier[0].entries is t.entries:
        entries = earlier[1]["entries"]
    else:
        entries = {
            e.team: {
                "roster": list(e.roster),
                "hold": str(e.hold),
                "checked_in": sorted(e.checked_in),
            }
            for e in t.entries
        }
    return {
        "id": t.id,
        "name": config.name,
        "phase": str(t.phase),
        "version": t.version,
        "queue": config.queue,
        "team_size": config.team_size,
        "format": str(config.format.kind),
        "entry_fee": None if fee is None else {"asset": fee.asset, "amount": str(fee.amount)},
        "prize_asset": config.prize_asset,
        "payout_bps": list(config.payout_bps),
        "participants_max": config.participants_max,
        "entries": entries,
        "seeds": list(t.participants),
        "matches": matches,
        "places": places,
        "pool": None
        if pool is None
        else {"collected": str(pool.collected), "rake": str(pool.rake), "prizes": str(pool.prizes)},
    }


def _rounds_kept(earlier: tm.Tournament, later: tm.Tournament) -> bool:
    """Whether ``later``'s Swiss rounds begin with ``earlier``'s (rounds are only added; a
    snapshot made from an earlier one relies on it)."""
    kept = earlier.progress.swiss
    return later.progress.swiss[: len(kept)] == kept


def _match_entry(t: tm.Tournament, m: formats.MatchView) -> dict[str, Any]:
    run = t.runs.get(m.id)
    return {
        "round": m.round,
        "stage": m.stage,
        "sides": list(m.sides),
        "result": m.result,
        "decided": m.decided,
        "state": None if run is None else str(run),
        "attempt": t.attempts.get(m.id, 0),
        "disputed": m.id in t.disputes,
    }


_NESTED: Final = ("entries", "matches")


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The changes from one snapshot to the next ({} when none): ``set`` [path, value] and
    ``unset`` paths; ``entries`` and ``matches`` change entry by entry (an entry that is the
    same object in both is not compared)."""
    changes: list[list[Any]] = []
    removed: list[list[str]] = []
    for key in after:
        if key in _NESTED:
            old, new = before.get(key, {}), after[key]
            if old is new:
                continue
            changes += [
                [[key, k], v] for k, v in new.items() if old.get(k) is not v and old.get(k) != v
            ]
            removed += [[key, k] for k in old if k not in new]
        elif before.get(key) != after[key] and key != "version":
            changes.append([[key], after[key]])
    if not changes and not removed:
        return {}
    return {"set": changes, "unset": removed}


def apply_delta(snap: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """A client's view after a delta: what a spectator does with each one."""
    out = {k: (dict(v) if k in _NESTED else v) for k, v in snap.items()}
    for path in delta.get("unset", []):
        out[path[0]].pop(path[1], None)
    for path, value in delta.get("set", []):
        if len(path) == 2:
            out[path[0]][path[1]] = value
        else:
            out[path[0]] = value
    out["version"] = delta["version"]
    return out


def standings(t: tm.Tournament) -> list[dict[str, Any]]:
    """The current table: final places once complete; during a Swiss or a league, points so
    far; during an elimination, nothing yet."""
    config = t.config
    if t.phase is tm.Phase.COMPLETE:
        places = formats.placements(config.format, t.participants, t.progress)
        return [{"place": place, "teams": who} for place, who in places]
    if t.phase is not tm.Phase.RUNNING:
        return []
    if config.format.kind is formats.Kind.SWISS:
        table = swiss.standings(t.participants, t.progress.swiss, t.progress.results)
        return [
            {"place": n, "teams": [s.participant], "points": s.points, "buchholz": s.buchholz}
            for n, s in enumerate(table, 1)
        ]
    if config.format.kind is formats.Kind.ROUND_ROBIN:
        schedule = formats.league_schedule(t.participants)
        league = formats.league_standings(
            t.participants, schedule, t.progress.results, config.format.tiebreakers
        )
        rows, at = [], 1
        for tied in league:
            rows.append({"place": at, "teams": tied})
            at += len(tied)
        return rows
    return []
