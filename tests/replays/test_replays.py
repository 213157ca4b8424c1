"""Blob storage, the demo check, the stats comparison, and the parser's process on the real
CS2 demo clips of ../shared/data/cs2-demos (one only partly readable)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from replays.blobs import BlobRefused, LocalBlobStore
from replays.demo import MAGIC, DemoStats, differences, is_cs2_demo, stats_of
from replays.worker import ParseFailed, parse_demo

DEMOS = Path(__file__).resolve().parents[1] / "data" / "cs2-demos"  # from ../shared/data


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_blob_is_stored_whole_with_its_digest_and_read_by_range(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = MAGIC + os.urandom(50_000)
    stored = await store.put("demos/a/x.dem", chunks_of(data), 100_000, is_cs2_demo, len(MAGIC))
    assert (stored.size_bytes, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await store.size("demos/a/x.dem") == len(data)
    whole = b"".join([c async for c in store.read("demos/a/x.dem")])
    assert whole == data
    part = b"".join([c async for c in store.read("demos/a/x.dem", 10, 20_010)])
    assert part == data[10:20_010]
    await store.delete("demos/a/x.dem")
    assert await store.size("demos/a/x.dem") is None


@pytest.mark.parametrize(
    ("data", "limit", "code"),
    [
        (MAGIC + b"\0" * 2000, 1000, "too_large"),
        (b"HL2DEMO\0" + b"\0" * 100, 1000, "bad_content"),  # a CS:GO demo
        (b"PBDEM", 1000, "bad_content"),  # too short to tell
    ],
)
async def test_a_refused_stream_leaves_nothing(
    tmp_path: Path, data: bytes, limit: int, code: str
) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobRefused) as refused:
        await store.put("k/x.dem", chunks_of(data, 300), limit, is_cs2_demo, len(MAGIC))
    assert refused.value.code == code
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_blob_keys_stay_inside_the_store(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    for key in ("../etc/passwd", "/abs", "a/../../b", ""):
        with pytest.raises(ValueError):
            store._path(key)


def test_differences_name_each_disagreeing_figure() -> None:
    demo = DemoStats(
        "de_nuke",
        "srv",
        {"1": {"kills": 5, "deaths": 2}, "2": {"kills": 1, "deaths": 4}, "3": {"kills": 0}},
        6,
        3,
    )
    plugin = {"1": {"kills": 5, "deaths": 2}, "2": {"kills": 2, "deaths": 4}, "4": {"kills": 1}}
    found = differences(demo, plugin, "de_nuke")
    assert found == [
        {"steamid": "2", "field": "kills", "demo": 1, "plugin": 2},
        {"steamid": "3", "field": "present", "demo": True, "plugin": False},
        {"steamid": "4", "field": "present", "demo": False, "plugin": True},
    ]
    assert differences(demo, plugin, "de_dust2")[0]["field"] == "map_name"
    unreadable = DemoStats("de_nuke", None, {}, None, None, ("players",))
    assert differences(unreadable, plugin, "de_nuke") == []  # nothing read: nothing claimed


@pytest.mark.parametrize(
    ("name", "map_name"),
    [("14065.dem", "de_nuke"), ("14132.dem", "de_ancient"), ("14155.dem", "de_dust2")],
)
async def test_the_parser_reads_a_whole_demo(name: str, map_name: str) -> None:
    stats = stats_of(await parse_demo(str(DEMOS / name)))
    assert stats.complete and stats.map_name == map_name
    assert stats.rounds is not None and stats.kills == 0
    [(steamid, player)] = stats.players.items()
    assert steamid.startswith("7656") and player["kills"] == 0


async def test_a_partly_readable_demo_keeps_what_could_be_read() -> None:
    stats = stats_of(await parse_demo(str(DEMOS / "14011.dem")))
    assert stats.map_name == "cs_italy" and not stats.complete
    assert set(stats.unreadable) == {"kills", "rounds", "players"}
    assert stats.kills is None


async def test_garbage_behind_the_magic_bytes_never_reaches_the_server(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.dem"
    hostile.write_bytes(MAGIC + os.urandom(200_000))
    stats = stats_of(await parse_demo(str(hostile)))
    assert not stats.complete  # the parser's process says what failed; this one lives on
    missing = stats_of(await parse_demo(str(tmp_path / "gone.dem")))
    assert set(missing.unreadable) == {"header", "kills", "rounds", "players"}
    with pytest.raises(ParseFailed, match="more than"):
        await parse_demo(str(DEMOS / "14065.dem"), timeout_s=0.01)
