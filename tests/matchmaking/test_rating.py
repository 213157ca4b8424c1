"""matchmaking.rating against the ``trueskill`` package: recorded cases, live properties.

``data/trueskill_cases.json`` holds games rated by ``trueskill`` 0.4.5 (its default backend);
the suite replays them without the package. To record them again (same seed, same cases):

    .venv/bin/python tests/matchmaking/test_rating.py

The live tests compare with the installed package on Hypothesis' random games.
"""

from __future__ import annotations

import ast
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from matchmaking.rating import MIN_DELTA, Rating, RatingModel

try:
    import trueskill
except ImportError:  # a test dependency: the recorded cases still run without it
    trueskill = None

CASES_PATH = Path(__file__).parent / "data" / "trueskill_cases.json"
TOLERANCE = 1e-6
CATEGORIES = ("1v1", "2v2", "5v5", "3v3v3", "ffa")
CASES_PER_CATEGORY = 80
SEED = 20240404

needs_trueskill = pytest.mark.skipif(trueskill is None, reason="the trueskill package is absent")


def _model(draw_probability: float) -> RatingModel:
    return RatingModel(draw_probability=draw_probability)


def _teams(raw: Sequence[Sequence[Sequence[float]]]) -> list[list[Rating]]:
    return [[Rating(mu, sigma) for mu, sigma in team] for team in raw]


def _max_difference(
    ours: Sequence[Sequence[Rating]], theirs: Sequence[Sequence[Sequence[float]]]
) -> float:
    assert [len(team) for team in ours] == [len(team) for team in theirs]
    return max(
        max(abs(r.mu - mu), abs(r.sigma - sigma))
        for team, expected in zip(ours, theirs, strict=True)
        for r, (mu, sigma) in zip(team, expected, strict=True)
    )


# Recorded cases ----------------------------------------------------------------------------------


def _load_cases() -> list[dict[str, Any]]:
    if not CASES_PATH.exists():  # not recorded yet: the coverage test fails
        return []
    cases: list[dict[str, Any]] = json.loads(CASES_PATH.read_text())["cases"]
    return cases


CASES = _load_cases()


def test_the_recorded_cases_cover_what_the_issue_names() -> None:
    assert len(CASES) >= 300
    by_category = {
        category: [c for c in CASES if c["category"] == category] for category in CATEGORIES
    }
    for category, cases in by_category.items():
        assert len(cases) >= 50, category
        assert {c["draw_probability"] for c in cases} == {0.0, 0.1, 0.3}, category
        assert any(c["weights"] is not None for c in cases), category
        if category not in ("1v1", "ffa"):  # one-player teams: a weight of 0 is refused
            assert any(
                w == 0 for c in cases if c["weights"] for team in c["weights"] for w in team
            ), category
        assert any(
            w == 0.5 for c in cases if c["weights"] for team in c["weights"] for w in team
        ), category
        # draws (two teams) or ties (free-for-all)
        assert any(len(set(c["ranks"])) < len(c["ranks"]) for c in cases), category
    ffa_sizes = {len(c["teams"]) for c in by_category["ffa"]}
    assert ffa_sizes == set(range(3, 9))
    ratings = [r for c in CASES for team in c["teams"] for r in team]
    assert min(mu for mu, _ in ratings) == 0.0 and max(mu for mu, _ in ratings) == 50.0
    assert min(s for _, s in ratings) == 0.5 and max(s for _, s in ratings) == 8.34


@pytest.mark.parametrize("category", CATEGORIES)
def test_rate_agrees_with_the_recorded_cases(category: str) -> None:
    worst = 0.0
    for case in (c for c in CASES if c["category"] == category):
        model = _model(case["draw_probability"])
        rated = model.rate(_teams(case["teams"]), case["ranks"], case["weights"])
        difference = _max_difference(rated, case["expected"])
        assert difference <= TOLERANCE, case
        worst = max(worst, difference)
    assert worst <= TOLERANCE


