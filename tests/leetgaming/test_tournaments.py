"""Tournaments through the real flow: entry fees held, voided and posted in the ledger, matches
played through the match lifecycle, prizes paid exactly once, spectators' snapshot plus deltas
equal to a fresh snapshot; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest

from ledger import Transfer, TransferFlags, reconcile
from leetgaming import tournament_store
from leetgaming.tournaments import encode_effect
from matchmaking import tournament as tm
from matchmaking.formats import Format, Kind
from wallet import accounts

from .tournament_flow import Flow, config, flow_on, run_to_end


@pytest.fixture(params=["sqlite", "postgresql"])
async def flow(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server_url: str
) -> AsyncIterator[Flow]:
    if request.param == "sqlite":
        async with flow_on(f"sqlite:///{tmp_path}/app.sqlite3") as opened:
            yield opened
        return
    name = f"lgtest_tm_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_server_url)._replace(path="/" + name))
    try:
        async with flow_on(url) as opened:
            yield opened
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def opened(flow: Flow, **changes: object) -> str:
    t = await flow.tournaments.create("admin-1", config(**changes))
    await flow.tournaments.command(t.id, lambda x: tm.open_registration(x, flow.clock()))
    return t.id


async def seeded_and_started(flow: Flow, tid: str) -> None:
    now = flow.clock()
    await flow.tournaments.command(tid, lambda t: tm.seed(t, None, {}, now))
    await flow.tournaments.command(tid, lambda t: tm.start(t, now))


async def started(flow: Flow, players: list[str], funds: int, **changes: object) -> str:
    """A tournament of ``players``, each funded with ``funds`` and registered, seeded and
    started."""
    for p in players:
        await flow.fund(p, funds)
    tid = await opened(flow, **changes)
    for p in players:
        await flow.tournaments.register(tid, p, None, None)
    await seeded_and_started(flow, tid)
    return tid


async def test_a_paid_tournament_holds_posts_and_pays_each_winner_once(flow: Flow) -> None:
    players = [f"p{i}" for i in range(6)]
    for p in players:
        await flow.fund(p, 5_000)
    tid = await opened(flow)
    for p in players:
        await flow.tournaments.register(tid, p, None, None)
        assert await flow.balance(p) == (5_000, 4_000)  # held: still posted, not available
    assert await flow.pool(tid) == (0, 6_000)  # held for the pool
    await seeded_and_started(flow, tid)
    assert await flow.pool(tid) == (5_400, 0)  # posted, less the rake of 600
    await run_to_end(flow, tid, lambda teams: 0)  # the first side always wins
    t = await flow.tournaments.get(tid)
    assert t.phase is tm.Phase.COMPLETE
    places = {
        w: place
        for place, who in tm.formats.placements(t.config.format, t.participants, t.progress)
        for w in who
    }
    prizes = {1: 3_240, 2: 1_620}
    for p in players:
        posted, available = await flow.balance(p)
        expected = 4_000 + prizes.get(places[p], 0)
        if places[p] == 3:  # third and fourth share 10 %: 540 / 2
            expected += 270
        assert (posted, available) == (expected, expected), p
    assert await flow.pool(tid) == (0, 0)  # the pool ends at exactly zero
    paid = [b for ch, b in flow.published if b.get("kind") == "tournament.payouts"]
    assert {b["player"] for b in paid[-1]["payouts"]} == {p for p in players if places[p] <= 3}
    assert any(
        ch == f"user:{t.participants[0]}"
        for ch, b in flow.published
        if b.get("kind") == "tournament.payouts"
    )
    # Paying again (a crash before the outbox row was deleted) pays nobody twice
    before = [await flow.balance(p) for p in players]
    await flow.tournaments._payout(tid)
    assert [await flow.balance(p) for p in players] == before
    report = await reconcile(flow.store)
    assert report.ok, report.problems


async def test_registration_refusals_change_nothing(flow: Flow) -> None:
    await flow.fund("rich", 5_000)
    tid = await opened(flow, participants_max=3)
    await flow.tournaments.register(tid, "rich", None, None)
    with pytest.raises(tm.TournamentRefused) as twice:
        await flow.tournaments.register(tid, "rich", None, None)
    assert twice.value.code == "team_taken"
    with pytest.raises(tm.TournamentRefused) as poor:
        await flow.tournaments.register(tid, "poor", None, None)
    assert poor.value.code == "insufficient_funds"
    t = await flow.tournaments.get(tid)
    assert [e.team for e in t.entries] == ["rich"] and await flow.balance("rich") == (5_000, 4_000)
    assert await flow.balance("poor") == (0, 0)
    await flow.fund("poor", 1_000)  # with money now: a new attempt, a new hold
    await flow.tournaments.register(tid, "poor", None, None)
    assert await flow.balance("poor") == (1_000, 0)
    await flow.fund("late", 1_000)
    await flow.tournaments.register(tid, "late", None, None)
    await seeded_and_started(flow, tid)
    await flow.fund("later", 1_000)
    with pytest.raises(tm.IllegalTransition):
        await flow.tournaments.register(tid, "later", None, None)
    assert await flow.balance("later") == (1_000, 1_000)
    assert (await reconcile(flow.store)).ok


async def test_leaving_and_cancelling_void_every_hold(flow: Flow) -> None:
    for p in ("a", "b", "c"):
        await flow.fund(p, 1_000)
    tid = await opened(flow)
    for p in ("a", "b", "c"):
        await flow.tournaments.register(tid, p, None, None)
    await flow.tournaments.command(tid, lambda t: tm.withdraw(t, "a", flow.clock()))
    assert await flow.balance("a") == (1_000, 1_000)
    await flow.tournaments.command(tid, lambda t: tm.cancel(t, flow.clock(), "no venue"))
    for p in ("a", "b", "c"):
        assert await flow.balance(p) == (1_000, 1_000)
    assert await flow.pool(tid) == (0, 0)
    assert (await reconcile(flow.store)).ok


async def test_teams_pay_per_player_and_split_their_prize(flow: Flow) -> None:
    teams = {f"team{i}": [f"t{i}a", f"t{i}b"] for i in range(4)}
    for roster in teams.values():
        for p in roster:
            await flow.fund(p, 1_000)
    tid = await opened(
        flow,
        queue="cs2:2v2:eu",
        team_size=2,
        payout_bps=(10_000,),
        participants_min=2,
        format=Format(Kind.DOUBLE_ELIMINATION),
    )
    for team, roster in teams.items():
        await flow.tournaments.register(tid, roster[1], team, roster)
    await seeded_and_started(flow, tid)
    await run_to_end(flow, tid, lambda sides: 0)
    t = await flow.tournaments.get(tid)
    champion = tm.formats.placements(t.config.format, t.participants, t.progress)[0][1][0]
    # 8 players x 1000, rake 800: 7200 to the champion's two players
    assert [await flow.balance(p) for p in teams[champion]] == [(3_600, 3_600)] * 2
    assert await flow.pool(tid) == (0, 0)
    assert (await reconcile(flow.store)).ok


async def test_a_declined_match_check_in_forfeits_and_a_correction_replays(flow: Flow) -> None:
    players = [f"p{i}" for i in range(4)]
    tid = await started(flow, players, 1_000, payout_bps=(7_000, 3_000), participants_min=2)
    start = await flow.fresh(tid)
    [(first, _, teams), (second, _, teams2)] = await flow.open_matches(tid)
    await flow.decline(first, teams[0][0])  # side 0 missed its match check-in: side 1 goes on
    t = await flow.tournaments.get(tid)
    assert t.progress.results["U1-1"] == 1
    await flow.play_match(second, teams2, 0)
    [(final, _, final_teams)] = await flow.open_matches(tid)
    assert sorted(p for team in final_teams for p in team) == sorted([teams[1][0], teams2[0][0]])
    # An admin corrects U1-2 while the final is on: the final is called off and played again
    now = flow.clock()
    await flow.tournaments.command(tid, lambda t: tm.correct(t, "U1-2", teams2[1][0], now))
    [(replay, _, replay_teams)] = await flow.open_matches(tid)
    assert replay != final and replay.endswith(".2")
    assert teams2[1][0] in [p for team in replay_teams for p in team]
    await flow.play_match(replay, replay_teams, 1)
    t = await flow.tournaments.get(tid)
    assert t.phase is tm.Phase.COMPLETE
    assert flow.spectator_view(tid, start) == await flow.fresh(tid)
    assert await flow.pool(tid) == (0, 0)
    assert (await reconcile(flow.store)).ok


async def test_a_free_entry_tournament_spends_tickets_and_pays_the_guarantee(flow: Flow) -> None:
    players = [f"f{i}" for i in range(4)]
    for p in players:
        await flow.fund(p, 1, "FREE_ENTRY")
    tid = await opened(
        flow,
        entry_fee=tm.EntryFee("FREE_ENTRY", 1),
        guaranteed=10_000,
        payout_bps=(10_000,),
        participants_min=2,
    )
    for p in players:
        await flow.tournaments.register(tid, p, None, None)
    assert [await flow.balance(p, "FREE_ENTRY") for p in players] == [(1, 0)] * 4
    await seeded_and_started(flow, tid)
    assert [await flow.balance(p, "FREE_ENTRY") for p in players] == [(0, 0)] * 4  # spent
    assert await flow.pool(tid) == (10_000, 0)  # the platform's guarantee, no rake on tickets
    await run_to_end(flow, tid, lambda teams: 1)
    t = await flow.tournaments.get(tid)
    champion = tm.formats.placements(t.config.format, t.participants, t.progress)[0][1][0]
    assert await flow.balance(champion) == (10_000, 10_000)
    assert await flow.pool(tid) == (0, 0)
    assert (await reconcile(flow.store)).ok


async def test_the_scheduler_runs_check_in_and_the_start(flow: Flow) -> None:
    start_s = flow.clock() + 3_600
    tid = await opened(
        flow, starts_at_s=start_s, check_in_s=600, participants_min=2, payout_bps=(10_000,)
    )
    for p in ("a", "b", "c"):
        await flow.fund(p, 1_000)
        await flow.tournaments.register(tid, p, None, None)
    await flow.tournaments.sweep()
    assert (await flow.tournaments.get(tid)).phase is tm.Phase.REGISTRATION
    flow.clock.now_s = start_s - 600
    await flow.tournaments.sweep()
    assert (await flow.tournaments.get(tid)).phase is tm.Phase.CHECK_IN
    for p in ("a", "b"):
        await flow.tournaments.command(tid, lambda t, p=p: tm.check_in(t, p, flow.clock()))
    flow.clock.now_s = start_s
    await flow.tournaments.sweep()  # the window closed: c (not checked in) is dropped
    t = await flow.tournaments.get(tid)
    assert t.phase is tm.Phase.SEEDED and sorted(t.participants) == ["a", "b"]
    assert await flow.balance("c") == (1_000, 1_000)
    await flow.tournaments.sweep()
    assert (await flow.tournaments.get(tid)).phase is tm.Phase.RUNNING
    assert [len(m[2]) for m in await flow.open_matches(tid)] == [2]


async def test_a_swiss_keeps_spectators_and_the_stored_rows_in_step(flow: Flow) -> None:
    players = [f"w{i}" for i in range(9)]
    tid = await started(flow, players, 1_000, format=Format(Kind.SWISS))
    await run_to_end(flow, tid, lambda teams: len(teams[0][0]) % 2)  # spectators checked
    t = await flow.tournaments.get(tid)
    assert t.phase is tm.Phase.COMPLETE and len(t.progress.swiss) == 4
    assert await tournament_store.read(flow.db, tid) == t  # the rows say what memory says
    assert await flow.pool(tid) == (0, 0)


async def test_two_processes_catch_up_from_each_others_versions(flow: Flow) -> None:
    """A second Tournaments (as another process: its own cache) on the same database: each
    command moves the version under the other, which catches up from the rows written since."""
    from leetgaming.tournaments import Tournaments

    async def publish(channel: str, body: object) -> int:
        return 0

    other = Tournaments(flow.db, flow.ledger, flow.play, publish, flow.clock)
    mine = flow.tournaments
    players = [f"q{i}" for i in range(8)]
    for p in players:
        await flow.fund(p, 1_000)
    tid = await opened(flow, format=Format(Kind.DOUBLE_ELIMINATION))

    async def same() -> None:
        stored = await tournament_store.read(flow.db, tid)
        assert await mine.get(tid) == stored and await other.get(tid) == stored

    for n, p in enumerate(players):
        await (mine if n % 2 else other).register(tid, p, None, None)
        await same()
    await other.command(tid, lambda t: tm.withdraw(t, "q3", flow.clock()))
    await same()
    await mine.register(tid, "q3", None, None)  # back, a new attempt at the end
    await same()
    await other.command(tid, lambda t: tm.seed(t, None, {}, flow.clock()))
    await mine.command(tid, lambda t: tm.start(t, flow.clock()))
    await same()
    for _ in range(6):
        match_id, _, teams = (await flow.open_matches(tid))[0]
        await flow.play_match(match_id, teams, 0)
        await same()
    t = await other.get(tid)
    decided = next(m for m, r in t.progress.results.items() if r in (0, 1))
    view = next(
        m
        for m in tm.formats.matches(t.config.format, t.participants, t.progress)
        if m.id == decided
    )
    loser = str(view.sides[1 - t.progress.results[decided]])
    await other.command(tid, lambda x: tm.correct(x, decided, loser, flow.clock()))
    await same()  # results dropped downstream: empty rows that the other side sees go
    await other.quiet()
    await run_to_end(flow, tid, lambda teams: 1, check=False)
    await same()
    assert (await other.get(tid)).phase is tm.Phase.COMPLETE


async def test_a_swiss_delta_from_a_version_the_other_process_made_is_right(
    flow: Flow,
) -> None:
    """Another process disputes, resolves and corrects results between this one's results:
    each process makes its next delta from a snapshot of a version the other wrote (caught
    up from its own older one), and the spectator, who gets both processes' deltas, always
    holds what a fresh snapshot says."""
    from leetgaming.tournaments import Tournaments

    other = Tournaments(flow.db, flow.ledger, flow.play, flow.tournaments.publish, flow.clock)
    players = [f"sx{i}" for i in range(8)]
    tid = await started(flow, players, 1_000, format=Format(Kind.SWISS))
    start = await flow.fresh(tid)
    moves = 0
    while matches := await flow.open_matches(tid):
        match_id, _, teams = matches[0]
        await flow.play_match(match_id, teams, 0)
        t = await other.get(tid)
        if t.phase is not tm.Phase.RUNNING:
            break
        decided = tm.swiss.find(t.progress.swiss, bracket_id(match_id)).id
        winner, loser = (str(side) for side in tm.swiss.find(t.progress.swiss, decided).sides)
        now = flow.clock()
        if moves % 2 == 0:  # a dispute, upheld by an admin the other way round
            await other.command(
                tid, partial(tm.dispute, match_id=decided, player=loser, reason="lag", now_s=now)
            )
            assert flow.spectator_view(tid, start) == await flow.fresh(tid)
            await other.command(tid, partial(tm.resolve, match_id=decided, winner=loser, now_s=now))
        else:  # a correction to the result it has (a version spectators see no change in)
            await other.command(
                tid, partial(tm.correct, match_id=decided, winner=winner, now_s=now)
            )
        moves += 1
        fresh = await flow.fresh(tid)
        assert flow.spectator_view(tid, start) == fresh
        for process in (flow.tournaments, other):  # what each will make its next delta from
            assert process._snapshot(await process.get(tid)) == fresh
    assert moves >= 8
    assert (await flow.tournaments.get(tid)).phase is tm.Phase.COMPLETE


def bracket_id(match_id: str) -> str:
    return match_id.split(".")[2]  # t.<tournament>.<bracket match>.<attempt>


async def test_each_round_plays_its_best_of_and_the_final_its_own(flow: Flow) -> None:
    players = [f"bo{i}" for i in range(4)]
    tid = await started(flow, players, 5_000, best_of=(3,), final_best_of=5)
    await flow.tournaments.quiet()
    semis = await flow.open_matches(tid)
    assert len(semis) == 2
    for match_id, _, _ in semis:
        loaded = await flow.play.load(match_id)
        assert loaded is not None and loaded[0].best_of == 3  # what its server is told
    for match_id, _, teams in semis:
        await flow.play_match(match_id, teams, 0)
    [(final, _, _)] = await flow.open_matches(tid)
    loaded = await flow.play.load(final)
    assert loaded is not None and loaded[0].best_of == 5


async def test_two_processes_draining_one_outbox_carry_each_row_out_once(flow: Flow) -> None:
    """While one process carries a round of the outbox out, another draining the same
    tournament skips the rows it claimed (PostgreSQL): players hear each event once. SQLite
    has one process and one writer: its drains take turns."""
    from leetgaming.tournaments import Tournaments

    players = [f"w{i}" for i in range(4)]
    tid = await started(flow, players, 5_000)
    await flow.tournaments.quiet()
    gate = asyncio.Event()
    heard: list[tuple[str, object]] = []

    async def slow_publish(channel: str, body: object) -> int:
        heard.append((channel, body))
        await gate.wait()  # a round under way, its rows claimed
        return 0

    async def publish(channel: str, body: object) -> int:
        heard.append((channel, body))
        return 0

    first = Tournaments(flow.db, flow.ledger, flow.play, slow_publish, flow.clock)
    second = Tournaments(flow.db, flow.ledger, flow.play, publish, flow.clock)
    rows = [
        {"type": "event", "kind": "tournament.note", "to": [p], "data": {"n": p}} for p in players
    ]
    await flow.db.executemany(
        "INSERT INTO tournament_outbox (tournament, seq, effect) VALUES (?, ?, ?)",
        [(tid, 10**12 + n, orjson.dumps(row).decode()) for n, row in enumerate(rows)],
    )
    draining = asyncio.create_task(first.drain(tid))
    while not heard:
        await asyncio.sleep(0.01)
    if flow.db.dialect == "postgresql":
        assert await second.drain(tid) == 0  # claimed by the first: skipped
    gate.set()
    assert await draining == len(rows)
    assert await second.drain(tid) == 0  # nothing left
    notes = [c for c, b in heard if isinstance(b, dict) and b["kind"] == "tournament.note"]
    assert sorted(notes) == sorted(f"user:{p}" for p in players)  # each once


class _StallingLedger:
    """The flow's ledger, except that placing an entry-fee hold waits for ``release``: a
    process stopped (SIGSTOP, a long pause) in the middle of carrying out its outbox row."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def create_transfers(self, transfers: list[Transfer]) -> Any:
        if any(
            t.code == accounts.Code.ENTRY_FEE and t.flags & TransferFlags.PENDING for t in transfers
        ):
            self.entered.set()
            await self.release.wait()
        return await self._ledger.create_transfers(transfers)


