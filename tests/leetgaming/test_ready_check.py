"""A full lobby accepting at the same moment: every accept counts, none is refused."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from ..ws import receive
from .test_play import event, player, rpc, serving_play

# a region of its own ("rc"): the ALLOCATING match it leaves in the shared database is no
# other test's server's to take
QUEUES = """
[queue."cs2:5v5:rc"]
team_size = 5
window_start = 50.0
window_max = 50.0
spread_max = 50.0
ready_check_s = 20
"""


@pytest.fixture
async def ws_url(tmp_path: Path, backends: dict[str, str]) -> AsyncIterator[str]:
    async with serving_play(tmp_path, backends, QUEUES) as (url, _state):
        yield url


async def accepted(ws: ClientConnection, match_id: str) -> dict[str, Any]:
    """The answer to accepting, once the match's ``match.allocating`` has come as well (the
    event may come before or after the answer)."""
    await ws.send(
        orjson.dumps(
            {
                "v": 1,
                "type": "rpc",
                "id": "a",
                "data": {"method": "match.accept", "params": {"match": match_id}},
            }
        )
    )
    answer, allocating = None, None
    while answer is None or allocating is None:
        frame = await receive(ws)
        if frame.get("id") == "a" or frame["data"].get("ref") == "a":
            answer = frame
        elif frame["type"] == "pub" and frame["data"]["body"]["kind"] == "match.allocating":
            allocating = frame["data"]["body"]
    assert allocating["match"] == match_id
    return answer


async def test_ten_players_accepting_at_once_all_count(ws_url: str) -> None:
    tag = secrets.token_hex(3)
    names = [f"p{i}-{tag}" for i in range(10)]
    sockets = [await player(ws_url, name) for name in names]
    for ws in sockets:
        await rpc(ws, "queue.join", queue="cs2:5v5:rc")
    found = [await event(ws, "match.found") for ws in sockets]
    match_id = found[0]["match"]
    assert {f["match"] for f in found} == {match_id}
    answers = await asyncio.gather(*(accepted(ws, match_id) for ws in sockets))
    assert [a["type"] for a in answers] == ["rpc_result"] * 10, [a["data"] for a in answers]
    states = sorted(a["data"]["result"]["state"] for a in answers)
    assert states == ["allocating"] + ["ready_check"] * 9  # the last accept completes the check
    for ws in sockets:
        await ws.close()