@pytest.mark.parametrize("category", CATEGORIES)
def test_quality_agrees_with_the_recorded_cases(category: str) -> None:
    for case in (c for c in CASES if c["category"] == category):
        model = _model(case["draw_probability"])
        quality = model.quality(_teams(case["teams"]), case["weights"])
        assert quality == pytest.approx(case["quality"], abs=1e-9), case


# Live comparison with the package ------------------------------------------------------------------

mus = st.floats(min_value=0.0, max_value=50.0)
sigmas = st.floats(min_value=0.5, max_value=8.34)
ratings = st.builds(Rating, mus, sigmas)
weight_values = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0))
draw_probabilities = st.sampled_from([0.0, 0.1, 0.3])


@st.composite
def games(
    draw: st.DrawFn,
    team_counts: st.SearchStrategy[int],
    team_sizes: st.SearchStrategy[int],
    weight_values: st.SearchStrategy[float] = weight_values,
) -> tuple[float, list[list[Rating]], list[int], list[list[float]] | None]:
    """(draw probability, teams, ranks, weights): ties only when draws are possible."""
    probability = draw(draw_probabilities)
    count = draw(team_counts)
    size = draw(team_sizes)
    teams = [draw(st.lists(ratings, min_size=size, max_size=size)) for _ in range(count)]
    if probability > 0:
        ranks = draw(st.lists(st.integers(0, count - 1), min_size=count, max_size=count))
    else:
        ranks = draw(st.permutations(range(count)))
    weights = None
    if draw(st.booleans()):
        weights = [
            draw(
                st.lists(weight_values, min_size=size, max_size=size).filter(
                    lambda ws: any(w > 0 for w in ws)
                )
            )
            for _ in range(count)
        ]
    return probability, teams, ranks, weights


def _rate(
    probability: float,
    teams: Sequence[Sequence[Rating]],
    ranks: Sequence[int],
    weights: Sequence[Sequence[float]] | None,
) -> list[list[Rating]]:
    """Our answer; a game the float arithmetic cannot rate (as in the package) is rejected.

    That happens only when a team's weights are all (nearly) 0, for a single-player team.
    """
    try:
        return _model(probability).rate(teams, ranks, weights)
    except FloatingPointError:
        assume(False)
        raise


def _package_rate(
    probability: float,
    teams: Sequence[Sequence[Rating]],
    ranks: Sequence[int],
    weights: Sequence[Sequence[float]] | None,
) -> list[list[tuple[float, float]]] | None:
    """The package's answer, or None when it cannot compute one (FloatingPointError)."""
    assert trueskill is not None
    env = trueskill.TrueSkill(draw_probability=probability)
    groups = [[trueskill.Rating(r.mu, r.sigma) for r in team] for team in teams]
    try:
        rated = env.rate(groups, ranks, weights)
    except FloatingPointError:
        return None
    return [[(r.mu, r.sigma) for r in team] for team in rated]


@needs_trueskill
@settings(max_examples=300, deadline=None)
@given(games(st.just(2), st.sampled_from([1, 2, 3, 5])))
def test_two_teams_agree_with_the_package(
    game: tuple[float, list[list[Rating]], list[int], list[list[float]] | None],
) -> None:
    probability, teams, ranks, weights = game
    expected = _package_rate(probability, teams, ranks, weights)
    assume(expected is not None)
    assert expected is not None
    rated = _model(probability).rate(teams, ranks, weights)
    assert _max_difference(rated, expected) <= TOLERANCE


@needs_trueskill
@settings(max_examples=200, deadline=None)
@given(games(st.integers(3, 8), st.integers(1, 3)))
def test_free_for_all_agrees_with_the_package(
    game: tuple[float, list[list[Rating]], list[int], list[list[float]] | None],
) -> None:
    probability, teams, ranks, weights = game
    expected = _package_rate(probability, teams, ranks, weights)
    assume(expected is not None)
    assert expected is not None
    rated = _model(probability).rate(teams, ranks, weights)
    assert _max_difference(rated, expected) <= TOLERANCE


