"""Two ``leetgaming serve`` processes on one Redis: a client on A receives what is published on
B, sees presence from both, and after A is SIGKILLed reconnects to B and recovers without a gap."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from leetgaming.tokens import issue_access_token

from ..ws import call, connect, until, unused_port
from .test_cli import environment_without_settings, running_server

SECRET = "p" * 40


async def test_two_processes_share_channels_and_survive_a_kill(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    ports = [unused_port(), unused_port()]
    base = environment_without_settings() | {
        "LEETGAMING_REDIS_URL": redis_url,
        "LEETGAMING_REDIS_PREFIX": redis_prefix,
        "LEETGAMING_SECRET_KEY": SECRET,
    }
    token = issue_access_token(SECRET, "alice", "player", "s", int(time.time()))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_server(tmp_path / "a", base | {"LEETGAMING_PORT": str(ports[0])}) as a,
        running_server(tmp_path / "b", base | {"LEETGAMING_PORT": str(ports[1])}),
    ):
        url_a, url_b = (f"ws://127.0.0.1:{p}/ws" for p in ports)
        async with connect(url_b) as player:
            await call(player, type="auth", id="1", data={"token": token})
            await call(player, type="subscribe", id="2", ch="lobby:eu")
            async with connect(url_a) as watcher:
                await call(watcher, type="auth", id="1")
                await call(watcher, type="subscribe", id="2", ch="lobby:eu")
                members = await call(watcher, type="presence", id="3", ch="lobby:eu")
                assert sorted(m["subject"] for m in members["data"]["members"]) == ["", "alice"]
                await call(
                    player, type="publish", id="4", ch="lobby:eu", data={"body": {"text": "one"}}
                )
                first = await until(watcher, "pub")
                assert (first["data"]["offset"], first["data"]["body"]["text"]) == (1, "one")
                epoch = first["data"]["epoch"]
                a.process.send_signal(signal.SIGKILL)  # node A dies with the watcher on it
                a.process.wait(timeout=10)
                for body in ("two", "three"):
                    await call(
                        player,
                        type="publish",
                        id=body,
                        ch="lobby:eu",
                        data={"body": {"text": body}},
                    )
            async with connect(url_b) as watcher:  # the client reconnects to the other node
                await call(watcher, type="auth", id="1")
                back = await call(
                    watcher,
                    type="subscribe",
                    id="2",
                    ch="lobby:eu",
                    data={"since_offset": 1, "since_epoch": epoch},
                )
                assert back["data"]["recovered"] is True
                assert [p["data"]["body"]["text"] for p in back["data"]["publications"]] == [
                    "two",
                    "three",
                ]
