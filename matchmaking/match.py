"""A match's lifecycle: a state machine with an explicit transition table (pure).

    FORMING --start_ready_check--> READY_CHECK --everyone accepted--> ALLOCATING
    READY_CHECK --a decline, or the deadline--> CANCELLED   (the others go back to the queue)
    ALLOCATING --server_allocated--> LIVE --final_result--> FINISHED --settle--> SETTLED
    ALLOCATING | LIVE --abort--> ABORTED                     (no server; a server gone silent)
    READY_CHECK | ALLOCATING | LIVE --withdraw--> ABORTED    (its tournament no longer needs it)

A final result is accepted once (its digest kept): a repeat of it is acknowledged without
effect, a different one is refused and counted in ``conflicts``.

Every change returns the new :class:`Match` and the events to publish; an event not allowed in
the current state raises :class:`IllegalTransition` (never a silent no-op). Time comes in as an
argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Final


class State(enum.StrEnum):
    FORMING = "forming"
    READY_CHECK = "ready_check"
    ALLOCATING = "allocating"
    LIVE = "live"
    FINISHED = "finished"
    SETTLED = "settled"
    ABORTED = "aborted"
    CANCELLED = "cancelled"


class Transition(enum.StrEnum):
    START_READY_CHECK = "start_ready_check"
    ALL_ACCEPTED = "all_accepted"
    READY_CHECK_FAILED = "ready_check_failed"
    SERVER_ALLOCATED = "server_allocated"
    FINAL_RESULT = "final_result"
    SETTLE = "settle"
    ABORT = "abort"
    WITHDRAW = "withdraw"


TRANSITIONS: Final[dict[tuple[State, Transition], State]] = {
    (State.FORMING, Transition.START_READY_CHECK): State.READY_CHECK,
    (State.READY_CHECK, Transition.ALL_ACCEPTED): State.ALLOCATING,
    (State.READY_CHECK, Transition.READY_CHECK_FAILED): State.CANCELLED,
    (State.ALLOCATING, Transition.SERVER_ALLOCATED): State.LIVE,
    (State.ALLOCATING, Transition.ABORT): State.ABORTED,
    (State.LIVE, Transition.FINAL_RESULT): State.FINISHED,
    (State.LIVE, Transition.ABORT): State.ABORTED,
    (State.FINISHED, Transition.SETTLE): State.SETTLED,
    (State.READY_CHECK, Transition.WITHDRAW): State.ABORTED,
    (State.ALLOCATING, Transition.WITHDRAW): State.ABORTED,
    (State.LIVE, Transition.WITHDRAW): State.ABORTED,
}
TERMINAL: Final = frozenset({State.SETTLED, State.ABORTED, State.CANCELLED})


class IllegalTransition(Exception):
    def __init__(self, state: State, transition: Transition) -> None:
        super().__init__(f"{transition} is not allowed in state {state}")
        self.state = state
        self.transition = transition


@dataclass(frozen=True, slots=True)
class Match:
    id: str
    queue: str
    teams: tuple[tuple[str, ...], ...]  # player ids per team
    state: State = State.FORMING
    deadline_s: float | None = None  # the ready check's
    accepted: frozenset[str] = frozenset()
    declined: frozenset[str] = frozenset()
    server: str | None = None
    version: int = 0  # bumped on every change: stores update with compare-and-set on it
    history: tuple[tuple[State, float], ...] = field(default=())
    ranks: tuple[int, ...] | None = None  # per team, lower is better, equal is a draw
    result_digest: str | None = None  # the accepted final result's, to recognise a repeat
    afk: frozenset[str] = frozenset()
    last_heard_s: float | None = None  # the game server's last update (silence aborts)
    conflicts: int = 0  # final results that contradicted the accepted one (flagged)
    best_of: int = 1  # games in the series the server plays before its one final result

    @property
    def players(self) -> tuple[str, ...]:
        return tuple(p for team in self.teams for p in team)


@dataclass(frozen=True, slots=True)
class Event:
    """What to publish: ``kind`` on ``match:<id>`` and to every player's ``user:`` channel."""

    kind: str
    data: dict[str, object]


def _move(match: Match, transition: Transition, now_s: float, **changes: object) -> Match:
    target = TRANSITIONS.get((match.state, transition))
    if target is None:
        raise IllegalTransition(match.state, transition)
    return replace(
        match,
        state=target,
        version=match.version + 1,
        history=(*match.history, (target, now_s)),
        **changes,  # type: ignore[arg-type]
    )


def _state_event(match: Match, **data: object) -> Event:
    return Event(f"match.{match.state}", {"match": match.id, "state": str(match.state), **data})


def start_ready_check(match: Match, now_s: float, ready_check_s: float) -> tuple[Match, Event]:
    moved = _move(match, Transition.START_READY_CHECK, now_s, deadline_s=now_s + ready_check_s)
    return moved, Event(
        "match.found",
        {
            "match": match.id,
            "queue": match.queue,
            "teams": [list(team) for team in match.teams],
            "state": str(moved.state),
            "accept_within_s": ready_check_s,
        },
    )


class NotInMatch(Exception):
    pass


def accept(match: Match, player: str, now_s: float) -> tuple[Match, list[Event]]:
    """A player accepts; the last acceptance moves the match on to allocation."""
    if player not in match.players:
        raise NotInMatch(player)
    if match.state is not State.READY_CHECK or (
        match.deadline_s is not None and now_s >= match.deadline_s
    ):
        raise IllegalTransition(match.state, Transition.ALL_ACCEPTED)
    if player in match.accepted:
        return match, []  # accepting twice changes nothing
    accepted = match.accepted | {player}
    ready = Event("match.accepted", {"match": match.id, "player": player})
    if len(accepted) < len(match.players):
        return replace(match, accepted=accepted, version=match.version + 1), [ready]
    moved = _move(match, Transition.ALL_ACCEPTED, now_s, accepted=accepted)
    return moved, [ready, _state_event(moved)]


