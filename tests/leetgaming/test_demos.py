"""Demos of a CS2 match: the plugin's upload (streamed, size-limited, checked, deduplicated),
an admin's, parsing in a worker (a partly readable demo says what it could not read), stats
next to the plugin's with their differences, and downloads with range requests, for the
match's players and admins only."""

from __future__ import annotations

import asyncio
import hashlib
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from replays.demo import MAGIC
from tests.cs2_plugin import Roster, series_events
from tests.replays.test_s3 import KEY_ID, SECRET, bucket

from .test_cs2 import cs2_match
from .test_wallet_api import token

DEMOS = Path(__file__).resolve().parents[1] / "data" / "cs2-demos"  # from ../shared/data


async def demo_state(
    http: httpx.AsyncClient, match: str, demo: str, headers: dict[str, str]
) -> dict[str, Any]:
    for _ in range(100):
        doc = (await http.get(f"/v1/matches/{match}/demos/{demo}", headers=headers)).json()
        if doc["state"] not in ("stored", "parsing"):
            return doc  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"demo {demo} still {doc['state']}")


async def test_the_plugins_demo_is_stored_parsed_compared_and_served_by_range(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    blobs = tmp_path / "blobs"
    async with cs2_match(tmp_path, own_backends, "matchzy", blob_dir=str(blobs)) as m:
        http, server, match, admin = m["http"], m["server"], m["match"], m["admin"]
        config = await asyncio.wait_for(server.configs.get(), 10)
        rosters = [
            Roster(config[t]["name"], list(config[t]["players"].items()))
            for t in ("team1", "team2")
        ]
        for body in series_events("matchzy", config["matchid"], rosters, [("de_nuke", (13, 4))]):
            if body["event"] != "series_end":
                assert (await server.send(body)).status_code == 200
        url = server.cvar("demo_upload_url")
        auth = {server.cvar("demo_upload_header_key"): server.cvar("demo_upload_header_value")}
        data = (DEMOS / "14065.dem").read_bytes()
        headers = auth | {
            "MatchZy-FileName": "m_map0_de_nuke.dem",
            "MatchZy-MapNumber": "0",
            "Content-Type": "application/octet-stream",
        }
        forged = headers | {"Authorization": "Bearer nope"}
        refused = await http.post(url, content=data, headers=forged)
        assert (refused.status_code, refused.json()["code"]) == (401, "bad_token")
        not_demo = await http.post(url, content=b"HL2DEMO\0" + data[8:], headers=headers)
        assert (not_demo.status_code, not_demo.json()["code"]) == (415, "not_a_demo")
        bad_name = await http.post(
            url, content=data, headers=headers | {"MatchZy-FileName": "../x"}
        )
        assert bad_name.status_code == 422
        assert [p for p in blobs.rglob("*") if p.is_file()] == []

        uploaded = await http.post(url, content=data, headers=headers)
        assert uploaded.status_code == 201, uploaded.text
        demo = uploaded.json()
        assert demo["sha256"] == hashlib.sha256(data).hexdigest()
        assert demo["size_bytes"] == len(data) and demo["map_number"] == 0
        again = await http.post(url, content=data, headers=headers)
        assert again.status_code == 200 and again.json()["id"] == demo["id"]
        assert len([p for p in blobs.rglob("*.dem")]) == 1

        a, b = m["players"]
        parsed = await demo_state(http, match, demo["id"], token(a))
        assert parsed["state"] == "parsed", parsed
        stats = parsed["stats"]
        assert stats["demo"]["map_name"] == "de_nuke" and stats["demo"]["complete"]
        assert stats["plugin"]["map_name"] == "de_nuke"
        assert set(stats["plugin"]["players"]) == {"76561198000000001", "76561198000000002"}
        # the clip's one player is not in this match: each side's absentees are flagged
        [(clip_player, _)] = stats["demo"]["players"].items()
        assert sorted((d["steamid"], d["demo"], d["plugin"]) for d in stats["differences"]) == [
            ("76561197966986733", True, False),
            ("76561198000000001", False, True),
            ("76561198000000002", False, True),
        ]
        assert clip_player == "76561197966986733"

        listing = await http.get(f"/v1/matches/{match}/demos", headers=admin)
        assert [d["id"] for d in listing.json()["demos"]] == [demo["id"]]
        file_url = f"/v1/matches/{match}/demos/{demo['id']}/file"
        whole = await http.get(file_url, headers=token(b))
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes"
        head = await http.get(file_url, headers=token(a) | {"Range": "bytes=0-7"})
        assert head.status_code == 206 and head.content == MAGIC
        assert head.headers["content-range"] == f"bytes 0-7/{len(data)}"
        tail = await http.get(file_url, headers=admin | {"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == data[-100:]
        middle = await http.get(file_url, headers=admin | {"Range": "bytes=1000-"})
        assert middle.content == data[1000:]
        beyond = await http.get(file_url, headers=admin | {"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"
        # the plugin's round backups are kept, once per file name
        backup_url = server.cvar("remote_backup_url")
        backup_headers = auth | {
            "MatchZy-FileName": "matchzy_backup_map0_round7.cfg",
            "MatchZy-MapNumber": "0",
            "MatchZy-RoundNumber": "7",
        }
        kept = await http.post(backup_url, content=b'"SaveFile" {}', headers=backup_headers)
        assert kept.status_code == 201, kept.text
        assert kept.json()["round_number"] == 7
        same = await http.post(backup_url, content=b'"SaveFile" {}', headers=backup_headers)
        assert same.status_code == 200
        huge = await http.post(
            backup_url,
            content=b"x" * (5 * 1024 * 1024),
            headers=backup_headers | {"MatchZy-FileName": "big.cfg"},
        )
        assert huge.status_code == 413
        listed = (await http.get(f"/v1/admin/matches/{match}/backups", headers=admin)).json()
        assert [b["filename"] for b in listed["backups"]] == ["matchzy_backup_map0_round7.cfg"]
        # others may not see the match's demos
        stranger = await http.get(file_url, headers=token("someone-else"))
        assert stranger.status_code == 403
        assert (await http.get(file_url)).status_code == 401
        assert (await http.get(f"/v1/matches/{match}/demos", headers=token("x"))).status_code == 403


@pytest.mark.parametrize("own_backends", ["distributed"], indirect=True)
async def test_an_admin_uploads_a_partly_readable_demo_and_retention_expires_it(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    blobs = tmp_path / "blobs"
    async with cs2_match(tmp_path, own_backends, "get5", blob_dir=str(blobs)) as m:
        http, match, admin = m["http"], m["match"], m["admin"]
        data = (DEMOS / "14011.dem").read_bytes()
        uploaded = await http.post(
            f"/v1/admin/matches/{match}/demos?map_number=1&filename=italy.dem",
            content=data,
            headers=admin,
        )
        assert uploaded.status_code == 201, uploaded.text
        a, _ = m["players"]
        assert (
            await http.post(f"/v1/admin/matches/{match}/demos", content=data, headers=token(a))
        ).status_code == 403
        parsed = await demo_state(http, match, uploaded.json()["id"], admin)
        assert parsed["state"] == "partial"
        assert parsed["stats"]["demo"]["map_name"] == "cs_italy"
        assert set(parsed["stats"]["demo"]["unreadable"]) == {"kills", "rounds", "players"}
        demos = m["state"].demos
        demos.retention_days = 1
        demos.clock = lambda: 10**12
        assert await demos.sweep() == 1
        gone = await http.get(f"/v1/matches/{match}/demos/{parsed['id']}/file", headers=admin)
        assert gone.status_code == 404
        assert [p for p in blobs.rglob("*.dem")] == []
        listed = (await http.get(f"/v1/matches/{match}/demos", headers=admin)).json()["demos"]
        assert [d["state"] for d in listed] == ["expired"]


async def generated(size: int, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
    yield MAGIC
    sent = len(MAGIC)
    block = b"\0" * chunk
    while sent < size:
        step = min(chunk, size - sent)
        yield block[:step]
        sent += step


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_a_large_upload_streams_and_the_size_limit_refuses_more(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    limit = 192 * 1024 * 1024
    blobs = tmp_path / "blobs"
    async with cs2_match(
        tmp_path, own_backends, "get5", blob_dir=str(blobs), demo_bytes_max=str(limit)
    ) as m:
        http, match, admin = m["http"], m["match"], m["admin"]
        m["state"].demos.parse = _never_parse  # zeros are no demo worth parsing here
        before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        url = f"/v1/admin/matches/{match}/demos?filename=big.dem"
        ok = await http.post(url, content=generated(limit), headers=admin, timeout=120)
        assert ok.status_code == 201, ok.text
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
        assert grown_mib < 64, f"the upload grew the server's memory by {grown_mib:.0f} MiB"
        assert ok.json()["size_bytes"] == limit
        over = await http.post(url, content=generated(limit + 1), headers=admin, timeout=120)
        assert (over.status_code, over.json()["code"]) == (413, "too_large")
        # a declared length over the limit is refused before any byte is read
        host, port = str(http.base_url.host), int(http.base_url.port or 80)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"POST {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {admin['Authorization']}"
            f"\r\nContent-Length: {limit + 1}\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.split()[1] == b"413"
        assert len(list(blobs.rglob("*.dem"))) == 1
        assert not list(blobs.rglob("*.part"))


async def _never_parse(path: str) -> dict[str, Any]:
    return {"header": {"map_name": "none"}, "errors": {}}


@pytest.mark.parametrize("own_backends", ["embedded"], indirect=True)
async def test_demos_in_an_s3_bucket_are_parsed_and_served_by_range(
    tmp_path: Path, own_backends: dict[str, str], s3_endpoint: str
) -> None:
    async with httpx.AsyncClient() as client:
        name = await bucket(s3_endpoint, client)
    s3 = {
        "blob_s3_endpoint": s3_endpoint,
        "blob_s3_bucket": name,
        "blob_s3_access_key": KEY_ID,
        "blob_s3_secret_key": SECRET,
    }
    async with cs2_match(tmp_path, own_backends, "get5", **s3) as m:
        http, match, admin = m["http"], m["match"], m["admin"]
        data = (DEMOS / "14132.dem").read_bytes()
        uploaded = await http.post(
            f"/v1/admin/matches/{match}/demos?map_number=0&filename=a.dem",
            content=data,
            headers=admin,
        )
        assert uploaded.status_code == 201, uploaded.text
        parsed = await demo_state(http, match, uploaded.json()["id"], admin)
        assert parsed["state"] == "parsed" and parsed["stats"]["demo"]["map_name"] == "de_ancient"
        file_url = f"/v1/matches/{match}/demos/{parsed['id']}/file"
        piece = await http.get(file_url, headers=admin | {"Range": "bytes=100-199"})
        assert piece.status_code == 206 and piece.content == data[100:200]
        assert not (tmp_path / "var").exists()
