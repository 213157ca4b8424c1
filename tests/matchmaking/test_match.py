"""The match lifecycle's transition table and the ready check."""

from __future__ import annotations

import pytest

from matchmaking.match import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Match,
    NotInMatch,
    State,
    Transition,
    accept,
    decline,
    expire_ready_check,
    from_document,
    start_ready_check,
    to_document,
)


def found() -> Match:
    match, event = start_ready_check(Match("m1", "cs2:2v2:eu", (("a", "b"), ("c", "d"))), 100, 20)
    assert event.kind == "match.found" and event.data["accept_within_s"] == 20
    assert match.state is State.READY_CHECK and match.deadline_s == 120
    return match


def test_everyone_accepting_moves_the_match_to_allocation() -> None:
    match = found()
    for player in ("a", "b", "c"):
        match, events = accept(match, player, 101)
        assert [e.kind for e in events] == ["match.accepted"]
    assert accept(match, "a", 102) == (match, [])  # twice: nothing
    match, events = accept(match, "d", 103)
    assert match.state is State.ALLOCATING
    assert [e.kind for e in events] == ["match.accepted", "match.allocating"]
    with pytest.raises(IllegalTransition):
        decline(match, "a", 104)


def test_a_decline_cancels_and_requeues_the_others() -> None:
    match, _ = accept(found(), "a", 101)
    match, [event] = decline(match, "c", 102)
    assert match.state is State.CANCELLED
    assert event.data["declined"] == ["c"] and event.data["requeued"] == ["a", "b", "d"]


def test_the_deadline_treats_silence_as_a_decline() -> None:
    match, _ = accept(found(), "b", 101)
    assert expire_ready_check(match, 119.9) == (match, [])
    match, [event] = expire_ready_check(match, 120)
    assert event.data["declined"] == ["a", "c", "d"] and event.data["requeued"] == ["b"]
    with pytest.raises(IllegalTransition):
        accept(found(), "a", 120)  # too late to accept


def test_strangers_and_illegal_transitions_are_refused() -> None:
    with pytest.raises(NotInMatch):
        accept(found(), "mallory", 101)
    with pytest.raises(IllegalTransition):
        decline(Match("m", "q", (("a",), ("b",))), "a", 0)  # no ready check yet


def test_the_table_is_closed() -> None:
    for (source, _), target in TRANSITIONS.items():
        assert source not in TERMINAL
        assert target in State
    assert {t for _, t in TRANSITIONS} == set(Transition)


def test_a_match_round_trips_through_its_document() -> None:
    match, _ = accept(found(), "a", 101)
    assert from_document(to_document(match)) == match
