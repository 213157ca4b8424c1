"""What a CS2 demo is, and what its stats say next to the game server plugin's (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MAGIC: Final = b"PBDEMS2\x00"  # a Source 2 demo's first bytes (a CS:GO demo: b"HL2DEMO\x00")
COMPARED: Final = ("kills", "deaths")


def is_cs2_demo(head: bytes) -> bool:
    return head[: len(MAGIC)] == MAGIC


@dataclass(frozen=True, slots=True)
class DemoStats:
    """What could be read from a demo; ``unreadable`` names the parts that could not be."""

    map_name: str | None
    server_name: str | None
    players: Mapping[str, Mapping[str, Any]]  # steamid -> {name, team, kills, deaths}
    kills: int | None  # player_death events
    rounds: int | None  # round_end events
    unreadable: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return not self.unreadable

    def as_json(self) -> dict[str, object]:
        return {
            "map_name": self.map_name,
            "server_name": self.server_name,
            "players": {k: dict(v) for k, v in self.players.items()},
            "kills": self.kills,
            "rounds": self.rounds,
            "unreadable": list(self.unreadable),
            "complete": self.complete,
        }


def stats_of(parsed: Mapping[str, Any]) -> DemoStats:
    """The parser's output (:mod:`replays.parse`) as :class:`DemoStats`."""
    header = parsed.get("header") or {}
    return DemoStats(
        map_name=header.get("map_name"),
        server_name=header.get("server_name"),
        players=parsed.get("players") or {},
        kills=parsed.get("kills"),
        rounds=parsed.get("rounds"),
        unreadable=tuple(sorted(parsed.get("errors") or {})),
    )


def differences(
    demo: DemoStats, plugin: Mapping[str, Mapping[str, int]], plugin_map: str | None
) -> list[dict[str, object]]:
    """Where the demo and the plugin's per-player figures for the same map disagree (only
    what the demo could read is compared): each ``{steamid, field, demo, plugin}``."""
    found: list[dict[str, object]] = []
    if plugin_map is not None and demo.map_name is not None and plugin_map != demo.map_name:
        found.append(
            {"steamid": None, "field": "map_name", "demo": demo.map_name, "plugin": plugin_map}
        )
    if "players" in demo.unreadable:
        return found
    for steamid in sorted(set(demo.players) | set(plugin)):
        ours, theirs = demo.players.get(steamid), plugin.get(steamid)
        if ours is None or theirs is None:
            found.append(
                {
                    "steamid": steamid,
                    "field": "present",
                    "demo": ours is not None,
                    "plugin": theirs is not None,
                }
            )
            continue
        for name in COMPARED:
            if ours.get(name) is not None and ours.get(name) != theirs.get(name):
                found.append(
                    {
                        "steamid": steamid,
                        "field": name,
                        "demo": ours.get(name),
                        "plugin": theirs.get(name),
                    }
                )
    return found
