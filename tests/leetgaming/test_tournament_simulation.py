"""A seeded simulation: tournaments of every format with random registrations, withdrawals,
check-ins, results, forfeits, double forfeits, replays, disputes and corrections, through the
real cores, the real flow and the real ledger. After every step the tournament's money is
where its state says (holds pending, fees posted, prizes paid) and the ledger reconciles;
at the end every hold is resolved and every prize paid once. Any failure replays from its
seed."""

from __future__ import annotations

import random
from pathlib import Path

from ledger import reconcile
from leetgaming import tournament_store
from leetgaming.tournaments import match_id_of
from matchmaking import formats
from matchmaking import tournament as tm
from matchmaking.formats import Format, Kind
from wallet import accounts

from .tournament_flow import Flow, config, flow_on

FEE = 1_000
FUNDS = 3_000
TOURNAMENTS = 60  # seeds (120 took 30 s of the suite; the seeds vary every format and step)


async def check_money(flow: Flow, t: tm.Tournament, funded: dict[str, int]) -> None:
    """The pool and the players' wallets as the tournament's state says."""
    posted, pending = await flow.pool(t.id)
    held = sum(len(e.roster) for e in t.entries if e.hold is tm.HoldState.HELD)
    if t.phase in (tm.Phase.REGISTRATION, tm.Phase.CHECK_IN, tm.Phase.SEEDED):
        assert (posted, pending) == (0, FEE * held)
    elif t.phase is tm.Phase.CANCELLED:
        assert (posted, pending) == (0, 0)
    elif t.phase is tm.Phase.RUNNING:
        assert (posted, pending) == (tm.pool_of(t).prizes, 0)
    else:
        assert (posted, pending) == (0, 0)  # complete: every prize paid, the pool empty
    entered = {p for e in t.entries for p in e.roster}
    prizes: dict[str, int] = {}
    if t.phase is tm.Phase.COMPLETE:
        for payout in tm.payout_split(t).payouts:
            prizes[payout.player] = prizes.get(payout.player, 0) + payout.amount
    for player, funds in funded.items():
        balance, available = await flow.balance(player)
        in_it = player in entered and t.phase is not tm.Phase.CANCELLED
        spent = FEE if in_it and t.phase in (tm.Phase.RUNNING, tm.Phase.COMPLETE) else 0
        holding = FEE if in_it and t.phase not in (tm.Phase.RUNNING, tm.Phase.COMPLETE) else 0
        assert balance == funds - spent + prizes.get(player, 0), (player, t.phase)
        assert available == balance - holding, (player, t.phase)