@needs_trueskill
@settings(max_examples=200, deadline=None)
@given(
    games(
        st.integers(2, 6),
        st.integers(1, 5),
        # Weights near 0 make the matrices near singular, where the package's cofactor inverse
        # drifts: see test_quality_stays_exact_when_a_weight_is_near_0.
        st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.01, 1.0)),
    )
)
def test_quality_agrees_with_the_package(
    game: tuple[float, list[list[Rating]], list[int], list[list[float]] | None],
) -> None:
    probability, teams, _, weights = game
    assert trueskill is not None
    env = trueskill.TrueSkill(draw_probability=probability)
    groups = [[trueskill.Rating(r.mu, r.sigma) for r in team] for team in teams]
    expected = env.quality(groups, weights)
    assert _model(probability).quality(teams, weights) == pytest.approx(expected, abs=1e-9)


def test_quality_stays_exact_when_a_weight_is_near_0() -> None:
    model = RatingModel(draw_probability=0.0)
    teams = [[Rating(0.0, 1.0)]] * 4 + [[Rating(1.0, 1.0)], [Rating(0.0, 1.0)]]
    tiny = 5.960464477539063e-08
    weights = [[0.5], [0.5], [0.5], [tiny], [0.5], [tiny]]
    # The package's formula in exact rational arithmetic (the package itself says 0.845962).
    exact = 0.8459991342160368
    assert model.quality(teams, weights) == pytest.approx(exact, rel=1e-12)


# win_probability -----------------------------------------------------------------------------------

teams_of_up_to_5 = st.lists(ratings, min_size=1, max_size=5)


@settings(max_examples=200)
@given(teams_of_up_to_5, teams_of_up_to_5)
def test_win_probability_is_symmetric(team_a: list[Rating], team_b: list[Rating]) -> None:
    model = RatingModel()
    p_ab = model.win_probability(team_a, team_b)
    assert 0 <= p_ab <= 1
    assert p_ab + model.win_probability(team_b, team_a) == pytest.approx(1.0, abs=1e-12)


@given(teams_of_up_to_5)
def test_equal_teams_win_half_the_time(team: list[Rating]) -> None:
    assert RatingModel().win_probability(team, team) == pytest.approx(0.5, abs=1e-15)


@settings(max_examples=200)
@given(teams_of_up_to_5, teams_of_up_to_5, st.floats(0.01, 10.0))
def test_win_probability_rises_with_skill(
    team_a: list[Rating], team_b: list[Rating], gain: float
) -> None:
    model = RatingModel()
    stronger = [Rating(team_a[0].mu + gain, team_a[0].sigma), *team_a[1:]]
    assert model.win_probability(stronger, team_b) >= model.win_probability(team_a, team_b)
    assert model.win_probability(team_b, stronger) <= model.win_probability(team_b, team_a)


def test_win_probability_follows_the_formula() -> None:
    model = RatingModel()
    a = [Rating(30.0, 2.0), Rating(20.0, 3.0)]
    b = [Rating(22.0, 1.0)]
    z = (50.0 - 22.0) / math.sqrt(3 * model.beta**2 + 4.0 + 9.0 + 1.0)
    assert model.win_probability(a, b) == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)))
    # a beta-sized gap between two certain players: Phi(1 / sqrt(2)), about 76%
    certain = 1e-9
    assert model.win_probability(
        [Rating(25 + model.beta, certain)], [Rating(25, certain)]
    ) == pytest.approx(0.7602, abs=1e-4)


