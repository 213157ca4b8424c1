"""The tournament lifecycle: transitions, registration and holds, forfeits, disputes,
corrections, payouts; and a seeded simulation of hundreds of tournaments of every format."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest

from matchmaking import tournament as tm
from matchmaking.formats import Format, Kind
from matchmaking.tournament import (
    CancelMatch,
    Config,
    EntryFee,
    Event,
    Hold,
    IllegalTransition,
    Payout,
    Phase,
    Post,
    StartMatch,
    StartPool,
    Tournament,
    TournamentRefused,
    Void,
)

USD = "USD"


def config(**changes: object) -> Config:
    base: dict[str, object] = {
        "name": "Friday cup",
        "queue": "cs2:1v1:eu",
        "team_size": 1,
        "format": Format(Kind.SINGLE_ELIMINATION),
        "entry_fee": EntryFee(USD, 500),
        "prize_asset": USD,
        "payout_bps": (7_000, 3_000),
        "participants_min": 2,
        "participants_max": 8,
        "rake_bps": 1_000,
    }
    return Config(**(base | changes))  # type: ignore[arg-type]


def roundtrip(t: Tournament) -> Tournament:
    """Through the document the shell stores, and back: nothing may be lost."""
    back = tm.from_document(json.loads(json.dumps(tm.to_document(t))))
    assert back == t
    return back


def registered(t: Tournament, players: list[str], now: float = 1.0) -> Tournament:
    for player in players:
        t, effects = tm.register(t, player, [player], now)
        assert [type(e) for e in effects] == [Hold]
        t, told = tm.held(t, player, effects[0].attempt)  # type: ignore[union-attr]
        assert told[0].kind == "tournament.registered"  # type: ignore[union-attr]
    return t


def test_a_bad_configuration_names_every_problem() -> None:
    with pytest.raises(TournamentRefused) as refused:
        tm.create("t1", config(payout_bps=(6_000, 3_000), rake_bps=2_000, participants_min=1), 0)
    message = str(refused.value)
    assert refused.value.code == "bad_config"
    assert "adds up to 90 %, not 100 %" in message
    assert "rake_bps is 1000..1500" in message
    assert "participants_min" in message
    assert tm.create("t1", config(), 0).phase is Phase.DRAFT
    assert "FREE_ENTRY" in "; ".join(config(entry_fee=EntryFee("FREE_ENTRY", 2)).problems())
    assert config(entry_fee=EntryFee("FREE_ENTRY", 1)).problems() == [
        "without fees in the prize asset, the pool needs a guarantee"
    ]
    assert config(entry_fee=EntryFee("FREE_ENTRY", 1), guaranteed=10_000).problems() == []


def test_the_whole_life_of_a_paid_single_elimination() -> None:
    t = tm.create("t1", config(), 0)
    with pytest.raises(IllegalTransition):
        tm.register(t, "a", ["a"], 0)  # registration is not open
    t, _ = tm.open_registration(t, 0)
    t = roundtrip(registered(t, ["a", "b", "c", "d"]))
    with pytest.raises(TournamentRefused) as twice:
        tm.register(t, "a", ["a"], 1)
    assert twice.value.code == "team_taken"
    t, effects = tm.seed(t, None, {"a": 10, "b": 30, "c": 20, "d": 5}, 2)
    assert t.participants == ("b", "c", "a", "d") and t.phase is Phase.SEEDED
    t, effects = tm.start(roundtrip(t), 3)
    posts = [e for e in effects if isinstance(e, Post)]
    assert sorted(p.team for p in posts) == ["a", "b", "c", "d"]
    [pool] = [e.pool for e in effects if isinstance(e, StartPool)]
    assert (pool.collected, pool.rake, pool.prizes) == (2_000, 200, 1_800)
    matches = {e.match: e for e in effects if isinstance(e, StartMatch)}
    assert {m: e.teams for m, e in matches.items()} == {
        "U1-1": (("b",), ("d",)),
        "U1-2": (("c",), ("a",)),
    }
    with pytest.raises(IllegalTransition):
        tm.register(t, "e", ["e"], 3)  # after the start
    t, _ = tm.match_won(t, "U1-1", 1, "b", 4)
    t, _ = tm.match_won(t, "U1-2", 1, "a", 4)
    assert tm.match_won(t, "U1-2", 1, "c", 4) == (t, [])  # a repeat of a decided match: nothing
    t, effects = tm.match_won(roundtrip(t), "U2-1", 1, "a", 5)
    assert t.phase is Phase.COMPLETE
    [payout] = [e for e in effects if isinstance(e, Payout)]
    amounts = {(p.place, p.player): p.amount for p in payout.split.payouts}
    assert amounts == {(1, "a"): 1_260, (2, "b"): 540} and payout.split.remainder == 0
    assert tm.payout_split(roundtrip(t)) == payout.split  # a function of the state: the same again


def test_leaving_voids_and_a_failed_hold_removes_the_entry() -> None:
    t, _ = tm.open_registration(tm.create("t1", config(), 0), 0)
    t, effects = tm.register(t, "a", ["a"], 1)
    [hold] = effects
    t, _ = tm.hold_failed(t, "a", hold.attempt)  # type: ignore[union-attr]
    assert t.entries == ()
    t, effects = tm.register(t, "a", ["a"], 1)  # again: a new attempt, so a new hold id
    assert effects[0].attempt == 2  # type: ignore[union-attr]
    t, _ = tm.held(t, "a", 2)
    t, effects = tm.withdraw(t, "a", 2)
    assert [type(e) for e in effects] == [Void, Event] and effects[0].attempt == 2  # type: ignore[union-attr]
    with pytest.raises(TournamentRefused) as refused:
        tm.withdraw(t, "a", 2)
    assert refused.value.code == "not_registered"


def test_teams_register_whole_and_the_fee_is_per_player() -> None:
    cfg = config(queue="cs2:2v2:eu", team_size=2, payout_bps=(10_000,))
    t, _ = tm.open_registration(tm.create("t1", cfg, 0), 0)
    with pytest.raises(TournamentRefused, match="2 different players"):
        tm.register(t, "rats", ["a", "a"], 1)
    t, [hold] = tm.register(t, "rats", ["a", "b"], 1)
    assert hold == Hold("rats", 1, ("a", "b"), USD, 500)
    with pytest.raises(TournamentRefused) as refused:
        tm.register(t, "cats", ["b", "c"], 1)
    assert refused.value.code == "already_registered"


def test_check_in_drops_the_absent_and_too_few_cancels() -> None:
    t, _ = tm.open_registration(tm.create("t1", config(check_in_s=600), 0), 0)
    t = registered(t, ["a", "b", "c"])
    t, _ = tm.open_check_in(t, 1)
    with pytest.raises(TournamentRefused) as refused:
        tm.register(t, "d", ["d"], 1)
    assert refused.value.code == "registration_closed"
    t, _ = tm.check_in(t, "a", 2)
    t, _ = tm.check_in(t, "b", 2)
    t, effects = tm.seed(t, None, {}, 3)
    assert [e.team for e in effects if isinstance(e, Void)] == ["c"]
    assert t.participants == ("a", "b")
    t2, _ = tm.open_registration(tm.create("t2", config(check_in_s=600), 0), 0)
    t2, _ = tm.open_check_in(registered(t2, ["a", "b"]), 1)
    t2, _ = tm.check_in(t2, "a", 2)
    t2, effects = tm.seed(t2, None, {}, 3)
    assert t2.phase is Phase.CANCELLED  # one left of the two needed
    assert sorted(e.team for e in effects if isinstance(e, Void)) == ["a", "b"]


def started(players: list[str], **changes: object) -> tuple[Tournament, list[tm.Effect]]:
    t, _ = tm.open_registration(tm.create("t1", config(**changes), 0), 0)
    t, _ = tm.seed(registered(t, players), None, {}, 1)
    return tm.start(t, 2)


def test_forfeits_double_forfeits_and_the_final_waiting_for_an_admin() -> None:
    t, _ = started(["a", "b", "c", "d"], payout_bps=(10_000,))
    t, effects = tm.match_failed(t, "U1-1", 1, ["d"], 3)  # d did not show: a advances
    assert any(isinstance(e, Event) and e.data.get("how") == "forfeit" for e in effects)
    t, effects = tm.match_failed(t, "U1-2", 1, [], 3)  # the server failed: played again
    assert next(e for e in effects if isinstance(e, StartMatch)).attempt == 2
    assert tm.match_won(t, "U1-2", 1, "b", 4) == (t, [])  # the first attempt's late result
    t, _ = tm.match_failed(t, "U1-2", 2, ["b", "c"], 4)  # nobody showed: a walks over
    assert t.phase is Phase.COMPLETE  # the final was a walkover: a wins it
    t, _ = started(["a", "b", "c", "d"], payout_bps=(10_000,))
    t, _ = tm.match_won(t, "U1-1", 1, "a", 3)
    t, _ = tm.match_won(t, "U1-2", 1, "b", 3)
    t, effects = tm.match_failed(t, "U2-1", 1, ["a", "b"], 4)
    assert t.runs["U2-1"] is tm.Run.NEEDS_ADMIN and t.phase is Phase.RUNNING
    with pytest.raises(TournamentRefused):
        tm.resolve(t, "U2-1", None, 5)
    t, effects = tm.resolve(t, "U2-1", "b", 5)
    assert t.phase is Phase.COMPLETE


def test_a_dispute_holds_the_payout_until_an_admin_decides() -> None:
    t, _ = started(["a", "b"])
    t, _ = tm.match_won(t, "U1-1", 1, "a", 3)
    assert t.phase is Phase.COMPLETE  # undisputed: complete at once
    t, _ = started(["a", "b", "c", "d"])
    t, _ = tm.match_won(t, "U1-1", 1, "a", 3)
    with pytest.raises(TournamentRefused) as refused:
        tm.dispute(t, "U1-1", "c", "cheater", 3)
    assert refused.value.code == "not_your_match"
    t, _ = tm.dispute(t, "U1-1", "d", "aimbot", 3)
    t, _ = tm.match_won(t, "U1-2", 1, "b", 3)
    t, effects = tm.match_won(t, "U2-1", 1, "a", 4)
    assert t.phase is Phase.RUNNING and not any(isinstance(e, Payout) for e in effects)
    t, effects = tm.resolve(t, "U1-1", None, 5)  # the result stands
    assert t.phase is Phase.COMPLETE and any(isinstance(e, Payout) for e in effects)


def test_a_correction_resets_downstream_and_cancels_what_is_being_played() -> None:
    t, _ = started([f"p{i}" for i in range(8)])
    for match, winner in (("U1-1", "p0"), ("U1-2", "p3"), ("U1-3", "p1"), ("U1-4", "p2")):
        t, _ = tm.match_won(t, match, 1, winner, 3)
    t, _ = tm.match_won(t, "U2-1", 1, "p0", 4)  # U2-2 (p1 v p2) is being played
    t, effects = tm.correct(t, "U1-3", "p6", 5)  # p6, not p1, won U1-3
    assert CancelMatch("U2-2", 1) in effects
    [again] = [e for e in effects if isinstance(e, StartMatch)]
    assert (again.match, again.attempt, again.teams) == ("U2-2", 2, (("p6",), ("p2",)))
    assert tm.match_won(t, "U2-2", 1, "p1", 6) == (t, [])  # the cancelled attempt counts not
    t, _ = tm.match_won(t, "U2-2", 2, "p6", 6)
    t, _ = tm.match_won(t, "U3-1", 1, "p6", 7)
    assert t.phase is Phase.COMPLETE
    t2, effects = tm.correct(tm.replace(t, phase=Phase.RUNNING), "U1-1", "p7", 8)
    assert "U2-1" not in t2.progress.results  # p7's side changed: U2-1 is played again


# The seeded simulation ----------------------------------------------------------------------


@dataclass
class World:
    """Carries out effects: holds by key, matches in play, payouts; checks as it goes."""

    holds: dict[tuple[str, int], str] = field(default_factory=dict)  # (team, attempt) -> state
    playing: dict[str, int] = field(default_factory=dict)  # match -> attempt
    payouts: int = 0
    pool: int | None = None

    def apply(self, t: Tournament, effects: list[tm.Effect]) -> None:
        for e in effects:
            if isinstance(e, Hold):
                assert (e.team, e.attempt) not in self.holds
                self.holds[(e.team, e.attempt)] = "pending"
            elif isinstance(e, Void | Post):
                assert self.holds[(e.team, e.attempt)] == "held", (e, self.holds)
                self.holds[(e.team, e.attempt)] = "voided" if isinstance(e, Void) else "posted"
            elif isinstance(e, StartPool):
                self.pool = e.pool.prizes
            elif isinstance(e, StartMatch):
                self.playing[e.match] = e.attempt
            elif isinstance(e, CancelMatch):
                assert self.playing.pop(e.match) == e.attempt
            elif isinstance(e, Payout):
                self.payouts += 1
                assert self.pool is not None
                paid = sum(p.amount for p in e.split.payouts) + e.split.remainder
                assert paid == self.pool  # the pool ends at zero


def simulate(seed: int) -> Tournament:
    rng = random.Random(seed)
    kind = rng.choice(list(Kind))
    n = rng.randint(4, 24)
    fmt = Format(kind, third_place=rng.random() < 0.5, groups=2, advance=2)
    team_size = rng.choice([1, 1, 2])
    cfg = config(
        queue="cs2:2v2:eu" if team_size == 2 else "cs2:1v1:eu",
        team_size=team_size,
        format=fmt,
        participants_min=4,
        participants_max=n,
        payout_bps=(5_000, 3_000, 2_000),
        check_in_s=rng.choice([0, 600]),
        guaranteed=rng.choice([0, 100_000]),
        rake_bps=rng.choice([1_000, 1_250, 1_500]),
    )
    world = World()
    t = roundtrip(tm.create(f"t{seed}", cfg, 0))
    now = 0.0

    def step(result: tuple[Tournament, list[tm.Effect]]) -> Tournament:
        nonlocal now
        now += 1
        new, effects = result
        world.apply(new, effects)
        # every hold placed is answered before the next command (as the shell does)
        for e in effects:
            if isinstance(e, Hold):
                if rng.random() < 0.1:
                    world.holds[(e.team, e.attempt)] = "refused"
                    new, more = tm.hold_failed(new, e.team, e.attempt)
                else:
                    world.holds[(e.team, e.attempt)] = "held"
                    new, more = tm.held(new, e.team, e.attempt)
                world.apply(new, more)
        return roundtrip(new)

    t = step(tm.open_registration(t, now))
    for i in range(n + 4):
        players = [f"s{seed}p{i}x{k}" for k in range(team_size)]
        try:
            t = step(tm.register(t, f"team{i}" if team_size > 1 else players[0], players, now))
        except TournamentRefused as refused:
            assert refused.code == "full"
        if t.entries and rng.random() < 0.1:
            t = step(tm.withdraw(t, rng.choice(t.entries).roster[0], now))
    if cfg.check_in_s:
        t = step(tm.open_check_in(t, now))
        for entry in t.entries:
            for player in entry.roster:
                if rng.random() < 0.95:
                    t = step(tm.check_in(t, player, now))
    if rng.random() < 0.05:
        t = step(tm.cancel(t, now, "organizer"))
    else:
        t = step(tm.seed(t, None, {e.team: rng.random() for e in t.entries}, now))
    if t.phase is Phase.SEEDED:
        t = step(tm.start(t, now))
    corrections = 3
    while t.phase is Phase.RUNNING:
        if world.playing:
            match = rng.choice(sorted(world.playing))
            attempt = world.playing.pop(match)
            view = next(
                m
                for m in tm.formats.playable(cfg.format, t.participants, t.progress)
                if m.id == match
            )
            sides = [str(s) for s in view.sides]
            roll = rng.random()
            if roll < 0.08:
                t = step(tm.match_failed(t, match, attempt, [rng.choice(sides)], now))
            elif roll < 0.12:
                t = step(tm.match_failed(t, match, attempt, sides, now))
            elif roll < 0.14:
                t = step(tm.match_failed(t, match, attempt, [], now))
            else:
                t = step(tm.match_won(t, match, attempt, rng.choice(sides), now))
            decided = [
                m
                for m in tm.formats.matches(cfg.format, t.participants, t.progress)
                if m.result in (0, 1)
            ]
            if t.phase is Phase.RUNNING and decided and rng.random() < 0.05:
                target = rng.choice(decided)
                player = t.rosters[str(target.sides[0])][0]
                if target.id not in t.disputes:
                    t = step(tm.dispute(t, target.id, player, "unfair", now))
            if t.phase is Phase.RUNNING and decided and corrections and rng.random() < 0.05:
                corrections -= 1
                target = rng.choice(decided)
                t = step(
                    tm.correct(t, target.id, str(target.sides[1 - int(target.result or 0)]), now)
                )
        elif t.disputes:
            t = step(tm.resolve(t, sorted(t.disputes)[0], None, now))
        else:
            waiting = [m for m, run in t.runs.items() if run is tm.Run.NEEDS_ADMIN]
            assert waiting, "running with nothing to play, no dispute, nothing for an admin"
            view = next(
                m
                for m in tm.formats.playable(cfg.format, t.participants, t.progress)
                if m.id == waiting[0]
            )
            t = step(tm.resolve(t, waiting[0], str(view.sides[0]), now))
    # Every hold ends posted, voided or refused; the prizes are paid once, or never on cancel
    assert all(state in ("posted", "voided", "refused") for state in world.holds.values()), (
        world.holds
    )
    if t.phase is Phase.COMPLETE:
        assert world.payouts == 1 and not world.playing
        posted = [k for k, v in world.holds.items() if v == "posted"]
        assert sorted(team for team, _ in posted) == sorted(t.participants)
    else:
        assert t.phase is Phase.CANCELLED and world.payouts == 0
        assert "posted" not in world.holds.values()
    return t


def test_hundreds_of_tournaments_of_every_format_resolve_every_hold_and_pay_once() -> None:
    phases = [simulate(seed).phase for seed in range(300)]
    assert phases.count(Phase.COMPLETE) > 200  # most play to the end


def test_the_schedule_says_which_step_is_due() -> None:
    t, _ = tm.open_registration(tm.create("t1", config(starts_at_s=1_000, check_in_s=300), 0), 0)
    assert tm.due(t, 699) is None
    assert tm.due(t, 700) is tm.Transition.OPEN_CHECK_IN
    t, _ = tm.open_check_in(registered(t, ["a", "b"]), 710)
    assert tm.due(t, 1_009) is None  # the window runs 300 s from when it opened
    assert tm.due(t, 1_010) is tm.Transition.SEED
    t, _ = tm.check_in(t, "a", 800)
    t, _ = tm.check_in(t, "b", 800)
    t, _ = tm.seed(t, None, {}, 1_010)
    assert tm.due(t, 1_010) is tm.Transition.START
    plain, _ = tm.open_registration(tm.create("t2", config(), 0), 0)
    assert tm.due(plain, 10**9) is None  # no schedule: an admin moves it
    direct, _ = tm.open_registration(tm.create("t3", config(starts_at_s=50), 0), 0)
    assert tm.due(direct, 50) is tm.Transition.SEED  # no check-in window: seeded at the start