async def simulate(flow: Flow, seed: int) -> tm.Phase:
    rng = random.Random(seed)
    kind = rng.choice(list(Kind))
    n = rng.randint(4, 9)
    team_size = rng.choice([1, 1, 2])
    cfg = config(
        queue="cs2:2v2:eu" if team_size == 2 else "cs2:1v1:eu",
        team_size=team_size,
        format=Format(kind, third_place=rng.random() < 0.5, groups=2, advance=2),
        entry_fee=tm.EntryFee("USD", FEE),
        participants_min=4,
        participants_max=n,
        payout_bps=(5_000, 3_000, 2_000),
        check_in_s=rng.choice([0, 600]),
        guaranteed=rng.choice([0, 20_000]),
        rake_bps=rng.choice([1_000, 1_250, 1_500]),
    )
    tournaments = flow.tournaments
    tid = (await tournaments.create("admin", cfg)).id
    funded: dict[str, int] = {}
    now = flow.clock()
    steps = 0

    async def run(step: object) -> tm.Tournament:
        nonlocal steps
        steps += 1
        t = await tournaments.command(tid, step)  # type: ignore[arg-type]
        assert await tournament_store.read(flow.db, tid) == t  # the rows say what memory says
        assert (
            await flow.db.fetch("SELECT seq FROM tournament_outbox WHERE tournament = ?", tid) == []
        )
        await check_money(flow, t, funded)
        if steps % 20 == 0:
            assert (await reconcile(flow.store)).ok
        return t

    t = await run(lambda x: tm.open_registration(x, now))
    for i in range(n + 2):
        players = [f"s{seed}p{i}x{k}" for k in range(team_size)]
        broke = rng.random() < 0.1  # the last of the team cannot pay: nobody of it is held
        for p in players:
            funded[p] = FEE - 1 if broke and p == players[-1] else FUNDS
            await flow.fund(p, funded[p])
        name = f"s{seed}team{i}" if team_size > 1 else players[0]
        try:
            await tournaments.register(tid, players[0], name, players)
        except tm.TournamentRefused as refused:
            assert refused.code in ("full", "insufficient_funds"), refused.code
        t = await tournaments.get(tid)
        await check_money(flow, t, funded)
        if t.entries and rng.random() < 0.15:
            leaver = rng.choice(t.entries).roster[0]
            t = await run(lambda x, p=leaver: tm.withdraw(x, p, now))
    if cfg.check_in_s:
        t = await run(lambda x: tm.open_check_in(x, now))
        for entry in t.entries:
            for p in entry.roster:
                if rng.random() < 0.95:
                    t = await run(lambda x, p=p: tm.check_in(x, p, now))
    if rng.random() < 0.05:
        t = await run(lambda x: tm.cancel(x, now, "organizer"))
    else:
        strength = {e.team: rng.random() for e in t.entries}
        t = await run(lambda x: tm.seed(x, None, strength, now))
    if t.phase is tm.Phase.SEEDED:
        t = await run(lambda x: tm.start(x, now))
    corrections = 2
    while t.phase is tm.Phase.RUNNING:
        on = [m for m, run_ in t.runs.items() if run_ is tm.Run.PLAYING]
        if on:
            match = rng.choice(sorted(on))
            attempt = t.attempts[match]
            view = next(
                m for m in formats.playable(cfg.format, t.participants, t.progress) if m.id == match
            )
            teams = [list(t.rosters[str(side)]) for side in view.sides]
            played = match_id_of(tid, match, attempt)
            roll = rng.random()
            steps += 1
            if roll < 0.08:  # one side declines its match check-in: it forfeits
                await flow.decline(played, rng.choice(rng.choice(teams)))
            elif roll < 0.12:  # nobody accepts in time: both forfeit
                flow.clock.now_s += 60
                await flow.play.sweep()
                await tournaments.quiet()
            elif roll < 0.14:  # everyone there, the server gives up: played again
                await flow.accept_all(played, teams)
                await flow.server_abort(played)
            else:
                await flow.play_match(played, teams, rng.randrange(2))
            t = await tournaments.get(tid)
            await check_money(flow, t, funded)
            decided = [
                m
                for m in formats.matches(cfg.format, t.participants, t.progress)
                if m.result in (0, 1)
            ]
            if t.phase is tm.Phase.RUNNING and decided and rng.random() < 0.05:
                target = rng.choice(decided)
                if target.id not in t.disputes:
                    by = t.rosters[str(target.sides[0])][0]
                    t = await run(lambda x, m=target.id, by=by: tm.dispute(x, m, by, "unfair", now))
            if t.phase is tm.Phase.RUNNING and decided and corrections and rng.random() < 0.05:
                corrections -= 1
                target = rng.choice(decided)
                loser = str(target.sides[1 - int(target.result or 0)])
                t = await run(lambda x, m=target.id, w=loser: tm.correct(x, m, w, now))
        elif t.disputes:
            disputed = sorted(t.disputes)[0]
            t = await run(lambda x, m=disputed: tm.resolve(x, m, None, now))
        else:
            waiting = next(m for m, r in t.runs.items() if r is tm.Run.NEEDS_ADMIN)
            view = next(
                m
                for m in formats.playable(cfg.format, t.participants, t.progress)
                if m.id == waiting
            )
            winner = str(view.sides[0])
            t = await run(lambda x, m=waiting, w=winner: tm.resolve(x, m, w, now))
    # Every hold resolved: nothing pending anywhere in this tournament's pool, no match left on
    assert (await flow.pool(tid))[1] == 0
    open_matches = await flow.open_matches(tid)
    assert open_matches == [], open_matches
    return t.phase


async def test_sixty_seeded_tournaments_keep_the_ledger_whole(tmp_path: Path) -> None:
    async with flow_on(f"sqlite:///{tmp_path}/app.sqlite3") as flow:
        phases = [await simulate(flow, seed) for seed in range(TOURNAMENTS)]
        report = await reconcile(flow.store)
        assert report.ok, report.problems
        assert phases.count(tm.Phase.COMPLETE) > TOURNAMENTS * 0.6
        revenue = await flow.ledger.lookup_accounts([accounts.revenue("USD").id])
        assert revenue and revenue[0].balance.posted > 0  # the rake was taken
