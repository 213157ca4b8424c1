"""A CS2 server (the stand-in of tests/cs2_server.py, speaking RCON and the plugins' HTTP)
driven for real: registered by an admin, handed a match over RCON, its config fetched with a
single-use token, its event log ingested (resends, reordering, a rewind, MatchZy's quirks),
the series settled as a native result is, and bad requests refused without effect."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from leetgaming.cs2 import AUTH_CACHE_S
from tests.cs2_plugin import Roster, reordered, rewound, series_events, with_resends
from tests.cs2_server import FakeCs2Server
from tests.ws import call, receive

from ..ws import connect
from .openapi_check import conforms
from .test_play import event, player, rpc, serving_play
from .test_wallet_api import QUEUES, token

BO3 = [("de_nuke", (16, 14)), ("de_mirage", (11, 13)), ("de_dust2", (13, 7))]


async def link_steam(state: Any, player: str, steamid: str) -> None:
    await state.play.db.execute(
        "INSERT INTO external_identities (provider, subject, user_id, created_s) "
        "VALUES (?, ?, ?, ?)",
        "steam",
        steamid,
        player,
        int(time.time()),
    )


@asynccontextmanager
async def cs2_match(
    tmp_path: Path,
    backends: dict[str, str],
    flavor: str,
    steam: bool = True,
    rcon_password: str | None = None,
    delay_s: float | None = None,
    fetch: bool = True,
    **settings: str,
) -> AsyncIterator[dict[str, Any]]:
    """A served app with a CS2 server registered and a BO3 of two players accepted on it."""
    a, b = f"a{secrets.token_hex(4)}", f"b{secrets.token_hex(4)}"
    async with (
        serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state),
        httpx.AsyncClient(
            base_url=ws_url.replace("ws://", "http://").removesuffix("/ws"), timeout=10
        ) as http,
    ):
        if delay_s is not None:
            state.cs2.delay_s = delay_s
        server = FakeCs2Server(flavor, secrets.token_hex(8), http, fetch=fetch)
        await server.start()
        try:
            admin = token("root", "admin")
            name = f"s{secrets.token_hex(3)}"
            spec = {
                "name": name,
                "flavor": flavor,
                "region": "eu",
                "address": "203.0.113.7:27015",
                "rcon_host": "127.0.0.1",
                "rcon_port": server.port,
                "rcon_password": rcon_password or server.password,
            }
            added = await http.post("/v1/admin/cs2-servers", json=spec, headers=admin)
            assert added.status_code == 201, added.text
            assert server.password not in added.text
            if steam:
                await link_steam(state, a, "76561198000000001")
                await link_steam(state, b, "76561198000000002")
            ws_a, ws_b = await player(ws_url, a), await player(ws_url, b)
            created = await http.post(
                "/v1/admin/matches",
                json={"queue": "cs2:1v1:eu", "teams": [[a], [b]], "best_of": 3},
                headers=admin | {"Idempotency-Key": secrets.token_hex(8)},
            )
            match = created.json()["match"]
            for ws in (ws_a, ws_b):
                await event(ws, "match.found", match)
                assert (await rpc(ws, "match.accept", match=match))["type"] == "rpc_result"
            yield {
                "http": http,
                "state": state,
                "server": server,
                "match": match,
                "players": (a, b),
                "ws": ws_a,
                "admin": admin,
                "server_id": added.json()["id"],
                "ws_url": ws_url,
            }
            await ws_a.close()
            await ws_b.close()
        finally:
            await server.stop()


@pytest.mark.parametrize(
    ("own_backends", "flavor"),
    [("embedded", "matchzy"), ("distributed", "get5")],
    indirect=["own_backends"],
)
async def test_a_series_on_a_cs2_server_is_settled_from_its_event_log(
    tmp_path: Path, own_backends: dict[str, str], flavor: str
) -> None:
    async with cs2_match(tmp_path, own_backends, flavor) as m:
        http, server, match = m["http"], m["server"], m["match"]
        config = await asyncio.wait_for(server.configs.get(), 10)
        # the RCON command carried the config URL, the token only in the header argument
        [line] = [c for c in server.commands if "loadmatch_url" in c]
        url, header = line.split('"')[1], line.split('"')[5]
        assert url.endswith(f"/v1/matches/{match}/config/{flavor}") and "Bearer" not in url
        again = await http.get(url, headers={"Authorization": header})
        assert (again.status_code, again.json()["code"]) == (401, "token_spent")
        a, b = m["players"]
        team1, team2 = config["team1"]["players"], config["team2"]["players"]
        assert (team1, team2) == ({"76561198000000001": a}, {"76561198000000002": b})
        assert config["num_maps"] == 3 and config["cvars"]["tv_delay"] == "90"
        if flavor == "matchzy":
            assert isinstance(config["matchid"], int) and len(config["map_sides"]) == 3
            assert "veto_first" not in config and "side_type" not in config
        else:
            assert config["matchid"] == match
        log_url = server.cvar("remote_log_url")
        assert log_url.endswith(f"/v1/ingest/cs2/{flavor}/{match}")
        assert server.cvar("remote_log_header_value").startswith("Bearer ")
        assert server.cvar("demo_upload_url").endswith("/demo")
        assert server.cvar("remote_backup_url").endswith("/backup")

        rosters = [Roster("A", list(team1.items())), Roster("B", list(team2.items()))]
        clean = series_events(flavor, config["matchid"], rosters, BO3, seed=11)
        rng = random.Random(11)
        messy = reordered(with_resends(rewound(clean, 1, 8, 3), rng, 0.08), rng, 3)
        answers = [await server.send(body) for body in messy]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers][:3]
        duplicates = sum(r.json()["duplicate"] for r in answers)
        unique = {orjson.dumps(b) for b in messy}
        assert duplicates == len(messy) - len(unique) > 0

        settled = await event(m["ws"], "match.settled", match)
        assert settled["ranks"] == [0, 1]
        ratings = await http.get(f"/v1/players/{a}/ratings/cs2:1v1")
        assert [h["match"] for h in ratings.json()["history"]] == [match]

        series = (await http.get(f"/v1/matches/{match}/cs2", headers=m["admin"])).json()
        assert series["phase"] == "finished" and series["ranks"] == [0, 1]
        assert [tuple(mp["result"]) for mp in series["maps"]] == [(16, 14), (11, 13), (13, 7)]
        assert series["maps"][1]["rewinds"] == 1
        assert series["events"] == len(unique)
        last_round = [e for e in clean if e["event"] == "round_end" and e["map_number"] == 0][-1]
        kills = {p["steamid"]: p["stats"]["kills"] for p in last_round["team1"]["players"]}
        assert {p: s["kills"] for p, s in series["maps"][0]["stats"].items() if p in kills} == kills
        logged = await http.get(f"/v1/matches/{match}/cs2/events?limit=1000", headers=m["admin"])
        assert [e["seq"] for e in logged.json()["events"]] == list(range(1, len(unique) + 1))

        # a resend after the end is still acknowledged, and changes nothing
        late = await server.send(messy[-1])
        assert late.status_code == 200 and late.json()["duplicate"] is True
        # once the grace is over the token is revoked
        # (processes remember a lease's token AUTH_CACHE_S: revocation shows within it)
        m["state"].cs2.token_grace_s = 0
        for _ in range(int((AUTH_CACHE_S + 2) / 0.1)):
            revoked = await server.send(clean[5])
            if revoked.status_code != 200:
                break
            assert revoked.json()["duplicate"] is True
            await asyncio.sleep(0.1)
        assert (revoked.status_code, revoked.json()["code"]) == (401, "token_revoked")


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_bad_requests_are_refused_and_change_nothing(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    async with cs2_match(tmp_path, own_backends, "get5") as m:
        http, server, match = m["http"], m["server"], m["match"]
        await asyncio.wait_for(server.configs.get(), 10)
        url = server.cvar("remote_log_url")
        good = {"event": "going_live", "matchid": match, "map_number": 0}
        bearer = {"Authorization": server.cvar("remote_log_header_value")}
        forged = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
        cases = [
            (url, forged, orjson.dumps(good), 401, "bad_token"),
            (url, {}, orjson.dumps(good), 401, "bad_token"),
            (url.replace("/get5/", "/ebot/"), bearer, orjson.dumps(good), 404, "unknown_flavor"),
            (url.replace("/get5/", "/matchzy/"), bearer, orjson.dumps(good), 404, "unknown_match"),
            (url + "x", bearer, orjson.dumps(good), 404, "unknown_match"),
            (url, bearer, b"{not json", 400, "bad_json"),
            (url, bearer, orjson.dumps({"event": "round_end", "matchid": match}), 422, "bad_event"),
            (url, bearer, orjson.dumps(good | {"matchid": "other"}), 409, "other_match"),
            (url, bearer, b" " * (300 * 1024), 413, "body_too_large"),
        ]
        doc = (await http.get("/openapi.json")).json()
        for target, headers, content, status, code in cases:
            refused = await http.post(target, content=content, headers=headers)
            assert (refused.status_code, refused.json().get("code")) == (status, code), code
            assert refused.headers["content-type"] == "application/problem+json"
            if target == url:
                conforms(doc, refused)
        series = (await http.get(f"/v1/matches/{match}/cs2", headers=m["admin"])).json()
        assert series["events"] == 0 and series["phase"] == "waiting"
        ok = await http.post(url, content=orjson.dumps(good), headers=bearer)
        conforms(doc, ok)
        conforms(doc, await http.get(f"/v1/matches/{match}/live"))
        conforms(doc, await http.get("/v1/admin/cs2-servers", headers=m["admin"]))
        assert ok.status_code == 200 and ok.json() == {
            "accepted": True,
            "duplicate": False,
            "applied": True,
            "seq": 1,
        }
        db = m["state"].play.db
        for statement in ("UPDATE cs2_events SET applied = 0", "DELETE FROM cs2_events"):
            with pytest.raises(Exception, match="append-only"):
                await db.execute(statement)
        assert (await db.fetchone("SELECT COUNT(*) FROM cs2_events WHERE match = ?", match))[0] == 1
        # the config needs its token; another match's lease is not this one's
        config_url = f"/v1/matches/{match}/config/get5"
        assert (await http.get(config_url)).status_code == 401
        assert (await http.get(config_url, headers=forged)).status_code == 401
        nope = await http.get(f"/v1/matches/{match}/config/ebot", headers=forged)
        assert nope.status_code == 404
        # only admins see the series and manage servers
        a, _ = m["players"]
        assert (await http.get(f"/v1/matches/{match}/cs2", headers=token(a))).status_code == 403
        listed = await http.get("/v1/admin/cs2-servers", headers=m["admin"])
        assert [s["id"] for s in listed.json()["servers"]] == [m["server_id"]]
        assert server.password not in listed.text
        # the RCON password is sealed at rest (the server was told its match over RCON with
        # it, above); one stored before sealing is sealed at the next start
        cs2 = m["state"].cs2
        (stored,) = await db.fetchone(
            "SELECT rcon_password FROM cs2_servers WHERE id = ?", m["server_id"]
        )
        assert stored.startswith("v1:") and server.password not in stored
        await db.execute(
            "UPDATE cs2_servers SET rcon_password = ? WHERE id = ?", "plain-pw", m["server_id"]
        )
        await cs2.start()
        (resealed,) = await db.fetchone(
            "SELECT rcon_password FROM cs2_servers WHERE id = ?", m["server_id"]
        )
        assert resealed.startswith("v1:") and "plain-pw" not in resealed
        cs2._known.clear()
        assert (await cs2.server(m["server_id"])).rcon_password == "plain-pw"
        dup = await http.post(
            "/v1/admin/cs2-servers",
            json={
                "name": m["server_id"].removeprefix("cs2-"),
                "flavor": "get5",
                "region": "eu",
                "address": "x",
                "rcon_host": "127.0.0.1",
                "rcon_port": 1,
                "rcon_password": "p",
            },
            headers=m["admin"],
        )
        assert (dup.status_code, dup.json()["code"]) == (409, "server_exists")
        bad = await http.post(
            "/v1/admin/cs2-servers",
            json={"name": "x", "flavor": "ebot"},
            headers=m["admin"],
        )
        assert bad.status_code == 422


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_a_player_without_steam_aborts_the_match_before_the_server_is_told(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    async with cs2_match(tmp_path, own_backends, "matchzy", steam=False) as m:
        aborted = await event(m["ws"], "match.aborted", m["match"])
        assert aborted["match"] == m["match"]
        assert not any("loadmatch" in c for c in m["server"].commands)


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_a_server_that_refuses_rcon_aborts_the_match(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    async with cs2_match(tmp_path, own_backends, "get5", rcon_password="wrong") as m:
        aborted = await event(m["ws"], "match.aborted", m["match"])
        assert aborted["requeued"] == list(m["players"])
        assert m["server"].config is None


@pytest.mark.parametrize("own_backends", ["distributed"], indirect=True)
async def test_the_public_feed_lags_the_referees_by_the_delay_fixed_at_live(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    async with cs2_match(tmp_path, own_backends, "get5", delay_s=2.0) as m:
        http, server, match = m["http"], m["server"], m["match"]
        config = await asyncio.wait_for(server.configs.get(), 10)
        referee = await connect(m["ws_url"])
        admin = m["admin"]["Authorization"].removeprefix("Bearer ")
        assert (await call(referee, type="auth", id="a", data={"token": admin}))[
            "type"
        ] == "auth_ok"
        subscribed = await call(referee, type="subscribe", id="s", ch=f"referee:{match}")
        assert subscribed["type"] == "subscribed"
        public = await connect(m["ws_url"])
        assert (await call(public, type="auth", id="a"))["type"] == "auth_ok"
        subscribed = await call(public, type="subscribe", id="s", ch=f"match:{match}")
        assert subscribed["type"] == "subscribed"
        # a player may not follow the referees' channel
        a, _ = m["players"]
        refused = await call(m["ws"], type="subscribe", id="r", ch=f"referee:{match}")
        while refused["type"] == "pub":
            refused = await receive(m["ws"])
        assert refused["type"] == "error" and refused["data"]["code"] == "forbidden"
        first = (await http.get(f"/v1/matches/{match}/live")).json()
        assert first["delay_s"] == 2.0 and first["latest"] is None and first["series"] is None
        rosters = [
            Roster("A", list(config["team1"]["players"].items())),
            Roster("B", list(config["team2"]["players"].items())),
        ]
        bodies = series_events("get5", match, rosters, [*BO3[:1], BO3[2]], num_maps=3)
        live = next(i for i, b in enumerate(bodies) if b["event"] == "round_end")
        sent_at = time.monotonic()
        for body in bodies[: live + 1]:
            assert (await server.send(body)).status_code == 200
        seen = await event(referee, "cs2.round", None)
        referee_s = time.monotonic() - sent_at
        assert seen["score"] in ([1, 0], [0, 1]) and referee_s < 1.5
        delayed = await event(public, "cs2.round", None)
        public_s = time.monotonic() - sent_at
        assert public_s >= 2.0, public_s
        assert delayed["score"] == seen["score"]
        text = orjson.dumps(delayed).decode()
        assert "address" not in text and "203.0.113.7" not in text and a not in text
        for _ in range(20):  # (marked published right after its batch went out)
            latest = (await http.get(f"/v1/matches/{match}/live")).json()["latest"]
            if latest is not None and latest["kind"] == "cs2.round":
                break
            await asyncio.sleep(0.1)
        assert latest is not None
        assert (
            latest["kind"] == "cs2.round" and latest["series"]["maps"][0]["score"] == seen["score"]
        )
        # the rest of the series: the result reaches the public late too, with no address
        for body in bodies[live + 1 :]:
            assert (await server.send(body)).status_code == 200
        settled_now = await event(referee, "match.settled", match)
        assert settled_now["ranks"] == [0, 1]
        settled_later = await event(public, "match.settled", match)
        assert settled_later["ranks"] == [0, 1]
        # after the end, the public's view of the series is the final one (the latest body,
        # match.settled, carries none)
        for _ in range(20):
            after = (await http.get(f"/v1/matches/{match}/live")).json()
            if after["latest"]["kind"] == "match.settled":
                break
            await asyncio.sleep(0.1)
        assert after["latest"]["kind"] == "match.settled"
        assert after["series"]["phase"] == "finished" and after["series"]["maps_won"] == [2, 0]
        await referee.close()
        await public.close()


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_a_quiet_server_is_asked_and_its_match_aborted_once_it_stops_answering(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    async with cs2_match(tmp_path, own_backends, "get5") as m:
        await asyncio.wait_for(m["server"].configs.get(), 10)
        state, match = m["state"], m["match"]
        state.cs2.silence_check_s = 0.3
        state.play.server_silence_s = 1.5
        await asyncio.sleep(3.0)  # no events (warmup), but the server answers RCON
        loaded = await state.play.load(match)
        assert str(loaded[0].state) == "live"
        assert "status" in m["server"].commands
        m["server"].alive = False
        aborted = await event(m["ws"], "match.aborted", match)
        assert aborted["requeued"] == list(m["players"])


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_a_config_token_is_dead_once_its_match_is_over(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    async with cs2_match(tmp_path, own_backends, "matchzy", fetch=False) as m:
        state, match, server = m["state"], m["match"], m["server"]
        for _ in range(50):
            if any("loadmatch_url" in c for c in server.commands):
                break
            await asyncio.sleep(0.1)
        [line] = [c for c in server.commands if "loadmatch_url" in c]
        url, header = line.split('"')[1], line.split('"')[5]
        assert await state.play.abort_match(match, m["server_id"])
        await event(m["ws"], "match.aborted", match)
        # the server is told to end the match it no longer plays for us
        for _ in range(50):
            if "get5_endmatch" in server.commands:
                break
            await asyncio.sleep(0.1)
        assert server.commands[-1] == "get5_endmatch"
        late = await m["http"].get(url, headers={"Authorization": header})
        assert (late.status_code, late.json()["code"]) == (401, "token_spent")
