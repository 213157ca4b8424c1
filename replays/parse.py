"""The demo parser's process: ``python -m replays.parse <file>`` prints one JSON object.

Each part (header, players, kills, rounds) is read on its own, so a demo that is only partly
readable keeps what could be read; ``errors`` names each part that could not be, with the
parser's error class (never the file's bytes). Run by :mod:`replays.worker`, under limits.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def parse(path: str) -> dict[str, Any]:
    from demoparser2 import DemoParser  # the parser is imported in this process only

    out: dict[str, Any] = {"errors": {}}
    try:
        parser = DemoParser(path)
    except BaseException as exc:  # not even openable: every part unreadable
        reason = type(exc).__name__ + ": " + str(exc)[:120]
        return {"errors": dict.fromkeys(("header", "kills", "rounds", "players"), reason)}

    def part(name: str, read: Any) -> None:
        try:
            out[name] = read()
        except BaseException as exc:  # the parser raises plain Exception (and panics)
            out["errors"][name] = type(exc).__name__ + ": " + str(exc)[:120]

    part("header", lambda: {k: str(v) for k, v in parser.parse_header().items()})
    part("kills", lambda: len(parser.parse_event("player_death")))
    part("rounds", lambda: len(parser.parse_event("round_end")))
    part("players", lambda: _players(parser))
    return out


def _players(parser: Any) -> dict[str, dict[str, Any]]:
    ticks = parser.parse_ticks(["kills_total", "deaths_total", "team_num"])
    players: dict[str, dict[str, Any]] = {}
    for row in ticks.itertuples(index=False):  # the last tick of each player wins
        steamid = str(row.steamid)
        if steamid in ("0", "None", "nan"):
            continue
        players[steamid] = {
            "name": str(row.name),
            "team": int(row.team_num),
            "kills": int(row.kills_total),
            "deaths": int(row.deaths_total),
        }
    return players


def main() -> None:
    print(json.dumps(parse(sys.argv[1])))


if __name__ == "__main__":
    main()
