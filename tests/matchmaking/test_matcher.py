"""The matchmaker's tick: fairness rules, parties, age order, and no ticket used twice."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from matchmaking.matcher import Member, QueueRules, Ticket, best_split, tick
from matchmaking.rating import Rating, RatingModel

MODEL = RatingModel()
DUEL = QueueRules(team_size=1, window_start=2.0, window_growth_per_s=0.5, window_max=8.0)
FIVES = QueueRules(team_size=5, window_start=3.0, window_growth_per_s=0.2, window_max=10.0)


def solo(name: str, mu: float, since: float = 0.0, sigma: float = 2.0) -> Ticket:
    return Ticket(name, (Member(name, Rating(mu, sigma)),), since)


def party(name: str, mus: list[float], since: float = 0.0) -> Ticket:
    members = tuple(Member(f"{name}{i}", Rating(mu, 2.0)) for i, mu in enumerate(mus))
    return Ticket(name, members, since)


def test_close_players_meet_at_once_far_ones_after_waiting() -> None:
    pool = [solo("a", 25.0), solo("b", 26.0), solo("c", 34.0), solo("d", 40.0)]
    [match] = tick(pool, 0.0, DUEL, MODEL)
    assert sorted(match.players()) == [["a"], ["b"]]
    rest = [t for t in pool if t.id not in match.tickets]
    assert tick(rest, 0.0, DUEL, MODEL) == []  # 6 apart, the window is 2
    assert tick(rest, 7.0, DUEL, MODEL) == []  # window 5.5
    [later] = tick(rest, 8.0, DUEL, MODEL)  # window 6
    assert later.spread == 6.0 and later.tickets == {"c", "d"}


def test_the_spread_cap_holds_whatever_the_wait() -> None:
    rules = QueueRules(
        team_size=1, window_start=2, window_growth_per_s=1, window_max=30, spread_max=5
    )
    assert tick([solo("a", 20.0), solo("b", 26.0)], 10_000.0, rules, MODEL) == []
    assert len(tick([solo("a", 20.0), solo("b", 25.0)], 10_000.0, rules, MODEL)) == 1


def test_the_oldest_ticket_chooses_first() -> None:
    # b and c are closest to each other, but a has waited longest and b is in its window.
    pool = [solo("c", 26.0, since=5.0), solo("b", 25.5, since=3.0), solo("a", 24.0, since=0.0)]
    [match] = tick(pool, 6.0, DUEL, MODEL)
    assert match.tickets == {"a", "b"}


def test_1v1_prefers_the_best_quality_opponent() -> None:
    # Same distance in mu; the certain opponent (low sigma) makes the better game.
    pool = [solo("a", 25.0, sigma=1.5), solo("b", 26.0, sigma=6.0), solo("c", 24.0, sigma=1.5)]
    [match] = tick(pool, 0.0, DUEL, MODEL)
    assert match.tickets == {"a", "c"}


def test_five_a_side_teams_are_the_fairest_split() -> None:
    mus = [20.0, 21.0, 22.0, 22.5, 23.0, 24.0, 24.5, 25.0, 26.0, 27.0]
    pool = [solo(f"p{i}", mu) for i, mu in enumerate(mus)]
    [match] = tick(pool, 30.0, FIVES, MODEL)
    teams = match.players()
    assert [len(t) for t in teams] == [5, 5]
    sums = [sum(mus[int(p[1:])] for p in team) for team in teams]
    best = min(
        abs(2 * sum(c) - sum(mus)) for c in itertools.combinations(mus, 5)
    )  # brute force over every split
    assert abs(abs(sums[0] - sums[1]) - best) < 1e-9
    assert 0.5 <= match.favourite_win_probability < 0.51
    assert match.spread == 7.0


def test_parties_stay_whole_on_one_team() -> None:
    pool = [party("trio", [25.0, 26.0, 24.0])] + [solo(f"s{i}", 25.0 + i / 4) for i in range(7)]
    [match] = tick(pool, 0.0, FIVES, MODEL)
    trio_team = [team for team in match.teams if any(t.id == "trio" for t in team)]
    assert len(trio_team) == 1 and sum(t.size for t in trio_team[0]) == 5


def test_parties_that_cannot_make_two_teams_are_not_matched() -> None:
    pool = [party(f"p{i}", [25.0] * 3) for i in range(3)] + [solo("s", 25.0)]  # 3+3+3+1
    assert tick(pool, 0.0, FIVES, MODEL) == []
    too_big = [party("six", [25.0] * 6)] + [solo(f"s{i}", 25.0) for i in range(10)]
    [match] = tick(too_big, 0.0, FIVES, MODEL)
    assert "six" not in match.tickets
    assert best_split([party("a", [25.0] * 4), party("b", [25.0] * 4)], 5) is None


tickets_strategy = st.lists(
    st.tuples(
        st.floats(0, 50),
        st.floats(1.0, 8.0),
        st.floats(0, 300),
        st.integers(1, 3),
    ),
    max_size=60,
)


@given(tickets_strategy, st.sampled_from([DUEL, FIVES, QueueRules(team_size=2)]))
def test_no_ticket_twice_and_every_rule_holds(
    raw: list[tuple[float, float, float, int]], rules: QueueRules
) -> None:
    pool = [
        Ticket(
            f"t{i}",
            tuple(Member(f"t{i}m{j}", Rating(mu + j / 10, sigma)) for j in range(size)),
            since,
        )
        for i, (mu, sigma, since, size) in enumerate(raw)
    ]
    now = 300.0
    proposals = tick(pool, now, rules, MODEL)
    assert proposals == tick(list(reversed(pool)), now, rules, MODEL)  # order-independent
    seen: set[str] = set()
    by_id = {t.id: t for t in pool}
    for proposal in proposals:
        assert not proposal.tickets & seen
        seen |= proposal.tickets
        assert [sum(t.size for t in team) for team in proposal.teams] == [rules.team_size] * 2
        oldest = min((by_id[i] for i in proposal.tickets), key=lambda t: (t.waiting_since_s, t.id))
        assert (
            proposal.spread
            <= min(rules.window(now - oldest.waiting_since_s), rules.spread_max) + 1e-9
        )
        assert 0.5 <= proposal.favourite_win_probability <= 1.0
        assert 0.0 < proposal.quality <= 1.0
