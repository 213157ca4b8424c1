"""Ready-check answers in bursts (a tournament round starts hundreds of ready checks at once):
answered together in few transactions, each answer applied in turn, a refused answer failing
alone; embedded and distributed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from realtime.channel import Principal, Role
from realtime.server import RpcError

from .test_play import serving_play
from .test_results_batched import QUEUES, SERVER


@pytest.fixture
async def play(tmp_path: Path, backends: dict[str, str]) -> AsyncIterator[Any]:
    async with serving_play(tmp_path, backends, QUEUES) as (_, state):
        yield state.play


async def answer(play: Any, player: str, match_id: str, how: str = "accept") -> Any:
    try:
        return await play.call(Principal(Role.PLAYER, player), f"match.{how}", {"match": match_id})
    except RpcError as refused:
        return refused.code


async def test_a_burst_of_answers_is_applied_in_few_transactions(play: Any) -> None:
    await play.call(
        Principal(Role.GAME_SERVER, SERVER),
        "server.register",
        {"region": "eu", "capacity": 64, "address": "10.0.0.9:27015"},
    )
    tag = secrets.token_hex(4)
    pairs = [(f"{tag}-a{n}", f"{tag}-b{n}") for n in range(30)]
    ids = [f"{tag}-m{n}" for n in range(len(pairs))]
    for match_id, (a, b) in zip(ids, pairs, strict=True):
        assert await play.start_match(match_id, "batch:1v1:eu", ((a,), (b,)))
    before = play._answers.batches
    # everyone accepts at once, except that the last match's second player declines, and
    # its first player answers again after the decline; a stranger answers too
    calls = [answer(play, p, m) for m, pair in zip(ids[:-1], pairs, strict=False) for p in pair]
    last, (first, second) = ids[-1], pairs[-1]
    calls += [
        answer(play, first, last),
        answer(play, second, last, "decline"),
        answer(play, first, last),
        answer(play, f"{tag}-stranger", ids[0]),
    ]
    answers = await asyncio.gather(*calls)
    assert play._answers.batches - before < len(calls) / 4  # grouped, not one each
    for n, match_id in enumerate(ids[:-1]):  # each pair: one waits, the other completes it
        states = sorted(a["state"] for a in answers[2 * n : 2 * n + 2])
        assert states == ["allocating", "ready_check"]
        loaded = await play.load(match_id)
        assert loaded is not None and str(loaded[0].state) == "live"
        assert loaded[0].accepted == frozenset(pairs[n])
    assert answers[-4] == {"match": last, "state": "ready_check"}
    assert answers[-3] == {"match": last, "state": "cancelled"}
    assert answers[-2:] == ["too_late", "unknown_match"]
    loaded = await play.load(last)
    assert loaded is not None and str(loaded[0].state) == "cancelled"
    assert loaded[0].declined == frozenset({second})
