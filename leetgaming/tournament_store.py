"""Where a tournament is kept: a small header document plus rows for what grows.

A 1,024-player Swiss has 5,120 matches: written whole on every result, its document would
cost half a megabyte of JSON per command. So the header (configuration, phase, version, seeds,
disputes, history) is one document, and the parts that grow are rows written as they change:

- ``tournament_entries``: one row per team (``encode_entry``), in registration order (its
  ``position`` is the version that added it, versions only grow);
- ``tournament_matches``: one row per match with a result, an attempt or a run state;
- ``tournament_rounds``: one row per Swiss round, written once when it is paired.

:func:`changes` finds what differs between two versions of a tournament without walking what
did not change (the core builds new containers only for what it changes), and :func:`write`
writes exactly that, in the caller's transaction. :func:`read` assembles a whole document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from leetgaming.db import Conn
from matchmaking import tournament as tm

MIGRATION: Final = """
    CREATE TABLE tournament_entries (
        tournament TEXT NOT NULL,
        team TEXT NOT NULL,
        position BIGINT NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (tournament, team)
    );
    CREATE TABLE tournament_matches (
        tournament TEXT NOT NULL,
        match TEXT NOT NULL,
        result INTEGER,
        attempt INTEGER NOT NULL,
        run TEXT,
        version BIGINT NOT NULL,
        PRIMARY KEY (tournament, match)
    );
    CREATE INDEX tournament_matches_by_version ON tournament_matches (tournament, version);
    CREATE TABLE tournament_rounds (
        tournament TEXT NOT NULL,
        number INTEGER NOT NULL,
        round TEXT NOT NULL,
        PRIMARY KEY (tournament, number)
    )
"""


@dataclass(frozen=True, slots=True)
class Changes:
    entries: bool  # the entries changed (their rows are compared team by team)
    matches: frozenset[str]  # matches whose result, attempt or run changed
    rounds: int  # Swiss rounds already stored (the new ones follow)


def _changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    if before is after:
        return set()
    keys = {k for k, v in after.items() if before.get(k) != v}
    return keys | (before.keys() - after.keys())


def changes(before: tm.Tournament | None, after: tm.Tournament) -> Changes:
    if before is None:
        keys = set(after.progress.results) | set(after.attempts) | set(after.runs)
        return Changes(True, frozenset(keys), 0)
    keys = (
        _changed_keys(before.progress.results, after.progress.results)
        | _changed_keys(before.attempts, after.attempts)
        | _changed_keys(before.runs, after.runs)
    )
    return Changes(before.entries is not after.entries, frozenset(keys), len(before.progress.swiss))


async def write(
    tx: Conn, before: tm.Tournament | None, after: tm.Tournament, what: Changes
) -> None:
    """``after``'s header and changed rows (the header row exists: the caller wrote it)."""
    tid = after.id
    await tx.execute(
        "UPDATE tournaments SET phase = ?, version = ?, document = ?, "
        "entries_version = CASE WHEN ? THEN ? ELSE entries_version END WHERE id = ?",
        str(after.phase),
        after.version,
        _dumps(tm.to_document(after, whole=False)),
        what.entries,
        after.version,
        tid,
    )
    if what.entries:
        old = {e.team: e for e in before.entries} if before is not None else {}
        new = {e.team: e for e in after.entries}
        await tx.executemany(
            "DELETE FROM tournament_entries WHERE tournament = ? AND team = ?",
            [(tid, team) for team in old.keys() - new.keys()],
        )
        await tx.executemany(
            "INSERT INTO tournament_entries (tournament, team, position, entry) "
            "VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tournament, team) DO UPDATE SET entry = excluded.entry",
            [
                (tid, team, after.version, _dumps(tm.encode_entry(e)))
                for team, e in new.items()
                if old.get(team) != e
            ],
        )
    # A match that lost everything (a correction dropped its result) keeps an empty row with
    # its version, so another process catching up from an older version sees it go.
    results, attempts, runs = after.progress.results, after.attempts, after.runs
    await tx.executemany(
        "INSERT INTO tournament_matches (tournament, match, result, attempt, run, version) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tournament, match) DO UPDATE SET "
        "result = excluded.result, attempt = excluded.attempt, run = excluded.run, "
        "version = excluded.version",
        [
            (
                tid,
                m,
                results.get(m),
                attempts.get(m, 0),
                None if m not in runs else str(runs[m]),
                after.version,
            )
            for m in sorted(what.matches)
        ],
    )
    await tx.executemany(
        "INSERT INTO tournament_rounds (tournament, number, round) VALUES (?, ?, ?)",
        [(tid, r.number, _dumps(tm.encode_round(r))) for r in after.progress.swiss[what.rounds :]],
    )


