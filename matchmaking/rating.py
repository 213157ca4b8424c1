"""TrueSkill ratings: a pure function from (ratings, result, model) to new ratings.

A :class:`Rating` is a player's skill belief for one game mode, a Gaussian ``N(mu, sigma**2)``;
leaderboards sort by :attr:`Rating.conservative`, ``mu - 3 * sigma``. A :class:`RatingModel` is
the TrueSkill environment of one queue (its draw probability is the queue's). No clock, no
randomness, no I/O: the shell loads the ratings, calls :meth:`RatingModel.rate` and stores the
result.

The model reproduces the ``trueskill`` package (0.4.5, its default pure-Python backend) to
within 1e-6 on every rating (the tests hold it to that on recorded and random cases):

- two teams (1v1, 2v2, 5v5, with partial-play weights): the factor graph has one truncation and
  no loop, so the update is the closed form ``mu_i += ±w_i * s_i**2 / c * v(t, e)``,
  ``sigma_i**2 = s_i**2 * (1 - w_i**2 * s_i**2 / c**2 * w(t, e))``, with ``s_i**2 = sigma_i**2
  + tau**2`` (dynamics first), ``c**2 = sum w_i**2 * (s_i**2 + beta**2)``, ``t`` the weighted
  mean difference over ``c`` and ``e`` the draw margin over ``c``;
- three or more teams (free-for-all, ties allowed): the package's message schedule on the
  team-difference chain, sweeping right then left, stopping once no truncation moved its
  variable by more than :data:`MIN_DELTA` (in the package's units: the larger of the change of
  ``tau`` and the square root of the change of ``pi``), or after :data:`SWEEPS_MAX` sweeps.

Where the package's behaviour is surprising, this module copies it on purpose, so that ratings
agree with the reference:

- the normal cdf is the package's erfc approximation (Numerical Recipes' ``erfcc``, fractional
  error below 1.2e-7) and its ppf inverts that approximation; with exact ``math.erfc`` an upset
  between far-apart ratings moves ``mu`` up to about 1e-3 differently;
- a partial-play weight is raised to at least :data:`MIN_DELTA`: a weight of 0 still moves the
  player's ``mu`` a little (about ``1e-4 * s**2 / c * v``, around 1e-3 at default settings)
  while their ``sigma`` stays at ``sqrt(sigma**2 + tau**2)`` to about 1e-8;
- the draw margin of each adjacent pair of teams (sorted by rank) is
  ``ppf((p + 1) / 2) * sqrt(n) * beta`` with ``n`` the number of players of the two teams
  (weights do not count), and only adjacent equal ranks make a tie.

Invariants, for every call of :meth:`RatingModel.rate`:

- the result has the shape of the input teams, in the input order;
- every new ``sigma`` is at most ``sqrt(sigma**2 + tau**2)`` (a result never adds uncertainty
  beyond the dynamics), and positive;
- with two teams and no draw, no winner's ``mu`` falls and no loser's rises (an expected win
  by a huge margin may move them by less than the last bit);
- bad input raises :class:`ValueError` naming what is wrong and computes nothing; that includes
  a team whose weights are all 0 (the package answers those with a ``FloatingPointError`` or
  with numbers driven by its weight floor);
- a result the float arithmetic cannot represent raises :class:`FloatingPointError`, where the
  package does: for absurd rating gaps, or a team whose total weight is nearly 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

#: The package's convergence threshold, and its floor for partial-play weights.
MIN_DELTA = 0.0001
#: The package's cap on sweeps over the team-difference chain (free-for-all only).
SWEEPS_MAX = 10

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# The normal distribution, as the ``trueskill`` package's default backend computes it. --------


_ERFC_COEFFICIENTS = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
)


def _erfc(x: float) -> float:
    """Complementary error function, Numerical Recipes' ``erfcc`` (the package's)."""
    z = abs(x)
    t = 1.0 / (1.0 + z / 2.0)
    # Horner's scheme, innermost coefficient first: the same operations as the package's
    # nested expression, so the same rounding.
    poly = _ERFC_COEFFICIENTS[0]
    for coefficient in _ERFC_COEFFICIENTS[1:]:
        poly = coefficient + t * poly
    r = t * math.exp(-z * z - 1.26551223 + t * poly)
    return 2.0 - r if x < 0 else r


def _cdf(x: float) -> float:
    return 0.5 * _erfc(-x / _SQRT2)


def _pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-(x * x) / 2)


def _erfcinv(y: float) -> float:
    """Inverse of :func:`_erfc`: a rational first guess and two Halley steps (the package's)."""
    if y >= 2:
        return -100.0
    if y <= 0:
        return 100.0
    zero_point = y < 1
    if not zero_point:
        y = 2 - y
    t = math.sqrt(-2 * math.log(y / 2.0))
    x = -0.70711 * ((2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t)
    for _ in range(2):
        err = _erfc(x) - y
        x += err / (1.12837916709551257 * math.exp(-(x**2)) - x * err)
    return x if zero_point else -x


@lru_cache(maxsize=64)
def _draw_z(draw_probability: float) -> float:
    """``ppf((p + 1) / 2)``: the draw margin of a pair of teams in units of ``sqrt(n) * beta``."""
    return -_SQRT2 * _erfcinv(2 * ((draw_probability + 1) / 2.0))


# Herbrich's v and w: the truncated Gaussian's mean shift and variance factor. -------------------


def _v_win(t: float, e: float) -> float:
    x = t - e
    denom = _cdf(x)
    return _pdf(x) / denom if denom else -x


def _w_win(t: float, e: float, v: float) -> float:
    w = v * (v + (t - e))
    if 0 < w < 1:
        return w
    raise FloatingPointError(
        f"the rating update cannot be computed in floating point (w = {w!r}): "
        "the winners' ratings are too far below the losers'"
    )


def _v_draw(t: float, e: float) -> float:
    abs_t = abs(t)
    a, b = e - abs_t, -e - abs_t
    denom = _cdf(a) - _cdf(b)
    numer = _pdf(b) - _pdf(a)
    return ((numer / denom) if denom else a) * (-1 if t < 0 else +1)


def _w_draw(t: float, e: float) -> float:
    abs_t = abs(t)
    a, b = e - abs_t, -e - abs_t
    denom = _cdf(a) - _cdf(b)
    if not denom:
        raise FloatingPointError(
            "the rating update of a draw cannot be computed in floating point: "
            "the teams' ratings are too far apart"
        )
    v = _v_draw(abs_t, e)
    return v**2 + (a * _pdf(a) - b * _pdf(b)) / denom


def _v_w(t: float, e: float, draw: bool) -> tuple[float, float]:
    if draw:
        return _v_draw(t, e), _w_draw(t, e)
    v = _v_win(t, e)
    return v, _w_win(t, e, v)


# The public model. -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rating:
    """A skill belief ``N(mu, sigma**2)``: ``mu`` finite, ``sigma`` finite and positive."""

    mu: float
    sigma: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.mu):
            raise ValueError(f"rating mu must be finite, got {self.mu!r}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"rating sigma must be finite and > 0, got {self.sigma!r}")

    @property
    def conservative(self) -> float:
        """``mu - 3 * sigma``: about 99.9% sure the skill is at least this; the leaderboard key."""
        return self.mu - 3 * self.sigma


@dataclass(frozen=True, slots=True)
class RatingModel:
    """The TrueSkill environment of one queue.

    ``mu``, ``sigma``: a new player's rating. ``beta``: the performance noise (a skill gap of
    ``beta`` wins about 76% of 1v1s). ``tau``: the dynamics added to every ``sigma**2`` before a
    game, so ratings keep moving. ``draw_probability``: the chance that two equal teams draw,
    in [0, 1); 0 forbids draws.
    """

    mu: float = 25.0
    sigma: float = 25.0 / 3
    beta: float = 25.0 / 6
    tau: float = 25.0 / 300
    draw_probability: float = 0.10

    def __post_init__(self) -> None:
        if not math.isfinite(self.mu):
            raise ValueError(f"mu must be finite, got {self.mu!r}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be finite and > 0, got {self.sigma!r}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be finite and > 0, got {self.beta!r}")
        if not (math.isfinite(self.tau) and self.tau >= 0):
            raise ValueError(f"tau must be finite and >= 0, got {self.tau!r}")
        if not (0 <= self.draw_probability < 1):
            raise ValueError(f"draw_probability must be in [0, 1), got {self.draw_probability!r}")

    def new(self) -> Rating:
        return Rating(self.mu, self.sigma)

    def rate(
        self,
        teams: Sequence[Sequence[Rating]],
        ranks: Sequence[int],
        weights: Sequence[Sequence[float]] | None = None,
    ) -> list[list[Rating]]:
        """The ratings after one game, shaped like ``teams``.

        ``ranks[i]`` is team ``i``'s place: lower is better, equal ranks are a draw (a tie in a
        free-for-all). ``weights[i][j]`` in [0, 1] is the share of the game player ``j`` of team
        ``i`` played (partial play); ``None`` means everybody played all of it. Same semantics
        and, to 1e-6, same numbers as ``trueskill.TrueSkill(...).rate(teams, ranks, weights)``.
        """
        _check_teams(teams)
        if len(ranks) != len(teams):
            raise ValueError(f"ranks has {len(ranks)} entries for {len(teams)} teams")
        for rank in ranks:
            if not isinstance(rank, int) or isinstance(rank, bool):
                raise ValueError(f"ranks must be ints, got {rank!r}")
        floored = _floored_weights(teams, weights)
        # Stable, as the package's sort: equal ranks keep their input order.
        order = sorted(range(len(teams)), key=ranks.__getitem__)
        draws = [ranks[order[k]] == ranks[order[k + 1]] for k in range(len(order) - 1)]
        if any(draws) and self.draw_probability == 0:
            raise ValueError("equal ranks (a draw) need a draw_probability > 0")
        sorted_teams = [teams[i] for i in order]
        sorted_weights = [floored[i] for i in order]
        if len(teams) == 2:
            rated = self._rate_two(sorted_teams, sorted_weights, draws[0])
        else:
            rated = self._rate_chain(sorted_teams, sorted_weights, draws)
        result: list[list[Rating]] = [[] for _ in teams]
        for position, i in enumerate(order):
            result[i] = rated[position]
        return result

    def quality(
        self,
        teams: Sequence[Sequence[Rating]],
        weights: Sequence[Sequence[float]] | None = None,
    ) -> float:
        """The probability of a draw, relative to the draw probability of equal teams, in (0, 1].

        Higher is a fairer match. Same value as ``trueskill``'s ``quality(teams, weights)``
        (which, like this, ignores ``tau`` and floors no weight), to 1e-9; nearer the exact value
        than the package when weights near 0 make its matrices near singular.
        """
        _check_teams(teams)
        if weights is None:
            team_weights: list[list[float]] = [[1.0] * len(team) for team in teams]
        else:
            _check_weights(teams, weights)
            team_weights = [[float(w) for w in ws] for ws in weights]
        beta2 = self.beta * self.beta
        # Per team: sum w*mu, sum w**2 * (beta**2 + sigma**2), sum w**2.
        means, spreads, squares = [], [], []
        for team, ws in zip(teams, team_weights, strict=True):
            means.append(sum(w * r.mu for r, w in zip(team, ws, strict=True)))
            spreads.append(
                sum(w * w * (beta2 + r.sigma * r.sigma) for r, w in zip(team, ws, strict=True))
            )
            squares.append(sum(w * w for w in ws))
        # The package's matrix formula, in closed form: with D the team-difference matrix,
        # S = diag(spreads) and W = diag(squares), det(D^T S D) = prod(s) * sum(1 / s) (Cauchy-
        # Binet: dropping any one team leaves a unit triangular D), and m^T (D^T S D)^-1 m is
        # sum((m_t - m_bar)**2 / s_t) with m_bar the precision-weighted mean. Every term is
        # positive: no cancellation, even for weights near 0 where the matrices are near
        # singular (and the package's cofactor inverse drifts).
        precision_total = sum(1.0 / spread for spread in spreads)
        mean_bar = sum(m / spread for m, spread in zip(means, spreads, strict=True))
        mean_bar /= precision_total
        exponent = sum(
            (m - mean_bar) ** 2 / spread for m, spread in zip(means, spreads, strict=True)
        )
        log_det_ratio = (
            (len(teams) - 1) * math.log(beta2)
            + sum(math.log(sq / spread) for sq, spread in zip(squares, spreads, strict=True))
            + math.log(sum(1.0 / sq for sq in squares) / precision_total)
        )
        return math.exp(-0.5 * exponent + 0.5 * log_det_ratio)

    def win_probability(self, team_a: Sequence[Rating], team_b: Sequence[Rating]) -> float:
        """P(``team_a`` beats ``team_b``) = Phi((sum mu_a - sum mu_b) / sqrt(n beta**2 + sum sigma**2)).

        ``n`` is the number of players of both teams; draws are not set apart (equal teams
        give 0.5). Exact ``math.erfc``: no reference to agree with here.
        """
        if not team_a or not team_b:
            raise ValueError("both teams need at least one player")
        players = [*team_a, *team_b]
        gap = sum(r.mu for r in team_a) - sum(r.mu for r in team_b)
        spread = math.sqrt(
            len(players) * self.beta * self.beta + sum(r.sigma * r.sigma for r in players)
        )
        return 0.5 * math.erfc(-gap / (spread * _SQRT2))

    # Two teams: the closed form. -----------------------------------------------------------

    def _rate_two(
        self,
        teams: list[Sequence[Rating]],
        weights: list[list[float]],
        draw: bool,
    ) -> list[list[Rating]]:
        beta2 = self.beta * self.beta
        tau2 = self.tau * self.tau
        winners, losers = teams
        w_winners, w_losers = weights
        s2_winners = [r.sigma * r.sigma + tau2 for r in winners]
        s2_losers = [r.sigma * r.sigma + tau2 for r in losers]
        c2 = 0.0
        gap = 0.0
        for r, s2, w in zip(winners, s2_winners, w_winners, strict=True):
            c2 += w * w * (s2 + beta2)
            gap += w * r.mu
        for r, s2, w in zip(losers, s2_losers, w_losers, strict=True):
            c2 += w * w * (s2 + beta2)
            gap -= w * r.mu
        c = math.sqrt(c2)
        margin = _draw_z(self.draw_probability) * math.sqrt(len(winners) + len(losers)) * self.beta
        v, w_factor = _v_w(gap / c, margin / c, draw)
        shift = v / c
        shrink = w_factor / c2
        return [
            [
                Rating(r.mu + w * s2 * shift, math.sqrt(s2 * (1 - w * w * s2 * shrink)))
                for r, s2, w in zip(winners, s2_winners, w_winners, strict=True)
            ],
            [
                Rating(r.mu - w * s2 * shift, math.sqrt(s2 * (1 - w * w * s2 * shrink)))
                for r, s2, w in zip(losers, s2_losers, w_losers, strict=True)
            ],
        ]

    # Three or more teams: the package's message schedule. --------------------------------

    def _rate_chain(
        self,
        teams: list[Sequence[Rating]],
        weights: list[list[float]],
        draws: list[bool],
    ) -> list[list[Rating]]:
        """Expectation propagation on the chain of team differences, as ``trueskill`` runs it.

        Gaussians are kept in natural form (``pi`` = 1/variance, ``tau`` = pi * mean; no
        relation to the model's dynamics ``tau``). Per team ``k``: the team performance's
        marginal ``t_*[k]`` and the fixed message ``p_*[k]`` from its players. Per difference
        ``j`` (team ``j`` minus team ``j + 1``): its marginal ``d_*[j]``, the messages ``down_*``
        (from the sum factor) and ``trunc_*`` (from the truncation), and the messages the sum
        factor sends up to its left team ``left_*`` and right team ``right_*``.
        """
        beta2 = self.beta * self.beta
        tau2 = self.tau * self.tau
        z = _draw_z(self.draw_probability)
        # Players: prior with dynamics, then the performance message (variance + beta**2).
        prior_pi: list[list[float]] = []
        prior_tau: list[list[float]] = []
        perf_pi: list[list[float]] = []
        perf_tau: list[list[float]] = []
        p_pi: list[float] = []
        p_tau: list[float] = []
        for team, ws in zip(teams, weights, strict=True):
            team_prior_pi, team_prior_tau, team_perf_pi, team_perf_tau = [], [], [], []
            mean = 0.0
            variance = 0.0
            for r, w in zip(team, ws, strict=True):
                pi = (r.sigma * r.sigma + tau2) ** -1
                tau = pi * r.mu
                a = 1.0 / (1.0 + beta2 * pi)
                team_prior_pi.append(pi)
                team_prior_tau.append(tau)
                team_perf_pi.append(a * pi)
                team_perf_tau.append(a * tau)
                mean += w * (tau / pi)
                variance += w * w / (a * pi)
            prior_pi.append(team_prior_pi)
            prior_tau.append(team_prior_tau)
            perf_pi.append(team_perf_pi)
            perf_tau.append(team_perf_tau)
            p_pi.append(1.0 / variance)
            p_tau.append(mean / variance)
        t_pi = list(p_pi)
        t_tau = list(p_tau)
        n = len(draws)
        margins = [z * math.sqrt(len(teams[j]) + len(teams[j + 1])) * self.beta for j in range(n)]
        d_pi = [0.0] * n
        d_tau = [0.0] * n
        down_pi = [0.0] * n
        down_tau = [0.0] * n
        trunc_pi = [0.0] * n
        trunc_tau = [0.0] * n
        left_pi = [0.0] * n
        left_tau = [0.0] * n
        right_pi = [0.0] * n
        right_tau = [0.0] * n

        def down(j: int) -> None:
            # difference j = team j - team j + 1, from what the teams hear from elsewhere.
            a_pi = t_pi[j] - left_pi[j]
            a_tau = t_tau[j] - left_tau[j]
            b_pi = t_pi[j + 1] - right_pi[j]
            b_tau = t_tau[j + 1] - right_tau[j]
            if a_pi and b_pi:
                pi = 1.0 / (1.0 / a_pi + 1.0 / b_pi)
                tau = pi * (a_tau / a_pi - b_tau / b_pi)
            else:  # a flat message (w rounded to 0): infinite variance, as in the package
                pi = tau = 0.0
            d_pi[j] = d_pi[j] - down_pi[j] + pi
            d_tau[j] = d_tau[j] - down_tau[j] + tau
            down_pi[j] = pi
            down_tau[j] = tau

        def truncate(j: int) -> float:
            cavity_pi = d_pi[j] - trunc_pi[j]
            cavity_tau = d_tau[j] - trunc_tau[j]
            sqrt_pi = math.sqrt(cavity_pi)
            v, w = _v_w(cavity_tau / sqrt_pi, margins[j] * sqrt_pi, draws[j])
            denom = 1.0 - w
            pi = cavity_pi / denom
            tau = (cavity_tau + sqrt_pi * v) / denom
            pi_change = abs(d_pi[j] - pi)
            delta = 0.0 if pi_change == math.inf else max(abs(d_tau[j] - tau), math.sqrt(pi_change))
            trunc_pi[j] = pi + trunc_pi[j] - d_pi[j]
            trunc_tau[j] = tau + trunc_tau[j] - d_tau[j]
            d_pi[j] = pi
            d_tau[j] = tau
            return delta

        def up_right(j: int) -> None:
            # team j + 1 = team j - difference j
            a_pi = t_pi[j] - left_pi[j]
            a_tau = t_tau[j] - left_tau[j]
            b_pi = d_pi[j] - down_pi[j]
            b_tau = d_tau[j] - down_tau[j]
            if a_pi and b_pi:
                pi = 1.0 / (1.0 / a_pi + 1.0 / b_pi)
                tau = pi * (a_tau / a_pi - b_tau / b_pi)
            else:  # a flat message (w rounded to 0): infinite variance, as in the package
                pi = tau = 0.0
            t_pi[j + 1] = t_pi[j + 1] - right_pi[j] + pi
            t_tau[j + 1] = t_tau[j + 1] - right_tau[j] + tau
            right_pi[j] = pi
            right_tau[j] = tau

        def up_left(j: int) -> None:
            # team j = difference j + team j + 1
            a_pi = d_pi[j] - down_pi[j]
            a_tau = d_tau[j] - down_tau[j]
            b_pi = t_pi[j + 1] - right_pi[j]
            b_tau = t_tau[j + 1] - right_tau[j]
            if a_pi and b_pi:
                pi = 1.0 / (1.0 / a_pi + 1.0 / b_pi)
                tau = pi * (a_tau / a_pi + b_tau / b_pi)
            else:  # a flat message (w rounded to 0): infinite variance, as in the package
                pi = tau = 0.0
            t_pi[j] = t_pi[j] - left_pi[j] + pi
            t_tau[j] = t_tau[j] - left_tau[j] + tau
            left_pi[j] = pi
            left_tau[j] = tau

        for _ in range(SWEEPS_MAX):
            delta = 0.0
            for j in range(n - 1):
                down(j)
                delta = max(delta, truncate(j))
                up_right(j)
            for j in range(n - 1, 0, -1):
                down(j)
                delta = max(delta, truncate(j))
                up_left(j)
            if delta <= MIN_DELTA:
                break
        up_left(0)
        up_right(n - 1)

        # Back to the players: team performance = sum of w * player performance, solved for
        # each player given the others' performance messages; then the performance noise.
        result: list[list[Rating]] = []
        for k, ws in enumerate(weights):
            from_pi = t_pi[k] - p_pi[k]
            from_tau = t_tau[k] - p_tau[k]
            if not from_pi:
                # The differences told this team nothing (flat messages): only the dynamics.
                result.append(
                    [
                        Rating(tau / pi, math.sqrt(1.0 / pi))
                        for pi, tau in zip(prior_pi[k], prior_tau[k], strict=True)
                    ]
                )
                continue
            from_mean = from_tau / from_pi
            team_perf_pi = perf_pi[k]
            team_perf_tau = perf_tau[k]
            rated: list[Rating] = []
            for x, wx in enumerate(ws):
                mean = from_mean / wx
                variance = (1.0 / wx) ** 2 / from_pi
                for y, wy in enumerate(ws):
                    if y != x:
                        c = -wy / wx
                        mean += c * (team_perf_tau[y] / team_perf_pi[y])
                        variance += c * c / team_perf_pi[y]
                msg_pi = 1.0 / variance
                msg_tau = msg_pi * mean
                a = 1.0 / (1.0 + beta2 * msg_pi)
                pi = prior_pi[k][x] + a * msg_pi
                tau = prior_tau[k][x] + a * msg_tau
                rated.append(Rating(tau / pi, math.sqrt(1.0 / pi)))
            result.append(rated)
        return result


def _check_teams(teams: Sequence[Sequence[Rating]]) -> None:
    if len(teams) < 2:
        raise ValueError(f"a game needs at least 2 teams, got {len(teams)}")
    for i, team in enumerate(teams):
        if len(team) == 0:
            raise ValueError(f"team {i} has no players")
        for rating in team:
            if not isinstance(rating, Rating):
                raise ValueError(f"team {i} holds {rating!r}, not a Rating")


def _check_weights(teams: Sequence[Sequence[Rating]], weights: Sequence[Sequence[float]]) -> None:
    if len(weights) != len(teams):
        raise ValueError(f"weights has {len(weights)} teams, the game has {len(teams)}")
    for i, (team, ws) in enumerate(zip(teams, weights, strict=True)):
        if len(ws) != len(team):
            raise ValueError(f"weights of team {i} has {len(ws)} entries for {len(team)} players")
        for w in ws:
            if not (0 <= w <= 1):
                raise ValueError(f"weights must be in [0, 1], got {w!r} in team {i}")
        if not any(ws):
            # The package's answer there is noise or a FloatingPointError: the weight floor
            # makes the team's performance almost certain, and the draw margin ignores weights.
            raise ValueError(f"team {i} has only weights of 0: nobody played for it")


def _floored_weights(
    teams: Sequence[Sequence[Rating]], weights: Sequence[Sequence[float]] | None
) -> list[list[float]]:
    if weights is None:
        return [[1.0] * len(team) for team in teams]
    _check_weights(teams, weights)
    # The package floors weights at MIN_DELTA, so a weight of 0 is not quite 0.
    return [[max(MIN_DELTA, float(w)) for w in ws] for ws in weights]
