"""The match lifecycle's transition table and the ready check."""

from __future__ import annotations

import pytest

from matchmaking.match import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Match,
    NotInMatch,
    ResultRefused,
    State,
    Transition,
    abort,
    accept,
    allocate,
    conflicting,
    decline,
    expire_ready_check,
    final_result,
    from_document,
    heard,
    settle,
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


def allocated() -> Match:
    match = found()
    for player in match.players:
        match, _ = accept(match, player, 101)
    match, event = allocate(match, "gs-1", 105)
    assert (match.state, match.server, event.kind) == (State.LIVE, "gs-1", "match.live")
    return match


def test_a_final_result_is_accepted_once_and_a_contradiction_refused() -> None:
    match = allocated()
    with pytest.raises(ResultRefused) as other:
        final_result(match, "gs-2", (0, 1), "d1", 200)
    assert other.value.code == "not_your_match"
    with pytest.raises(ResultRefused) as shape:
        final_result(match, "gs-1", (0, 1, 2), "d1", 200)
    assert shape.value.code == "bad_result"
    done, [event] = final_result(match, "gs-1", (0, 1), "d1", 200)
    assert (done.state, done.ranks, event.data["ranks"]) == (State.FINISHED, (0, 1), [0, 1])
    assert final_result(done, "gs-1", (0, 1), "d1", 201) == (done, [])  # a repeat: no effect
    with pytest.raises(ResultRefused) as conflict:
        final_result(done, "gs-1", (1, 0), "d2", 202)
    assert conflict.value.code == "conflicting_result"
    assert conflicting(done).conflicts == 1
    settled, event = settle(done, 203)
    assert settled.state is State.SETTLED and event.kind == "match.settled"
    assert from_document(to_document(settled)) == settled


def test_an_abort_requeues_all_but_the_afk() -> None:
    match = allocated()
    with pytest.raises(ResultRefused):
        abort(match, 150, frozenset({"mallory"}))
    aborted, event = abort(match, 150, frozenset({"c"}))
    assert aborted.state is State.ABORTED
    assert (event.data["afk"], event.data["requeued"]) == (["c"], ["a", "b", "d"])
    with pytest.raises(IllegalTransition):
        final_result(aborted, "gs-1", (0, 1), "d", 151)
    assert heard(match, "gs-1", 160).last_heard_s == 160