@pytest.mark.parametrize("flow", ["postgresql"], indirect=True)
async def test_a_withdrawal_never_overtakes_the_hold_of_its_registration(flow: Flow) -> None:
    """One process carries out a registration's hold and stalls before the ledger write; the
    player withdraws through another process meanwhile. The withdrawal's void must not run
    before the hold (it would find nothing to void, and the hold, placed later, would keep
    the fee of a player who has no seat): the nemesis found exactly that under SIGSTOP."""
    from leetgaming.tournaments import Tournaments

    await flow.fund("racer", 5_000)
    tid = await opened(flow)
    stalling = _StallingLedger(flow.ledger)

    async def publish(channel: str, body: object) -> int:
        return 0

    stalled = Tournaments(flow.db, stalling, flow.play, publish, flow.clock)  # type: ignore[arg-type]
    registering = asyncio.create_task(stalled.register(tid, "racer", None, None))
    await asyncio.wait_for(stalling.entered.wait(), 10)
    now = flow.clock()
    await flow.tournaments.command(tid, lambda t: tm.withdraw(t, "racer", now))
    stalling.release.set()
    with contextlib.suppress(tm.TournamentRefused):  # its entry is gone by the time it looks
        await asyncio.wait_for(registering, 10)
    await stalled.drain(tid)
    await flow.tournaments.drain(tid)
    assert (await flow.tournaments.get(tid)).entries == ()
    [wallet] = await flow.ledger.lookup_accounts([accounts.user("racer", "USD").id])
    assert (wallet.balance.debits_pending, wallet.balance.available) == (0, 5_000)
    assert (await reconcile(flow.ledger.store)).ok