def decline(match: Match, player: str, now_s: float) -> tuple[Match, list[Event]]:
    if player not in match.players:
        raise NotInMatch(player)
    moved = _move(match, Transition.READY_CHECK_FAILED, now_s, declined=frozenset({player}))
    return moved, [_state_event(moved, declined=[player], requeued=requeued(moved))]


def expire_ready_check(match: Match, now_s: float) -> tuple[Match, list[Event]]:
    """At the deadline: everyone who did not accept counts as declining."""
    if match.state is not State.READY_CHECK or match.deadline_s is None or now_s < match.deadline_s:
        return match, []
    missing = frozenset(p for p in match.players if p not in match.accepted)
    moved = _move(match, Transition.READY_CHECK_FAILED, now_s, declined=missing)
    return moved, [_state_event(moved, declined=sorted(missing), requeued=requeued(moved))]


def requeued(match: Match) -> list[str]:
    """After a failed ready check: who goes back to the front of the queue (whoever did not
    decline; a timeout counts as a decline)."""
    return [p for p in match.players if p not in match.declined]


class ResultRefused(Exception):
    """A final result that cannot be accepted (the code says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def allocate(match: Match, server: str, now_s: float) -> tuple[Match, Event]:
    moved = _move(match, Transition.SERVER_ALLOCATED, now_s, server=server, last_heard_s=now_s)
    return moved, _state_event(moved, server=server)


def heard(match: Match, server: str, now_s: float) -> Match:
    """The match's server sent a live update."""
    if match.state is not State.LIVE or match.server != server:
        raise IllegalTransition(match.state, Transition.FINAL_RESULT)
    return replace(match, last_heard_s=now_s)


def final_result(
    match: Match, server: str, ranks: tuple[int, ...], digest: str, now_s: float
) -> tuple[Match, list[Event]]:
    """The server's final result: accepted once; the same again is acknowledged and changes
    nothing; a different one afterwards is refused and counted as a conflict."""
    if match.server != server:
        raise ResultRefused("not_your_match", "this match runs on another server")
    if len(ranks) != len(match.teams):
        raise ResultRefused("bad_result", f"ranks has one entry per team ({len(match.teams)})")
    if match.result_digest is not None:
        if digest == match.result_digest:
            return match, []
        raise ResultRefused("conflicting_result", "a different result was accepted already")
    moved = _move(match, Transition.FINAL_RESULT, now_s, ranks=ranks, result_digest=digest)
    return moved, [_state_event(moved, ranks=list(ranks))]


def conflicting(match: Match) -> Match:
    return replace(match, conflicts=match.conflicts + 1, version=match.version + 1)


def abort(match: Match, now_s: float, afk: frozenset[str] = frozenset()) -> tuple[Match, Event]:
    """No server could take the match, or its server gave up or went silent. Players named
    AFK are not requeued; the others are."""
    strangers = afk - set(match.players)
    if strangers:
        raise ResultRefused("not_in_match", f"not players of this match: {sorted(strangers)}")
    moved = _move(match, Transition.ABORT, now_s, afk=afk)
    requeue = [p for p in match.players if p not in afk]
    return moved, _state_event(moved, afk=sorted(afk), requeued=requeue)


def withdraw(match: Match, now_s: float) -> tuple[Match, Event]:
    """The match is called off by whoever made it (a tournament whose bracket changed): nobody
    is to blame, nobody is requeued."""
    moved = _move(match, Transition.WITHDRAW, now_s)
    return moved, _state_event(moved, withdrawn=True)


def settle(match: Match, now_s: float) -> tuple[Match, Event]:
    """Ratings are updated: the match is done."""
    moved = _move(match, Transition.SETTLE, now_s)
    return moved, _state_event(moved, ranks=list(moved.ranks or ()))


def to_document(match: Match) -> dict[str, object]:
    """The match as JSON-ready data (stores keep it as one document)."""
    return {
        "id": match.id,
        "queue": match.queue,
        "teams": [list(team) for team in match.teams],
        "state": str(match.state),
        "deadline_s": match.deadline_s,
        "accepted": sorted(match.accepted),
        "declined": sorted(match.declined),
        "server": match.server,
        "version": match.version,
        "history": [[str(state), at] for state, at in match.history],
        "ranks": None if match.ranks is None else list(match.ranks),
        "result_digest": match.result_digest,
        "afk": sorted(match.afk),
        "last_heard_s": match.last_heard_s,
        "conflicts": match.conflicts,
        "best_of": match.best_of,
    }


def from_document(doc: dict[str, Any]) -> Match:
    return Match(
        id=str(doc["id"]),
        queue=str(doc["queue"]),
        teams=tuple(tuple(str(p) for p in team) for team in doc["teams"]),
        state=State(doc["state"]),
        deadline_s=None if doc["deadline_s"] is None else float(doc["deadline_s"]),
        accepted=frozenset(doc["accepted"]),
        declined=frozenset(doc["declined"]),
        server=doc["server"],
        version=int(doc["version"]),
        history=tuple((State(s), float(at)) for s, at in doc["history"]),
        ranks=None if doc.get("ranks") is None else tuple(int(r) for r in doc["ranks"]),
        result_digest=doc.get("result_digest"),
        afk=frozenset(doc.get("afk", ())),
        last_heard_s=doc.get("last_heard_s"),
        conflicts=int(doc.get("conflicts", 0)),
        best_of=int(doc.get("best_of", 1)),
    )
