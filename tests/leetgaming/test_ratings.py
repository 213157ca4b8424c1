"""Ratings after a match: applied exactly once, kept with their history, ranked on a board."""

from __future__ import annotations

import asyncio

from leetgaming.app import load_queues
from leetgaming.db import Database
from leetgaming.play import Play
from leetgaming.settings import Settings
from matchmaking.rating import Rating, RatingModel
from matchmaking.tickets import MemoryTicketStore

QUEUES = load_queues(Settings())


async def play_on(database: Database) -> Play:
    async def publish(channel: str, body: object) -> int:
        return 0

    play = Play(database, MemoryTicketStore(), QUEUES, publish, lambda: 1000.0)
    await play.start()
    return play


async def test_a_result_rates_every_player_exactly_once(database: Database) -> None:
    play = await play_on(database)
    teams = [["a1", "a2"], ["b1", "b2"]]
    assert await play.apply_ratings("m1", "cs2:2v2:eu", teams, [0, 1])
    expected = RatingModel(draw_probability=0.1).rate([[Rating(25, 25 / 3)] * 2] * 2, [0, 1])
    winner = await play.rating("a1", "cs2:2v2", QUEUES["cs2:2v2:eu"])
    assert abs(winner.mu - expected[0][0].mu) < 1e-12 and winner.mu > 25
    # The same result again (a retry, a second process): nothing changes.
    assert not await play.apply_ratings("m1", "cs2:2v2:eu", teams, [0, 1])
    assert await play.rating("a1", "cs2:2v2", QUEUES["cs2:2v2:eu"]) == winner
    history = await play.rating_history("a1", "cs2:2v2")
    assert [(h["match"], h["mu_before"]) for h in history] == [("m1", 25.0)]
    # Ratings are per mode: the 1v1 rating of a1 is untouched.
    assert (await play.rating("a1", "cs2:1v1", QUEUES["cs2:1v1:eu"])).mu == 25.0


async def test_concurrent_applications_of_one_result_count_once(database: Database) -> None:
    play = await play_on(database)
    teams = [["x"], ["y"]]
    outcomes = await asyncio.gather(
        *(play.apply_ratings("m2", "cs2:1v1:eu", teams, [1, 0]) for _ in range(4)),
        return_exceptions=True,
    )
    assert outcomes.count(True) == 1 and outcomes.count(False) == 3, outcomes
    [row] = [r for r in await play.leaderboard("cs2:1v1", 10) if r["player"] == "x"]
    assert row["games"] == 1


async def test_the_leaderboard_ranks_by_conservative_rating(database: Database) -> None:
    play = await play_on(database)
    for n, (winner, loser) in enumerate([("ann", "ben"), ("ann", "cid"), ("ben", "cid")]):
        await play.apply_ratings(f"g{n}", "cs2:1v1:eu", [[winner], [loser]], [0, 1])
    board = await play.leaderboard("cs2:1v1", 10)
    assert [row["player"] for row in board] == ["ann", "ben", "cid"]
    ratings = [row["rating"] for row in board]
    assert ratings == sorted(ratings, reverse=True)
    assert all(abs(r["rating"] - (r["mu"] - 3 * r["sigma"])) < 1e-12 for r in board)  # type: ignore[operator]
    assert len(await play.leaderboard("cs2:1v1", 1)) == 1


async def test_two_matches_of_one_player_at_once_lose_no_update(database: Database) -> None:
    play = await play_on(database)
    await asyncio.gather(
        play.apply_ratings("p1", "cs2:1v1:eu", [["zed"], ["u1"]], [0, 1]),
        play.apply_ratings("p2", "cs2:1v1:eu", [["zed"], ["u2"]], [0, 1]),
    )
    history = await play.rating_history("zed", "cs2:1v1")
    assert len(history) == 2
    first, second = history if history[0]["match"] == "p1" else history[::-1]
    # One of them started from the other's result (never both from 25).
    assert {first["mu_before"], second["mu_before"]} != {25.0}
    final = await play.rating("zed", "cs2:1v1", QUEUES["cs2:1v1:eu"])
    assert final.mu in (first["mu"], second["mu"])
