"""The match config a CS2 plugin loads (``get5_loadmatch_url``, ``matchzy_loadmatch_url``): pure.

Both plugins read the same JSON shape with differences: get5 takes a string ``matchid`` and
every field of its schema; MatchZy takes an integer ``matchid``, players as a
``{steamid64: name}`` map, only the fields it supports, and a ``map_sides`` entry per map.
The cvars point the server's event log, demo upload and backups back at us, each with its
authorization header, and set the GOTV delay (``tv_delay``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .cs2 import Flavor

MAP_POOL: Final = (
    "de_ancient",
    "de_anubis",
    "de_dust2",
    "de_inferno",
    "de_mirage",
    "de_nuke",
    "de_train",
)
SIDES: Final = frozenset({"team1_ct", "team1_t", "team2_ct", "team2_t", "knife"})
SIDE_TYPES: Final = frozenset({"standard", "always_knife", "never_knife"})
TV_DELAY_S_MAX: Final = 600


class ConfigRefused(Exception):
    """The match cannot be configured (the message says why)."""


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    players: Sequence[tuple[str, str]]  # (steamid64, name)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the server sends its event log, its demos and its backups, and the header it
    authenticates with (``Authorization: Bearer …``)."""

    events_url: str
    demos_url: str
    backups_url: str
    header_value: str
    header_key: str = "Authorization"


def _steamid(value: str) -> str:
    if not (value.isdigit() and len(value) == 17 and value.startswith("7656")):
        raise ConfigRefused(f"{value!r} is not a SteamID64")
    return value


def build(
    flavor: Flavor,
    match_id: str,
    number: int,
    teams: Sequence[Team],
    num_maps: int,
    endpoints: Endpoints,
    tv_delay_s: int,
    map_pool: Sequence[str] = MAP_POOL,
    side_type: str = "standard",
    map_sides: Sequence[str] | None = None,
    title: str | None = None,
) -> dict[str, object]:
    """The config for ``flavor``. ``number`` is the match's integer id (MatchZy's ``matchid``);
    maps are vetoed from ``map_pool`` (team1 first) unless it holds exactly ``num_maps`` maps,
    which are then played in that order."""
    if len(teams) != 2:
        raise ConfigRefused("a CS2 match has two teams")
    if num_maps not in (1, 2, 3, 5, 7):
        raise ConfigRefused("num_maps is 1, 2, 3, 5 or 7")
    if len(map_pool) < num_maps or len(set(map_pool)) != len(map_pool):
        raise ConfigRefused(f"the map pool needs {num_maps} distinct maps at least")
    if side_type not in SIDE_TYPES:
        raise ConfigRefused(f"side_type is one of {sorted(SIDE_TYPES)}")
    if not 0 <= tv_delay_s <= TV_DELAY_S_MAX:
        raise ConfigRefused(f"tv_delay is 0..{TV_DELAY_S_MAX} s")
    sides = list(map_sides) if map_sides is not None else ["knife"] * num_maps
    if len(sides) != num_maps or not set(sides) <= SIDES:
        raise ConfigRefused(f"map_sides has one of {sorted(SIDES)} per map")
    size = max(len(t.players) for t in teams)
    veto = len(map_pool) != num_maps
    team_docs = [
        {"name": t.name[:32], "players": {_steamid(s): n[:32] for s, n in t.players}} for t in teams
    ]
    cvars = _cvars(flavor, endpoints, tv_delay_s)
    if flavor is Flavor.MATCHZY:
        return {
            "matchid": number,
            "team1": team_docs[0],
            "team2": team_docs[1],
            "num_maps": num_maps,
            "maplist": list(map_pool),
            "map_sides": sides,
            "skip_veto": not veto,
            "clinch_series": True,
            "players_per_team": size,
            "min_players_to_ready": 2 * size,
            "spectators": {"players": {}},
            "cvars": cvars,
        }
    return {
        "matchid": match_id,
        "match_title": title or "Map {MAPNUMBER} of {MAXMAPS}",
        "num_maps": num_maps,
        "players_per_team": size,
        "coaches_per_team": 0,
        "min_players_to_ready": size,
        "min_spectators_to_ready": 0,
        "skip_veto": not veto,
        "veto_first": "team1",
        "side_type": side_type,
        "map_sides": sides,
        "maplist": list(map_pool),
        "clinch_series": True,
        "spectators": {"players": {}},
        "team1": team_docs[0],
        "team2": team_docs[1],
        "cvars": cvars,
    }


def _cvars(flavor: Flavor, endpoints: Endpoints, tv_delay_s: int) -> Mapping[str, str]:
    prefix = "get5" if flavor is Flavor.GET5 else "matchzy"
    out: dict[str, str] = {}
    for cvar, url in (
        ("remote_log", endpoints.events_url),
        ("demo_upload", endpoints.demos_url),
        ("remote_backup", endpoints.backups_url),
    ):
        out[f"{prefix}_{cvar}_url"] = url
        out[f"{prefix}_{cvar}_header_key"] = endpoints.header_key
        out[f"{prefix}_{cvar}_header_value"] = endpoints.header_value
    out["tv_enable"] = "1"
    out["tv_delay"] = str(tv_delay_s)
    return out