# Properties ------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(games(st.just(2), st.sampled_from([1, 2, 5])))
def test_the_winners_rise_and_the_losers_fall(
    game: tuple[float, list[list[Rating]], list[int], list[list[float]] | None],
) -> None:
    probability, teams, ranks, weights = game
    assume(ranks[0] != ranks[1])
    rated = _rate(probability, teams, ranks, weights)
    winner = 0 if ranks[0] < ranks[1] else 1
    for team_index, (before, after) in enumerate(zip(teams, rated, strict=True)):
        for old, new in zip(before, after, strict=True):
            # >=: an expected win by a huge margin moves mu by less than one ulp
            if team_index == winner:
                assert new.mu >= old.mu
            else:
                assert new.mu <= old.mu


def test_an_upset_moves_ratings_more_than_an_expected_result() -> None:
    model = RatingModel()
    strong, weak = Rating(30.0, 4.0), Rating(20.0, 4.0)
    [[strong_won], [weak_lost]] = model.rate([[strong], [weak]], [0, 1])
    [[strong_lost], [weak_won]] = model.rate([[strong], [weak]], [1, 0])
    assert strong_won.mu > strong.mu > strong_lost.mu
    assert weak_won.mu > weak.mu > weak_lost.mu
    assert weak_won.mu - weak.mu > strong_won.mu - strong.mu


@settings(max_examples=300)
@given(games(st.integers(2, 6), st.integers(1, 5)))
def test_sigma_never_grows_beyond_the_dynamics(
    game: tuple[float, list[list[Rating]], list[int], list[list[float]] | None],
) -> None:
    probability, teams, ranks, weights = game
    tau = RatingModel().tau
    rated = _rate(probability, teams, ranks, weights)
    for before, after in zip(teams, rated, strict=True):
        for old, new in zip(before, after, strict=True):
            assert 0 < new.sigma <= math.sqrt(old.sigma**2 + tau**2) * (1 + 1e-12)


def test_the_result_follows_the_input_order() -> None:
    model = RatingModel()
    a = [Rating(27.0, 5.0), Rating(22.0, 6.0)]
    b = [Rating(25.0, 8.0), Rating(31.0, 2.0)]
    c = [Rating(18.0, 3.0), Rating(24.0, 7.0)]
    forward = model.rate([a, b, c], [2, 0, 1], [[1.0, 0.5], [1.0, 1.0], [0.0, 1.0]])
    shuffled = model.rate([c, a, b], [1, 2, 0], [[0.0, 1.0], [1.0, 0.5], [1.0, 1.0]])
    assert forward == [shuffled[1], shuffled[2], shuffled[0]]


def test_a_weight_of_0_is_floored_as_in_the_package() -> None:
    """The package raises every weight to at least MIN_DELTA: the player's mu moves a little.

    sigma stays at sqrt(sigma**2 + tau**2) (only the dynamics) to about 1e-8; mu moves by
    about MIN_DELTA * (sigma**2 + tau**2) / c * v, around 1e-3 here.
    """
    model = RatingModel()
    bench, playing, opponent = model.new(), Rating(25.0, 8.0), Rating(25.0, 8.0)
    [[bench_after, playing_after], _] = model.rate(
        [[bench, playing], [opponent]], [0, 1], [[0.0, 1.0], [1.0]]
    )
    dynamics_only = math.sqrt(bench.sigma**2 + model.tau**2)
    assert bench_after.sigma == pytest.approx(dynamics_only, abs=1e-6)
    assert 0 < bench_after.mu - bench.mu < 0.01
    assert playing_after.mu - playing.mu > 1.0
    [[floored, _], _] = model.rate(
        [[bench, playing], [opponent]], [0, 1], [[MIN_DELTA, 1.0], [1.0]]
    )
    assert floored == bench_after


def test_a_draw_between_equals_changes_only_sigma() -> None:
    model = RatingModel()
    [[a], [b]] = model.rate([[model.new()], [model.new()]], [0, 0])
    assert a.mu == pytest.approx(25.0, abs=1e-12) and b.mu == pytest.approx(25.0, abs=1e-12)
    assert a.sigma < model.sigma and a.sigma == pytest.approx(b.sigma)


