"""Final results in bursts: settled together in few transactions (group commit), each match
rated once and in order, and a result is acknowledged only with everything that listens to
it (a tournament's bracket) committed in the same transaction; embedded and distributed."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from leetgaming.db import Conn
from matchmaking.match import Match
from realtime.channel import Principal, Role

from .test_play import serving_play, sign

QUEUES = """
[queue."batch:1v1:eu"]
team_size = 1
ready_check_s = 30
"""
SERVER = "gs-batch-1"
KEY = "b" * 32


async def _key_of(who: str) -> str | None:
    return hashlib.sha256(KEY.encode()).hexdigest() if who == SERVER else None


async def live_matches(play: Any, pairs: list[tuple[str, str]], prefix: str) -> list[str]:
    """Matches of these pairs, each through its ready check onto the one game server."""
    await play.call(
        Principal(Role.GAME_SERVER, SERVER),
        "server.register",
        {"region": "eu", "capacity": 64, "address": "10.0.0.9:27015"},
    )
    play.result_key_of = _key_of
    ids = []
    for n, (a, b) in enumerate(pairs):
        match_id = f"{prefix}{n}"
        assert await play.start_match(match_id, "batch:1v1:eu", ((a,), (b,)))
        for p in (a, b):
            await play.call(Principal(Role.PLAYER, p), "match.accept", {"match": match_id})
        loaded = await play.load(match_id)
        assert loaded is not None and str(loaded[0].state) == "live"
        ids.append(match_id)
    return ids


async def result(play: Any, match_id: str, ranks: list[int]) -> Any:
    return await play.call(
        Principal(Role.GAME_SERVER, SERVER),
        "match.result",
        {"match": match_id, "ranks": ranks, "signature": sign(KEY, match_id, ranks)},
    )


@pytest.fixture
async def play(tmp_path: Path, backends: dict[str, str]) -> AsyncIterator[Any]:
    async with serving_play(tmp_path, backends, QUEUES) as (_, state):
        yield state.play


async def test_a_burst_of_results_settles_in_few_transactions_each_rated_once(play: Any) -> None:
    # 24 matches; "ace" plays two of them at once, so one batch rates ace twice (the
    # database is shared with other tests: names of this test's own)
    tag = secrets.token_hex(4)
    ace = f"{tag}-ace"
    pairs = [(f"{tag}-a{n}", f"{tag}-b{n}") for n in range(22)]
    pairs += [(ace, f"{tag}-x1"), (ace, f"{tag}-x2")]
    ids = await live_matches(play, pairs, f"{tag}-burst-")
    before = play._results.batches
    answers = await asyncio.gather(*(result(play, m, [0, 1]) for m in ids))
    assert all(
        a == {"match": m, "state": "finished", "repeat": False}
        for a, m in zip(answers, ids, strict=True)
    )
    batches = play._results.batches - before
    assert 1 <= batches < len(ids) // 2, batches  # together, not one by one
    for match_id in ids:
        loaded = await play.load(match_id)
        assert loaded is not None and str(loaded[0].state) == "settled"
    games = dict(
        await play.db.fetch(
            "SELECT player, games FROM ratings WHERE mode = ? AND player LIKE ?",
            "batch:1v1",
            f"{tag}-%",
        )
    )
    assert games == {p: 2 if p == ace else 1 for pair in pairs for p in pair}
    history = await play.db.fetch(
        "SELECT match, mu_before, mu FROM rating_history WHERE player = ? ORDER BY at_s",
        ace,
    )
    assert len(history) == 2
    # the second rating of ace starts from the first one's result, whichever came first
    first, second = sorted(history, key=lambda row: row[1])  # won twice: mu rises
    assert second[1] == first[2]
    (mu,) = await play.db.fetchone(
        "SELECT mu FROM ratings WHERE player = ? AND mode = ?", ace, "batch:1v1"
    )
    assert mu == second[2]
    # the same results again are repeats and change nothing
    again = await asyncio.gather(*(result(play, m, [0, 1]) for m in ids[:4]))
    assert all(a["repeat"] is True for a in again)
    rows = await play.db.fetch("SELECT count(*) FROM rating_history WHERE match LIKE ?", f"{tag}-%")
    assert rows[0][0] == 2 * len(ids)


async def test_a_result_is_acknowledged_only_with_its_listeners_in_the_same_commit(
    play: Any,
) -> None:
    tag = secrets.token_hex(4)
    [match_id] = await live_matches(play, [(f"{tag}-cy", f"{tag}-dee")], f"{tag}-atomic-")

    async def broken(tx: Conn, matches: Any) -> None:
        await tx.execute("INSERT INTO queue_cooldowns (player, until_s) VALUES (?, ?)", tag, 1.0)
        raise RuntimeError("the bracket could not be written")

    play.on_settled.append(broken)
    try:
        with pytest.raises(RuntimeError, match="bracket"):
            await result(play, match_id, [1, 0])
    finally:
        play.on_settled.remove(broken)
    loaded = await play.load(match_id)
    assert loaded is not None and str(loaded[0].state) == "live"  # nothing settled
    assert await play.db.fetch("SELECT * FROM rating_history WHERE match = ?", match_id) == []
    assert await play.db.fetch("SELECT * FROM queue_cooldowns WHERE player = ?", tag) == []
    told: list[list[str]] = []

    async def listener(tx: Conn, matches: list[Match]) -> None:
        told.append([m.id for m in matches])

    play.on_settled.append(listener)
    try:
        done = await result(play, match_id, [1, 0])  # the server sends it again
    finally:
        play.on_settled.remove(listener)
    assert done["state"] == "finished" and told == [[match_id]]
    loaded = await play.load(match_id)
    assert loaded is not None and str(loaded[0].state) == "settled"
