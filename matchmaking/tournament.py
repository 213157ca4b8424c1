"""A tournament's lifecycle (pure): a state machine with a transition table, and its effects.

    DRAFT --open_registration--> REGISTRATION --open_check_in--> CHECK_IN --seed--> SEEDED
    REGISTRATION --seed--> SEEDED            (no check-in window)
    SEEDED --start--> RUNNING --(the last match decided, no dispute open)--> COMPLETE
    DRAFT | REGISTRATION | CHECK_IN | SEEDED --cancel--> CANCELLED

Every command takes the tournament and the time and returns the new tournament and its
effects; a command not allowed in the current phase raises :class:`IllegalTransition`, and
bad input raises :class:`TournamentRefused` with a stable code: both change nothing. The shell
writes the new tournament and its effects (an outbox) in one step, then carries the effects
out; every effect is idempotent (ledger transfers by deterministic id, matches by id), so
carrying them out again after a crash does no harm.

Money (the shell maps these effects to ledger transfers; the core never sees an account):

- registration holds the entry fee of every player of the team (:class:`Hold`, one batch per
  team: all or none); a hold that fails (no funds) removes the entry (:func:`hold_failed`);
- leaving before the start, missing the check-in, and cancellation void the holds
  (:class:`Void`); the start posts them (:class:`Post`), then takes the rake and the platform's
  top-up to the guarantee (:class:`StartPool`);
- completion pays the prizes (:class:`Payout`): the split of :mod:`matchmaking.prizes` over the
  final places, which the tournament's state fixes, so carrying it out twice pays nobody twice;
- a correction after completion (:func:`correct` on a complete tournament, where no match
  needs playing again) moves the prizes from the old places to the new (:class:`Repayout`:
  both splits, so the shell takes back and pays exactly the difference, once).

Matches: each playable bracket match becomes a match of the matchmaking lifecycle
(:class:`StartMatch`, with an attempt number so a replayed match gets a new id). Its outcome
comes back as :func:`match_won`, or :func:`match_failed` naming the teams that did not show
(one: it forfeits; both: a double forfeit, or, where places are decided, a dispute for an admin;
none, a server failure: the match is played again). Players may dispute a result until the
tournament completes; an admin resolves it or corrects any result, and the matches downstream
whose sides changed are reset (cancelled if being played) and played again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from . import formats, prizes, swiss
from .formats import Format, FormatError, Progress

FREE_ENTRY: Final = "FREE_ENTRY"
PARTICIPANTS_MAX: Final = 1024
TEAM_SIZE_MAX: Final = 10
NAME_CHARS_MAX: Final = 80
TEAM_CHARS_MAX: Final = 64
DISPUTE_CHARS_MAX: Final = 500
BEST_OF: Final = frozenset({1, 3, 5, 7})
SPECTATOR_DELAY_S_MAX: Final = 3600


class Phase(enum.StrEnum):
    DRAFT = "draft"
    REGISTRATION = "registration"
    CHECK_IN = "check_in"
    SEEDED = "seeded"
    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"


class Transition(enum.StrEnum):
    OPEN_REGISTRATION = "open_registration"
    OPEN_CHECK_IN = "open_check_in"
    SEED = "seed"
    START = "start"
    COMPLETE = "complete"
    CANCEL = "cancel"


TRANSITIONS: Final[dict[tuple[Phase, Transition], Phase]] = {
    (Phase.DRAFT, Transition.OPEN_REGISTRATION): Phase.REGISTRATION,
    (Phase.REGISTRATION, Transition.OPEN_CHECK_IN): Phase.CHECK_IN,
    (Phase.REGISTRATION, Transition.SEED): Phase.SEEDED,
    (Phase.CHECK_IN, Transition.SEED): Phase.SEEDED,
    (Phase.SEEDED, Transition.START): Phase.RUNNING,
    (Phase.RUNNING, Transition.COMPLETE): Phase.COMPLETE,
    **{
        (phase, Transition.CANCEL): Phase.CANCELLED
        for phase in (Phase.DRAFT, Phase.REGISTRATION, Phase.CHECK_IN, Phase.SEEDED)
    },
}


class IllegalTransition(Exception):
    def __init__(self, phase: Phase, transition: Transition | str) -> None:
        super().__init__(f"{transition} is not allowed while the tournament is {phase}")
        self.phase = phase
        self.transition = transition


class TournamentRefused(Exception):
    """Bad input: ``code`` is stable (``already_registered``, ``full``, ``bad_roster``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# Configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryFee:
    asset: str  # an asset code; FREE_ENTRY: one ticket per player
    amount: int  # per player, in the asset's smallest unit


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    queue: str  # game:mode:region, the matchmaking queue whose rules and servers it uses
    team_size: int
    format: Format
    entry_fee: EntryFee | None  # None: free
    prize_asset: str  # the asset of the pool and the prizes
    payout_bps: tuple[int, ...]  # place 1, 2, ...: basis points adding up to 10,000
    participants_min: int = 2
    participants_max: int = 64
    rake_bps: int = 1_000
    guaranteed: int = 0  # prize pool the platform guarantees, in the prize asset
    best_of: tuple[int, ...] = (1,)  # per round (the last repeats)
    final_best_of: int | None = None  # the match deciding first place
    check_in_s: float = 0.0  # the check-in window's length; 0: no check-in
    starts_at_s: float | None = None  # the schedule (informative: an admin starts it)
    prize_split: Mapping[str, Sequence[int]] | None = (
        None  # per team: bps of its prize, by roster order
    )
    # the public sees the bracket this much later than referees (0: at once)
    spectator_delay_s: float = 0.0

    def problems(self) -> list[str]:
        """Everything wrong with this configuration, each with its reason (empty: none)."""
        found: list[str] = []
        if not 1 <= len(self.name) <= NAME_CHARS_MAX:
            found.append(f"name is 1..{NAME_CHARS_MAX} characters")
        if self.queue.count(":") != 2:
            found.append("queue is game:mode:region")
        if not 1 <= self.team_size <= TEAM_SIZE_MAX:
            found.append(f"team_size is 1..{TEAM_SIZE_MAX}")
        if not 2 <= self.participants_min <= self.participants_max <= PARTICIPANTS_MAX:
            found.append(f"2 <= participants_min <= participants_max <= {PARTICIPANTS_MAX}")
        if not prizes.RAKE_BPS_MIN <= self.rake_bps <= prizes.RAKE_BPS_MAX:
            found.append(f"rake_bps is {prizes.RAKE_BPS_MIN}..{prizes.RAKE_BPS_MAX} (10 % to 15 %)")
        try:
            table = prizes.check_payout_table(self.payout_bps)
        except prizes.PayoutTableError as error:
            found.append(str(error))
        else:
            if len(table) > self.participants_min:
                found.append(
                    f"the payout table pays {len(table)} places: participants_min must be "
                    "at least that"
                )
        fee = self.entry_fee
        if fee is not None:
            if fee.asset == FREE_ENTRY and fee.amount != 1:
                found.append("a FREE_ENTRY fee is one ticket per player")
            if fee.amount <= 0:
                found.append("an entry fee is a positive amount")
        if self.prize_asset == FREE_ENTRY:
            found.append("prizes are not paid in FREE_ENTRY tickets")
        if (fee is None or fee.asset != self.prize_asset) and self.guaranteed <= 0:
            found.append("without fees in the prize asset, the pool needs a guarantee")
        if self.guaranteed < 0:
            found.append("guaranteed is not negative")
        if not self.best_of or any(b not in BEST_OF for b in self.best_of):
            found.append(f"best_of is one of {sorted(BEST_OF)} per round")
        if self.final_best_of is not None and self.final_best_of not in BEST_OF:
            found.append(f"final_best_of is one of {sorted(BEST_OF)}")
        if self.check_in_s < 0:
            found.append("check_in_s is not negative")
        if not 0 <= self.spectator_delay_s <= SPECTATOR_DELAY_S_MAX:
            found.append(f"spectator_delay_s is 0..{SPECTATOR_DELAY_S_MAX}")
        if self.prize_split is not None:
            for team, shares in self.prize_split.items():
                if len(shares) != self.team_size or sum(shares) != prizes.BPS_TOTAL:
                    found.append(f"prize_split of {team}: {self.team_size} shares adding to 10000")
        found += self.format.check(self.participants_min, self.participants_max)
        return found


# State --------------------------------------------------------------------------------------


class HoldState(enum.StrEnum):
    HOLDING = "holding"  # the hold is being placed
    HELD = "held"


@dataclass(frozen=True, slots=True)
class Entry:
    team: str
    roster: tuple[str, ...]  # the players, captain first
    attempt: int  # registration attempt of the team's captain: makes the hold ids unique
    hold: HoldState = HoldState.HOLDING
    checked_in: frozenset[str] = frozenset()


class Run(enum.StrEnum):
    PLAYING = "playing"  # a matchmaking match is on
    NEEDS_ADMIN = "needs_admin"  # both sides missed a match that decides places


@dataclass(frozen=True, slots=True)
class Tournament:
    id: str
    config: Config
    phase: Phase = Phase.DRAFT
    version: int = 0
    entries: tuple[Entry, ...] = ()  # in registration order
    registrations: Mapping[str, int] = field(default_factory=dict)  # per team name: attempts
    participants: tuple[str, ...] = ()  # teams in seed order, fixed at seeding
    progress: Progress = field(default_factory=Progress)
    runs: Mapping[str, Run] = field(default_factory=dict)  # matches on, or waiting for an admin
    attempts: Mapping[str, int] = field(default_factory=dict)  # match -> its latest attempt
    disputes: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # match -> by, reason
    history: tuple[tuple[Phase, float], ...] = ()

    def entry(self, team: str) -> Entry | None:
        return next((e for e in self.entries if e.team == team), None)

    def team_of(self, player: str) -> Entry | None:
        return next((e for e in self.entries if player in e.roster), None)

    @property
    def rosters(self) -> dict[str, tuple[str, ...]]:
        return {e.team: e.roster for e in self.entries}


# Effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold the entry fee of each player of ``team`` (all or none)."""

    team: str
    attempt: int
    players: tuple[str, ...]
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class Void:
    team: str
    attempt: int
    players: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Post:
    team: str
    attempt: int
    players: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StartPool:
    """After the posts: the rake to revenue and the platform's top-up to the guarantee."""

    pool: prizes.Pool


@dataclass(frozen=True, slots=True)
class Payout:
    split: prizes.Split


@dataclass(frozen=True, slots=True)
class Repayout:
    """The prizes moved by a correction after completion: from ``before`` to ``after``.
    ``key`` (the tournament's version after the correction) names it in transfer ids."""

    before: prizes.Split
    after: prizes.Split
    key: int


@dataclass(frozen=True, slots=True)
class StartMatch:
    match: str  # the bracket's match id
    attempt: int
    teams: tuple[tuple[str, ...], tuple[str, ...]]  # rosters, side 0 and side 1
    best_of: int


@dataclass(frozen=True, slots=True)
class CancelMatch:
    match: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    data: dict[str, Any]
    to: tuple[str, ...] = ()  # players whose user: channel gets it too


Effect = Hold | Void | Post | StartPool | Payout | Repayout | StartMatch | CancelMatch | Event


def create(tournament_id: str, config: Config, now_s: float) -> Tournament:
    problems = config.problems()
    if problems:
        raise TournamentRefused("bad_config", "; ".join(problems))
    return Tournament(tournament_id, config, history=((Phase.DRAFT, now_s),))


def _move(t: Tournament, transition: Transition, now_s: float, **changes: Any) -> Tournament:
    target = TRANSITIONS.get((t.phase, transition))
    if target is None:
        raise IllegalTransition(t.phase, transition)
    return replace(
        t, phase=target, version=t.version + 1, history=(*t.history, (target, now_s)), **changes
    )


def _changed(t: Tournament, **changes: Any) -> Tournament:
    return replace(t, version=t.version + 1, **changes)


def _phase_event(t: Tournament) -> Event:
    return Event("tournament.phase", {"tournament": t.id, "phase": str(t.phase)})


# Registration -------------------------------------------------------------------------------


def open_registration(t: Tournament, now_s: float) -> tuple[Tournament, list[Effect]]:
    moved = _move(t, Transition.OPEN_REGISTRATION, now_s)
    return moved, [_phase_event(moved)]


def register(
    t: Tournament, team: str, roster: Sequence[str], now_s: float
) -> tuple[Tournament, list[Effect]]:
    """A team (or one player: ``team`` is the player) registers; the fees are held."""
    if t.phase not in (Phase.REGISTRATION, Phase.CHECK_IN):
        raise IllegalTransition(t.phase, "register")
    if t.phase is Phase.CHECK_IN:
        raise TournamentRefused("registration_closed", "registration is closed: check-in is on")
    config = t.config
    if not 1 <= len(team) <= TEAM_CHARS_MAX:
        raise TournamentRefused("bad_team", f"a team name is 1..{TEAM_CHARS_MAX} characters")
    if len(roster) != config.team_size or len(set(roster)) != len(roster):
        raise TournamentRefused("bad_roster", f"a team is {config.team_size} different players")
    if config.team_size == 1 and roster[0] != team:
        raise TournamentRefused("bad_roster", "a solo player registers under their own id")
    if t.entry(team) is not None:
        raise TournamentRefused("team_taken", f"{team!r} is registered already")
    if taken := [p for p in roster if t.team_of(p) is not None]:
        raise TournamentRefused("already_registered", f"registered already: {sorted(taken)}")
    if len(t.entries) >= config.participants_max:
        raise TournamentRefused("full", f"the tournament is full ({config.participants_max})")
    attempt = t.registrations.get(team, 0) + 1
    entry = Entry(team, tuple(roster), attempt)
    registrations = {**t.registrations, team: attempt}
    changed = _changed(t, entries=(*t.entries, entry), registrations=registrations)
    effects: list[Effect] = []
    fee = config.entry_fee
    if fee is None:
        changed = _replace_entry(changed, replace(entry, hold=HoldState.HELD))
        effects.append(_registered(changed, team))
    else:
        effects.append(Hold(team, attempt, entry.roster, fee.asset, fee.amount))
    return changed, effects


def held(t: Tournament, team: str, attempt: int) -> tuple[Tournament, list[Effect]]:
    """The team's holds are placed: the registration stands."""
    entry = t.entry(team)
    if entry is None or entry.attempt != attempt or entry.hold is HoldState.HELD:
        return t, []  # withdrawn meanwhile (its voids follow), or told before
    changed = _replace_entry(t, replace(entry, hold=HoldState.HELD))
    return changed, [_registered(changed, team)]


def hold_failed(t: Tournament, team: str, attempt: int) -> tuple[Tournament, list[Effect]]:
    """The holds were refused (no funds): the entry goes, nothing was held."""
    entry = t.entry(team)
    if entry is None or entry.attempt != attempt:
        return t, []
    return _changed(t, entries=tuple(e for e in t.entries if e.team != team)), []


def _registered(t: Tournament, team: str) -> Event:
    entry = t.entry(team)
    assert entry is not None
    return Event(
        "tournament.registered",
        {"tournament": t.id, "team": team, "roster": list(entry.roster)},
        to=entry.roster,
    )


def _replace_entry(t: Tournament, entry: Entry) -> Tournament:
    return _changed(t, entries=tuple(entry if e.team == entry.team else e for e in t.entries))


def withdraw(t: Tournament, player: str, now_s: float) -> tuple[Tournament, list[Effect]]:
    """The player's team leaves before the start (any of its players may withdraw it)."""
    if t.phase not in (Phase.REGISTRATION, Phase.CHECK_IN):
        raise IllegalTransition(t.phase, "withdraw")
    entry = t.team_of(player)
    if entry is None:
        raise TournamentRefused("not_registered", "you are not registered")
    changed = _changed(t, entries=tuple(e for e in t.entries if e.team != entry.team))
    effects: list[Effect] = []
    if t.config.entry_fee is not None:
        effects.append(Void(entry.team, entry.attempt, entry.roster))
    effects.append(
        Event(
            "tournament.withdrawn",
            {"tournament": t.id, "team": entry.team},
            to=entry.roster,
        )
    )
    return changed, effects


def open_check_in(t: Tournament, now_s: float) -> tuple[Tournament, list[Effect]]:
    if t.config.check_in_s <= 0:
        raise TournamentRefused("no_check_in", "this tournament has no check-in window")
    moved = _move(t, Transition.OPEN_CHECK_IN, now_s)
    roster = tuple(p for e in moved.entries for p in e.roster)
    return moved, [replace(_phase_event(moved), to=roster)]


def check_in(t: Tournament, player: str, now_s: float) -> tuple[Tournament, list[Effect]]:
    if t.phase is not Phase.CHECK_IN:
        raise IllegalTransition(t.phase, "check_in")
    entry = t.team_of(player)
    if entry is None or entry.hold is not HoldState.HELD:
        raise TournamentRefused("not_registered", "you are not registered")
    if player in entry.checked_in:
        return t, []
    changed = _replace_entry(t, replace(entry, checked_in=entry.checked_in | {player}))
    event = Event(
        "tournament.checked_in", {"tournament": t.id, "team": entry.team, "player": player}
    )
    return changed, [event]


def seed(
    t: Tournament, order: Sequence[str] | None, strength: Mapping[str, float], now_s: float
) -> tuple[Tournament, list[Effect]]:
    """Close registration (and check-in): teams not fully checked in, or whose holds are not
    placed, are dropped and their holds voided; the rest are seeded by ``order`` (manual:
    every remaining team, best first) or by ``strength`` (a team's conservative rating, best
    first; ties by registration). Fewer than ``participants_min`` left: the tournament is
    cancelled."""
    if (t.phase, Transition.SEED) not in TRANSITIONS:
        raise IllegalTransition(t.phase, Transition.SEED)
    checking = t.phase is Phase.CHECK_IN
    keep = [
        e
        for e in t.entries
        if e.hold is HoldState.HELD and (not checking or set(e.roster) <= e.checked_in)
    ]
    dropped = [e for e in t.entries if e not in keep]
    effects: list[Effect] = []
    if t.config.entry_fee is not None:
        effects += [Void(e.team, e.attempt, e.roster) for e in dropped]
    effects += [
        Event("tournament.dropped", {"tournament": t.id, "team": e.team}, to=e.roster)
        for e in dropped
    ]
    teams = [e.team for e in keep]
    if order is not None:
        if sorted(order) != sorted(teams):
            raise TournamentRefused("bad_seeding", "a manual seeding lists every team once")
        seeded = tuple(order)
    else:
        position = {team: i for i, team in enumerate(teams)}
        seeded = tuple(sorted(teams, key=lambda team: (-strength.get(team, 0.0), position[team])))
    if len(seeded) < t.config.participants_min:
        cancelled, more = cancel(replace(t, entries=tuple(keep)), now_s, "too few participants")
        return replace(cancelled, entries=tuple(keep)), effects + more
    moved = _move(t, Transition.SEED, now_s, entries=tuple(keep), participants=seeded)
    event = _phase_event(moved)
    event.data["seeds"] = list(seeded)
    return moved, [*effects, event]


def cancel(t: Tournament, now_s: float, reason: str) -> tuple[Tournament, list[Effect]]:
    """Before the start: every hold is voided."""
    moved = _move(t, Transition.CANCEL, now_s)
    effects: list[Effect] = []
    if t.config.entry_fee is not None:
        effects += [Void(e.team, e.attempt, e.roster) for e in t.entries]
    event = _phase_event(moved)
    event.data["reason"] = reason[:200]
    roster = tuple(p for e in t.entries for p in e.roster)
    return moved, [*effects, replace(event, to=roster)]


def due(t: Tournament, now_s: float) -> Transition | None:
    """The scheduled step that is due at ``now_s``, if any: with ``starts_at_s`` set,
    registration closes into the check-in window ``check_in_s`` before the start (or straight
    into seeding without one), the check-in closes (seeding) when its window ends, and a
    seeded tournament starts at ``starts_at_s``. Without a schedule an admin does each step."""
    config = t.config
    opened_at = t.history[-1][1] if t.history else now_s
    if t.phase is Phase.CHECK_IN:
        return Transition.SEED if now_s >= opened_at + config.check_in_s else None
    starts = config.starts_at_s
    if starts is None:
        return None
    if t.phase is Phase.REGISTRATION:
        if config.check_in_s > 0:
            return Transition.OPEN_CHECK_IN if now_s >= starts - config.check_in_s else None
        return Transition.SEED if now_s >= starts else None
    if t.phase is Phase.SEEDED and now_s >= starts:
        return Transition.START
    return None


# Running ------------------------------------------------------------------------------------


def start(t: Tournament, now_s: float) -> tuple[Tournament, list[Effect]]:
    """The holds are posted into the pool, the rake and the top-up taken, the first matches
    started."""
    fmt = t.config.format
    if (t.phase, Transition.START) not in TRANSITIONS:  # the phase first, then the bracket
        raise IllegalTransition(t.phase, Transition.START)
    moved = _move(t, Transition.START, now_s, progress=formats.start(fmt, t.participants))
    effects: list[Effect] = []
    if t.config.entry_fee is not None:
        effects += [Post(e.team, e.attempt, e.roster) for e in t.entries]
    effects += [StartPool(pool_of(t)), _phase_event(moved)]
    started, more = _start_playable(moved)
    return started, effects + more


def pool_of(t: Tournament) -> prizes.Pool:
    """The prize pool, as the start made it (the entries then are the entries now)."""
    config, fee = t.config, t.config.entry_fee
    collected = 0
    if fee is not None and fee.asset == config.prize_asset:
        collected = fee.amount * sum(len(e.roster) for e in t.entries)
    return prizes.pool(collected, config.rake_bps, config.guaranteed)


def _best_of(t: Tournament, match: formats.MatchView) -> int:
    config = t.config
    if config.final_best_of is not None and match.id in formats.finals(
        config.format, t.participants, t.progress
    ):
        return config.final_best_of
    return config.best_of[min(match.round, len(config.best_of)) - 1]


def _start_playable(t: Tournament) -> tuple[Tournament, list[Effect]]:
    """Start every playable match that is not on yet, each as its next attempt."""
    effects: list[Effect] = []
    runs, attempts = dict(t.runs), dict(t.attempts)
    for match in formats.playable(t.config.format, t.participants, t.progress):
        if match.id not in runs:
            runs[match.id] = Run.PLAYING
            attempts[match.id] = attempts.get(match.id, 0) + 1
            effects += _match_started(t, match, attempts[match.id])
    if not effects:
        return t, []
    return _changed(t, runs=runs, attempts=attempts), effects


def _match_started(t: Tournament, match: formats.MatchView, attempt: int) -> list[Effect]:
    rosters = t.rosters
    a, b = str(match.sides[0]), str(match.sides[1])
    return [
        StartMatch(match.id, attempt, (rosters[a], rosters[b]), _best_of(t, match)),
        Event(
            "bracket.match",
            {"tournament": t.id, "match": match.id, "sides": [a, b], "state": "playing"},
            to=rosters[a] + rosters[b],
        ),
    ]


def _decided(
    t: Tournament,
    match_id: str,
    winner: str | None,
    now_s: float,
    how: str,
    start_next: bool = True,
) -> tuple[Tournament, list[Effect]]:
    """A match's outcome into the format; the next matches start, or the tournament ends
    (``start_next`` False: left to :func:`start_next_matches`, once for many outcomes)."""
    config = t.config
    try:
        sides = formats.playable_match(config.format, t.participants, t.progress, match_id).sides
        progress = formats.report(config.format, t.participants, t.progress, match_id, winner)
    except FormatError as error:
        raise TournamentRefused("bad_result", str(error)) from None
    runs = {k: v for k, v in t.runs.items() if k != match_id}
    changed = _changed(t, progress=progress, runs=runs)
    event = Event(
        "bracket.result",
        {"tournament": t.id, "match": match_id, "winner": winner, "how": how},
        to=tuple(p for e in t.entries if e.team in sides for p in e.roster),
    )
    if not start_next:
        return changed, [event]
    finished, effects = start_next_matches(changed, now_s)
    return finished, [event, *effects]


def start_next_matches(t: Tournament, now_s: float) -> tuple[Tournament, list[Effect]]:
    """Start what became playable, or complete the tournament when nothing is left."""
    if t.phase is not Phase.RUNNING:
        return t, []
    started, effects = _start_playable(t)
    finished, end = _complete_if_done(started, now_s)
    return finished, [*effects, *end]


def _complete_if_done(t: Tournament, now_s: float) -> tuple[Tournament, list[Effect]]:
    fmt = t.config.format
    if t.disputes or t.runs or not formats.complete(fmt, t.participants, t.progress):
        return t, []
    moved = _move(t, Transition.COMPLETE, now_s)
    places = formats.placements(fmt, t.participants, t.progress)
    split = payout_split(moved)
    event = replace(_phase_event(moved), to=tuple(p for e in t.entries for p in e.roster))
    event.data["places"] = [[place, who] for place, who in places]
    return moved, [Payout(split), event]


def payout_split(t: Tournament) -> prizes.Split:
    """The prizes of a complete tournament: a function of its state, so the same every time."""
    config = t.config
    places = formats.placements(config.format, t.participants, t.progress)
    rosters: dict[str, Sequence[str]] = dict(t.rosters)
    split = prizes.split(pool_of(t).prizes, config.payout_bps, places, rosters)
    if config.prize_split:
        split = _resplit(split, config.prize_split, rosters)
    return split


def _resplit(
    split: prizes.Split, shares: Mapping[str, Sequence[int]], rosters: Mapping[str, Sequence[str]]
) -> prizes.Split:
    """A team that chose its own split: its players' equal parts are pooled and divided by its
    shares (rounding down; what is left joins the remainder)."""
    payouts = [p for p in split.payouts if p.participant not in shares]
    remainder = split.remainder
    for team in dict.fromkeys(p.participant for p in split.payouts if p.participant in shares):
        own = [p for p in split.payouts if p.participant == team]
        total = sum(p.amount for p in own)
        amounts = [total * bps // prizes.BPS_TOTAL for bps in shares[team]]
        payouts += [
            prizes.Payout(own[0].place, team, player, amount)
            for player, amount in zip(rosters[team], amounts, strict=True)
            if amount
        ]
        remainder += total - sum(amounts)
    return prizes.Split(tuple(payouts), remainder)


def match_won(
    t: Tournament,
    match_id: str,
    attempt: int,
    winner: str,
    now_s: float,
    start_next: bool = True,
) -> tuple[Tournament, list[Effect]]:
    """The matchmaking match of ``match_id`` (this attempt) finished and ``winner`` won."""
    if t.phase is not Phase.RUNNING:
        raise IllegalTransition(t.phase, "match_won")
    if not _on(t, match_id, attempt):
        return t, []  # an old attempt (reset or replayed): its result counts for nothing
    return _decided(t, match_id, winner, now_s, "played", start_next)


def _on(t: Tournament, match_id: str, attempt: int) -> bool:
    """Whether ``attempt`` of ``match_id`` is the one being played."""
    return t.runs.get(match_id) is Run.PLAYING and t.attempts.get(match_id) == attempt


def match_failed(
    t: Tournament,
    match_id: str,
    attempt: int,
    missing: Sequence[str],
    now_s: float,
    start_next: bool = True,
) -> tuple[Tournament, list[Effect]]:
    """The match did not happen: ``missing`` names the teams that did not show (declined, timed
    out, AFK). One: it forfeits. Both: a double forfeit, or, where places are decided, the
    match waits for an admin. None (a server failure): the match is played again."""
    if t.phase is not Phase.RUNNING:
        raise IllegalTransition(t.phase, "match_failed")
    if not _on(t, match_id, attempt):
        return t, []
    view = formats.playable_match(t.config.format, t.participants, t.progress, match_id)
    sides = [str(s) for s in view.sides]
    gone = [s for s in sides if s in missing]
    if not gone:  # nobody to blame: the same match, its next attempt
        replay = _changed(t, attempts={**t.attempts, match_id: attempt + 1})
        started = _match_started(replay, view, attempt + 1)
        return replay, started
    if len(gone) == 1:
        winner = sides[1 - sides.index(gone[0])]
        return _decided(t, match_id, winner, now_s, "forfeit", start_next)
    try:
        return _decided(t, match_id, None, now_s, "double_forfeit", start_next)
    except TournamentRefused:
        runs = {**t.runs, match_id: Run.NEEDS_ADMIN}
        event = Event(
            "bracket.match",
            {"tournament": t.id, "match": match_id, "sides": sides, "state": "needs_admin"},
        )
        return _changed(t, runs=runs), [event]


def dispute(
    t: Tournament, match_id: str, player: str, reason: str, now_s: float
) -> tuple[Tournament, list[Effect]]:
    """A player of a decided match disputes its result (until the tournament completes)."""
    if t.phase is not Phase.RUNNING:
        raise IllegalTransition(t.phase, "dispute")
    view = _view(t, match_id)
    if view is None or view.result is None:
        raise TournamentRefused("not_decided", f"match {match_id} has no result to dispute")
    rosters = t.rosters
    if not any(player in rosters.get(str(side), ()) for side in view.sides):
        raise TournamentRefused("not_your_match", "only its players dispute a match")
    if not 1 <= len(reason) <= DISPUTE_CHARS_MAX:
        raise TournamentRefused("bad_reason", f"a reason is 1..{DISPUTE_CHARS_MAX} characters")
    if match_id in t.disputes:
        raise TournamentRefused("already_disputed", f"match {match_id} is disputed already")
    changed = _changed(t, disputes={**t.disputes, match_id: (player, reason)})
    return changed, [
        Event("bracket.dispute", {"tournament": t.id, "match": match_id, "state": "open"})
    ]


def resolve(
    t: Tournament, match_id: str, winner: str | None, now_s: float
) -> tuple[Tournament, list[Effect]]:
    """An admin's decision: on a dispute (``winner`` None: the result stands; a winner: the
    result becomes that), or on a match waiting for an admin (``winner`` advances)."""
    if t.phase is not Phase.RUNNING:
        raise IllegalTransition(t.phase, "resolve")
    if t.runs.get(match_id) is Run.NEEDS_ADMIN:
        if winner is None:
            raise TournamentRefused("bad_winner", "name the winner of a match nobody played")
        runs = {k: v for k, v in t.runs.items() if k != match_id}
        return _decided(_changed(t, runs=runs), match_id, winner, now_s, "admin")
    if match_id not in t.disputes:
        raise TournamentRefused("no_dispute", f"match {match_id} has no open dispute")
    settled = _changed(t, disputes={k: v for k, v in t.disputes.items() if k != match_id})
    event = Event("bracket.dispute", {"tournament": t.id, "match": match_id, "state": "resolved"})
    view = _view(t, match_id)
    assert view is not None
    if winner is None or (view.result in (0, 1) and view.sides[view.result] == winner):
        done, end = _complete_if_done(settled, now_s)
        return done, [event, *end]
    corrected, effects = correct(settled, match_id, winner, now_s)
    return corrected, [event, *effects]


def correct(
    t: Tournament, match_id: str, winner: str, now_s: float
) -> tuple[Tournament, list[Effect]]:
    """An admin corrects a result, perhaps long after: matches downstream whose sides changed
    are reset (cancelled if being played) and played again. On a complete tournament, see
    :func:`_correct_complete`."""
    if t.phase is Phase.COMPLETE:
        return _correct_complete(t, match_id, winner, now_s)
    if t.phase is not Phase.RUNNING:
        raise IllegalTransition(t.phase, "correct")
    try:
        progress, reset = formats.correct(
            t.config.format, t.participants, t.progress, match_id, winner
        )
    except FormatError as error:
        raise TournamentRefused("bad_correction", str(error)) from None
    effects: list[Effect] = [
        Event(
            "bracket.result",
            {"tournament": t.id, "match": match_id, "winner": winner, "how": "corrected"},
        )
    ]
    fmt = t.config.format
    before = {m.id: m.sides for m in formats.playable(fmt, t.participants, t.progress)}
    after = {m.id: m.sides for m in formats.playable(fmt, t.participants, progress)}
    runs = dict(t.runs)
    for match, run in t.runs.items():  # on, but its sides are not the same any more
        if after.get(match) != before.get(match) or match not in after:
            del runs[match]
            if run is Run.PLAYING:
                effects.append(CancelMatch(match, t.attempts[match]))
    effects += [
        Event("bracket.match", {"tournament": t.id, "match": m, "state": "reset"}) for m in reset
    ]
    started, more = _start_playable(_changed(t, progress=progress, runs=runs))
    finished, end = _complete_if_done(started, now_s)
    return finished, [*effects, *more, *end]


def _correct_complete(
    t: Tournament, match_id: str, winner: str, now_s: float
) -> tuple[Tournament, list[Effect]]:
    """A correction after the prizes were paid (a finalist found cheating, a result entered
    wrong). Allowed only where nothing needs playing again (a final, a league's result): the
    matches are over. The places change, and the prizes move with them (:class:`Repayout`);
    the tournament stays complete. One that would reset matches is refused (``replay_needed``),
    as is one that changes nothing (``no_change``)."""
    fmt = t.config.format
    try:
        progress, reset = formats.correct(fmt, t.participants, t.progress, match_id, winner)
    except FormatError as error:
        raise TournamentRefused("bad_correction", str(error)) from None
    if reset or not formats.complete(fmt, t.participants, progress):
        raise TournamentRefused(
            "replay_needed", "that correction needs matches played again, after the end"
        )
    if progress == t.progress:
        raise TournamentRefused("no_change", f"{winner} already won {match_id}")
    corrected = _changed(t, progress=progress)
    places = formats.placements(fmt, t.participants, progress)
    players = tuple(p for e in t.entries for p in e.roster)
    repayout = Repayout(payout_split(t), payout_split(corrected), corrected.version)
    return corrected, [
        repayout,
        Event(
            "bracket.result",
            {"tournament": t.id, "match": match_id, "winner": winner, "how": "corrected"},
        ),
        Event(
            "tournament.places",
            {
                "tournament": t.id,
                "version": corrected.version,
                "places": [[place, who] for place, who in places],
                "corrected": True,
            },
            players,
        ),
    ]


def _view(t: Tournament, match_id: str) -> formats.MatchView | None:
    for match in formats.matches(t.config.format, t.participants, t.progress):
        if match.id == match_id:
            return match
    return None


# Documents (the shell stores a tournament as one JSON document) ------------------------------


LARGE_PARTS: Final = ("entries", "results", "swiss", "runs", "attempts")


def to_document(t: Tournament, whole: bool = True) -> dict[str, Any]:
    """The tournament as JSON-ready data; ``whole`` False leaves out :data:`LARGE_PARTS`
    (they grow with the field and the matches played; a store keeps them row by row, with
    :func:`encode_entry` and :func:`encode_round`, and gives them back to
    :func:`from_document` in the shapes of a whole document)."""
    c, f = t.config, t.config.format
    if not whole:
        doc = to_document(
            replace(
                t,
                entries=(),
                progress=replace(t.progress, results={}, swiss=()),
                runs={},
                attempts={},
            )
        )
        for part in LARGE_PARTS:
            del doc[part]
        return doc
    return {
        "id": t.id,
        "config": {
            "name": c.name,
            "queue": c.queue,
            "team_size": c.team_size,
            "format": {
                "kind": str(f.kind),
                "third_place": f.third_place,
                "swiss_rounds": f.swiss_rounds,
                "groups": f.groups,
                "advance": f.advance,
                "tiebreakers": list(f.tiebreakers),
            },
            "entry_fee": None
            if c.entry_fee is None
            else {"asset": c.entry_fee.asset, "amount": str(c.entry_fee.amount)},
            "prize_asset": c.prize_asset,
            "payout_bps": list(c.payout_bps),
            "participants_min": c.participants_min,
            "participants_max": c.participants_max,
            "rake_bps": c.rake_bps,
            "guaranteed": str(c.guaranteed),
            "best_of": list(c.best_of),
            "final_best_of": c.final_best_of,
            "check_in_s": c.check_in_s,
            "spectator_delay_s": c.spectator_delay_s,
            "starts_at_s": c.starts_at_s,
            "prize_split": None
            if c.prize_split is None
            else {k: list(v) for k, v in c.prize_split.items()},
        },
        "phase": str(t.phase),
        "version": t.version,
        "entries": [encode_entry(e) for e in t.entries],
        "registrations": dict(t.registrations),
        "participants": list(t.participants),
        "results": dict(t.progress.results),
        "swiss": [encode_round(r) for r in t.progress.swiss],
        "playoff_seeds": None
        if t.progress.playoff_seeds is None
        else list(t.progress.playoff_seeds),
        "runs": {k: str(v) for k, v in t.runs.items()},
        "attempts": dict(t.attempts),
        "disputes": {k: list(v) for k, v in t.disputes.items()},
        "history": [[str(phase), at] for phase, at in t.history],
    }


def encode_entry(e: Entry) -> list[Any]:
    return [e.team, list(e.roster), e.attempt, str(e.hold), sorted(e.checked_in)]


def encode_round(r: swiss.SwissRound) -> list[Any]:
    return [r.number, r.bye, [[p.id, p.round, list(p.sides)] for p in r.pairings]]


def from_document(doc: Mapping[str, Any]) -> Tournament:
    """A tournament from :func:`to_document`'s data (missing large parts: empty)."""
    doc = {"entries": [], "results": {}, "swiss": [], "runs": {}, "attempts": {}, **doc}
    c, f = doc["config"], doc["config"]["format"]
    fee = c["entry_fee"]
    config = Config(
        name=c["name"],
        queue=c["queue"],
        team_size=int(c["team_size"]),
        format=Format(
            formats.Kind(f["kind"]),
            bool(f["third_place"]),
            f["swiss_rounds"],
            int(f["groups"]),
            int(f["advance"]),
            tuple(f["tiebreakers"]),
        ),
        entry_fee=None if fee is None else EntryFee(fee["asset"], int(fee["amount"])),
        prize_asset=c["prize_asset"],
        payout_bps=tuple(c["payout_bps"]),
        participants_min=int(c["participants_min"]),
        participants_max=int(c["participants_max"]),
        rake_bps=int(c["rake_bps"]),
        guaranteed=int(c["guaranteed"]),
        best_of=tuple(c["best_of"]),
        final_best_of=c["final_best_of"],
        check_in_s=float(c["check_in_s"]),
        spectator_delay_s=float(c.get("spectator_delay_s", 0.0)),
        starts_at_s=c["starts_at_s"],
        prize_split=None
        if c["prize_split"] is None
        else {k: tuple(v) for k, v in c["prize_split"].items()},
    )
    swiss_rounds = tuple(
        swiss.SwissRound(
            number,
            tuple(swiss.Pairing(pid, r, (sides[0], sides[1])) for pid, r, sides in pairings),
            bye,
        )
        for number, bye, pairings in doc["swiss"]
    )
    seeds = doc["playoff_seeds"]
    return Tournament(
        id=doc["id"],
        config=config,
        phase=Phase(doc["phase"]),
        version=int(doc["version"]),
        entries=tuple(
            Entry(team, tuple(roster), int(attempt), HoldState(hold), frozenset(checked))
            for team, roster, attempt, hold, checked in doc["entries"]
        ),
        registrations={k: int(v) for k, v in doc["registrations"].items()},
        participants=tuple(doc["participants"]),
        progress=Progress(
            {k: int(v) for k, v in doc["results"].items()},
            swiss_rounds,
            None if seeds is None else tuple(seeds),
        ),
        runs={k: Run(v) for k, v in doc["runs"].items()},
        attempts={k: int(v) for k, v in doc["attempts"].items()},
        disputes={k: (v[0], v[1]) for k, v in doc["disputes"].items()},
        history=tuple((Phase(phase), float(at)) for phase, at in doc["history"]),
    )