async def read(conn: Conn, tournament_id: str) -> tm.Tournament | None:
    """The whole tournament, assembled from its header and rows."""
    header = await conn.fetchone("SELECT document FROM tournaments WHERE id = ?", tournament_id)
    if header is None:
        return None
    doc: dict[str, Any] = orjson.loads(header[0])
    entries = await conn.fetch(
        "SELECT entry FROM tournament_entries WHERE tournament = ? ORDER BY position, team",
        tournament_id,
    )
    doc["entries"] = [orjson.loads(row[0]) for row in entries]
    rows = await conn.fetch(
        "SELECT match, result, attempt, run FROM tournament_matches WHERE tournament = ?",
        tournament_id,
    )
    rows = [row for row in rows if row[1] is not None or row[2] or row[3] is not None]
    doc["results"] = {m: r for m, r, _, _ in rows if r is not None}
    doc["attempts"] = {m: a for m, _, a, _ in rows if a}
    doc["runs"] = {m: run for m, _, _, run in rows if run is not None}
    rounds = await conn.fetch(
        "SELECT round FROM tournament_rounds WHERE tournament = ? ORDER BY number", tournament_id
    )
    doc["swiss"] = [orjson.loads(row[0]) for row in rounds]
    return tm.from_document(doc)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


async def refresh(conn: Conn, cached: tm.Tournament) -> tm.Tournament | None:
    """The tournament at its stored version, from ``cached`` (an older version this process
    holds) and only what changed since: the header, the match rows written after it, the new
    Swiss rounds, and the entries only if they changed. Another process's result costs a few
    rows, not the whole tournament."""
    header = await conn.fetchone(
        "SELECT document, entries_version FROM tournaments WHERE id = ?", cached.id
    )
    if header is None:
        return None
    doc = orjson.loads(header[0])
    fresh = tm.from_document(doc)  # the header; its large parts empty
    entries = cached.entries
    if int(header[1]) > cached.version:
        rows = await conn.fetch(
            "SELECT entry FROM tournament_entries WHERE tournament = ? ORDER BY position, team",
            cached.id,
        )
        entries = tm.from_document({**doc, "entries": [orjson.loads(r[0]) for r in rows]}).entries
    results, attempts = dict(cached.progress.results), dict(cached.attempts)
    runs = dict(cached.runs)
    for match, result, attempt, run in await conn.fetch(
        "SELECT match, result, attempt, run FROM tournament_matches "
        "WHERE tournament = ? AND version > ?",
        cached.id,
        cached.version,
    ):
        for into, value in ((results, result), (attempts, attempt or None), (runs, run)):
            if value is None:
                into.pop(match, None)
            else:
                into[match] = value
    rounds = await conn.fetch(
        "SELECT round FROM tournament_rounds WHERE tournament = ? AND number > ? ORDER BY number",
        cached.id,
        len(cached.progress.swiss),
    )
    new_rounds = tm.from_document({**doc, "swiss": [orjson.loads(r[0]) for r in rounds]})
    swiss = cached.progress.swiss + new_rounds.progress.swiss
    return replace(
        fresh,
        entries=entries,
        progress=replace(fresh.progress, results=results, swiss=swiss),
        attempts=attempts,
        runs={m: tm.Run(r) for m, r in runs.items()},
    )