async def test_a_correction_after_payout_moves_the_prizes_once(flow: Flow) -> None:
    """Item 14: the final's result is corrected after the prizes were paid. The runner-up gets
    the difference; the former winner gives back what their wallet still has of it, and the
    platform books the rest as its loss. The pool ends at zero again, carrying the correction
    out twice moves nothing more, and a correction that would need matches replayed is
    refused."""
    players = [f"p{i}" for i in range(4)]
    tid = await started(flow, players, 1_000, payout_bps=(7_000, 3_000), participants_min=2)
    await run_to_end(flow, tid, lambda teams: 0)
    done = await flow.tournaments.get(tid)
    assert done.phase is tm.Phase.COMPLETE
    final = max(done.progress.results, key=lambda m: int(m[1:].split("-")[0]))
    [(_, [winner]), (_, [runner_up]), *_] = tm.formats.placements(
        done.config.format, done.participants, done.progress
    )
    # 4 x 1,000 less the 10 % rake: 3,600; 70 % and 30 %
    assert await flow.balance(winner) == (2_520, 2_520)
    assert await flow.balance(runner_up) == (1_080, 1_080)
    # the winner has spent all but 1,000 of it meanwhile
    spent = accounts.settlement("USD")
    [gone] = await flow.ledger.create_transfers(
        [
            Transfer(
                9_001,
                accounts.user(winner, "USD").id,
                spent.id,
                1_520,
                "USD",
                accounts.Code.WITHDRAWAL,
            )
        ]
    )
    assert gone.result == "ok"

    now = flow.clock()
    for match, who, code in [
        (final, winner, "no_change"),
        ("U1-1", done.participants[-1], "replay_needed"),  # a semi-final: the final again
    ]:
        with pytest.raises(tm.TournamentRefused) as refused:
            tm.correct(done, match, who, now)
        assert refused.value.code == code
    _, effects = tm.correct(done, final, runner_up, now)
    [repayout] = [e for e in effects if isinstance(e, tm.Repayout)]
    await flow.tournaments.command(tid, lambda t: tm.correct(t, final, runner_up, now))
    await flow.tournaments.quiet()
    after = await flow.tournaments.get(tid)
    assert after.phase is tm.Phase.COMPLETE
    [(_, [first]), (_, [second]), *_] = tm.formats.placements(
        after.config.format, after.participants, after.progress
    )
    assert (first, second) == (runner_up, winner)
    assert await flow.balance(runner_up) == (2_520, 2_520)
    assert await flow.balance(winner) == (0, 0)  # 1,000 of the 1,440 taken back
    expense = (await flow.ledger.lookup_accounts([accounts.expense("USD").id]))[0]
    assert expense.balance.debits_posted - expense.balance.credits_posted == 440
    assert await flow.pool(tid) == (0, 0)
    told = [b for ch, b in flow.published if b.get("kind") == "tournament.prize_corrected"]
    assert {(b["before"], b["after"]) for b in told} == {("2520", "1080"), ("1080", "2520")}

    # carried out again (a crash before its outbox row went): nothing moves
    before = [await flow.balance(p) for p in players]
    queue = after.config.queue
    await flow.tournaments._carry_out(tid, encode_effect(repayout, queue))
    assert [await flow.balance(p) for p in players] == before
    report = await reconcile(flow.store)
    assert report.ok, report.problems