def test_new_and_conservative() -> None:
    model = RatingModel(mu=1500.0, sigma=500.0, beta=250.0, tau=5.0)
    assert model.new() == Rating(1500.0, 500.0)
    assert Rating(25.0, 25.0 / 3).conservative == pytest.approx(0.0, abs=1e-12)
    assert Rating(30.0, 2.0).conservative == 24.0


# Bad input -----------------------------------------------------------------------------------------

R = Rating(25.0, 8.0)


@pytest.mark.parametrize(
    ("teams", "ranks", "weights", "message"),
    [
        ([[R]], [0], None, "at least 2 teams"),
        ([], [], None, "at least 2 teams"),
        ([[R], []], [0, 1], None, "team 1 has no players"),
        ([[R], [R]], [0], None, "ranks has 1 entries for 2 teams"),
        ([[R], [R]], [0, 1, 2], None, "ranks has 3 entries for 2 teams"),
        ([[R], [R]], [0, 0.5], None, "ranks must be ints"),
        ([[R], [R]], [0, 1], [[1.0]], "weights has 1 teams"),
        ([[R], [R, R]], [0, 1], [[1.0], [1.0]], "weights of team 1 has 1 entries for 2 players"),
        ([[R], [R]], [0, 1], [[1.0], [1.5]], r"weights must be in \[0, 1\]"),
        ([[R], [R]], [0, 1], [[-0.1], [1.0]], r"weights must be in \[0, 1\]"),
        ([[R], [R]], [0, 1], [[math.nan], [1.0]], r"weights must be in \[0, 1\]"),
        ([[R], [R, R]], [0, 1], [[1.0], [0.0, 0.0]], "team 1 has only weights of 0"),
        ([[R], [(25.0, 8.0)]], [0, 1], None, "not a Rating"),
    ],
)
def test_rate_refuses_bad_input(teams: Any, ranks: Any, weights: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RatingModel().rate(teams, ranks, weights)


def test_a_draw_needs_a_draw_probability() -> None:
    model = RatingModel(draw_probability=0.0)
    with pytest.raises(ValueError, match="draw_probability > 0"):
        model.rate([[R], [R]], [0, 0])
    with pytest.raises(ValueError, match="draw_probability > 0"):
        model.rate([[R], [R], [R]], [1, 0, 1])
    model.rate([[R], [R], [R]], [2, 0, 1])  # no tie: fine


@pytest.mark.parametrize(
    ("mu", "sigma", "message"),
    [
        (25.0, 0.0, "sigma must be finite and > 0"),
        (25.0, -1.0, "sigma must be finite and > 0"),
        (25.0, math.inf, "sigma must be finite and > 0"),
        (math.nan, 1.0, "mu must be finite"),
    ],
)
def test_a_rating_needs_a_finite_mu_and_a_positive_sigma(
    mu: float, sigma: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Rating(mu, sigma)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sigma": 0.0}, "sigma must be"),
        ({"beta": 0.0}, "beta must be"),
        ({"tau": -0.1}, "tau must be"),
        ({"draw_probability": 1.0}, r"draw_probability must be in \[0, 1\)"),
        ({"draw_probability": -0.1}, r"draw_probability must be in \[0, 1\)"),
        ({"mu": math.inf}, "mu must be finite"),
    ],
)
def test_a_model_refuses_bad_settings(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RatingModel(**fields)


def test_quality_and_win_probability_refuse_bad_input() -> None:
    model = RatingModel()
    with pytest.raises(ValueError, match="at least 2 teams"):
        model.quality([[R]])
    with pytest.raises(ValueError, match="team 0 has no players"):
        model.quality([[], [R]])
    with pytest.raises(ValueError, match="only weights of 0"):
        model.quality([[R], [R]], [[0.0], [1.0]])
    with pytest.raises(ValueError, match="both teams need at least one player"):
        model.win_probability([], [R])


def test_the_module_is_a_pure_core() -> None:
    """Only the standard library's arithmetic: no clock, no randomness, no I/O, no await."""
    import matchmaking.rating

    tree = ast.parse(Path(matchmaking.rating.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        assert not isinstance(node, ast.Await | ast.AsyncFunctionDef)
    assert imported <= {"__future__", "math", "collections.abc", "dataclasses", "functools"}


# Recording the cases (not part of the suite) -------------------------------------------------------


def _record_case(rng: random.Random, category: str, index: int) -> dict[str, Any] | None:
    sizes = {"1v1": [1, 1], "2v2": [2, 2], "5v5": [5, 5], "3v3v3": [3, 3, 3]}.get(category)
    if sizes is None:  # free-for-all of 3 to 8 players
        sizes = [1] * rng.randint(3, 8)
    probability = rng.choice([0.0, 0.1, 0.3])
    count = len(sizes)
    # A few fixed extremes first, then random ratings across the whole range.
    if index < 6:
        extremes = [(0.0, 0.5), (50.0, 8.34), (50.0, 0.5), (0.0, 8.34), (25.0, 25.0 / 3)]
        teams = [
            [extremes[(index + k + 2 * t) % 5] for k in range(size)] for t, size in enumerate(sizes)
        ]
    else:
        teams = [
            [(round(rng.uniform(0, 50), 4), round(rng.uniform(0.5, 8.34), 4)) for _ in range(s)]
            for s in sizes
        ]
    ranks = list(range(count))
    rng.shuffle(ranks)
    if probability > 0 and rng.random() < 0.4:  # draws, and ties in free-for-all
        ranks = [min(rank, rng.randrange(count)) for rank in ranks]
        if len(set(ranks)) == count:
            ranks[0] = ranks[-1]
    weights = None
    if rng.random() < 0.45:
        weights = [
            [rng.choice([0.0, 0.5, 1.0, 1.0, round(rng.random(), 3)]) for _ in range(s)]
            for s in sizes
        ]
        for team in weights:
            if not any(team):
                team[0] = 0.5
    assert trueskill is not None
    env = trueskill.TrueSkill(draw_probability=probability)
    groups = [[trueskill.Rating(mu, sigma) for mu, sigma in team] for team in teams]
    if probability == 0 and len(set(ranks)) < count:
        return None
    try:
        rated = env.rate(groups, ranks, weights)
    except FloatingPointError:
        return None
    return {
        "category": category,
        "draw_probability": probability,
        "teams": [[list(r) for r in team] for team in teams],
        "ranks": ranks,
        "weights": weights,
        "expected": [[[r.mu, r.sigma] for r in team] for team in rated],
        "quality": env.quality(groups, weights),
    }


def record_cases(path: Path = CASES_PATH) -> None:
    """Rates seeded random games with the ``trueskill`` package and writes them to ``path``."""
    if trueskill is None:
        raise SystemExit("install the trueskill package first: pip install -e '.[test]'")
    rng = random.Random(SEED)
    cases: list[dict[str, Any]] = []
    skipped = 0
    for category in CATEGORIES:
        index = 0
        recorded = 0
        while recorded < CASES_PER_CATEGORY:
            case = _record_case(rng, category, index)
            index += 1
            if case is None:
                skipped += 1
                continue
            cases.append(case)
            recorded += 1
    header = {
        "generator": "tests/matchmaking/test_rating.py (record_cases)",
        "trueskill": trueskill.__version__,
        "seed": SEED,
    }
    # One case per line: diffs stay readable. Floats print as their shortest repr: exact.
    lines = [json.dumps(case, separators=(",", ":")) for case in cases]
    text = json.dumps(header)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {len(cases)} cases to {path} ({skipped} games the package could not rate)")


if __name__ == "__main__":
    record_cases()
