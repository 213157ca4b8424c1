"""The nemesis's matchmaking: players queue, accept and are rated over the websocket, and game
servers play their matches and report signed results, through the same faults as the money.

The players (``mm<seed>-<n>``) each hold one websocket to a serve process (the one it was
given; a killed process comes back on its port and the socket reconnects and recovers its
``user:`` channel, as the portal does). Each in turn: ``queue.join``; on ``match.found``,
``match.accept``; then it waits for the match to settle, abort or be called off. A player that
hears nothing for a while asks the server where it stands (``match.current``,
``queue.status``) and goes on from there: after Redis lost its tickets, it queues again.

The game servers register over the websocket and, for each ``match.assigned``, report a
random result a moment later, signed with their key, sent again after a cut until the server
answers. A result is *acknowledged* when the answer says it was taken (or is a ``repeat``:
the lost first try was).

The checks, from the database once the faults stop (:func:`check`):

- no ticket is in two matches, and no player is in two matches at once (the time from a
  match's ready check to its end never overlaps another of the player's);
- every acknowledged result is there: its match is finished, with those ranks;
- each finished match rated each of its players once (``rating_history`` has the match, and
  ``ratings.games`` counts each rated match once);
- every player finished a match after the last fault (its client resynced, and the queue
  works again).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import httpx
import orjson

from leetgaming.simulate import Refused, Socket, sign
from leetgaming.tokens import issue_access_token

QUEUE: Final = "cs2:1v1:eu"
# Any two players match at once (the window covers every rating): the faults are under test
# here, not the fairness of a handful of players' ratings, which may drift too far apart for
# the default window to pair them within the run.
QUEUES_TOML: Final = f"""
[queue."{QUEUE}"]
team_size = 1
window_start = 1000.0
window_max = 1000.0
spread_max = 1000.0
ready_check_s = 10
disconnect_grace_s = 30
decline_cooldown_s = 0
"""
MODE: Final = "cs2:1v1"
SERVER_CAPACITY: Final = 4
QUIET_S: Final = 8.0  # a player that hears nothing this long asks where it stands
PLAY_S: Final = (0.3, 1.2)  # a match lasts this long on its game server
RESULT_TRIES_MAX: Final = 60
TERMINAL: Final = frozenset({"finished", "settled", "cancelled", "aborted"})
DONE: Final = frozenset({"finished", "settled"})  # a result taken (settled: rated too)


@dataclass
class Queuer:
    name: str
    port: int
    socket: Socket | None = None
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    finished: list[tuple[str, float]] = field(default_factory=list)  # (match, when settled)
    refusals: dict[str, int] = field(default_factory=dict)  # code -> times (what it met)
    last_word: str = ""  # what the server said of it at the end (when it did not resync)


@dataclass
class Host:
    id: str
    key: str
    port: int
    socket: Socket | None = None
    acknowledged: dict[str, list[int]] = field(default_factory=dict)  # match -> ranks
    live: set[str] = field(default_factory=set)
    notes: dict[str, list[str]] = field(default_factory=dict)  # match -> what happened to it


@dataclass
class MatchOutcome:
    matches_formed: int = 0
    matches_finished: int = 0
    results_acknowledged: int = 0
    results_lost: int = 0
    tickets_in_two_matches: int = 0
    players_in_two_matches: int = 0
    ratings_applied_twice: int = 0
    players_resynced: int = 0  # finished a match after the last fault
    players: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "matches_formed": self.matches_formed,
            "matches_finished": self.matches_finished,
            "results_acknowledged": self.results_acknowledged,
            "results_lost": self.results_lost,
            "tickets_in_two_matches": self.tickets_in_two_matches,
            "players_in_two_matches": self.players_in_two_matches,
            "ratings_applied_twice": self.ratings_applied_twice,
            "players_resynced": self.players_resynced,
            "players": self.players,
            "problems": self.problems[:20],
        }

    @property
    def ok(self) -> bool:
        return (
            self.results_lost == 0
            and self.tickets_in_two_matches == 0
            and self.players_in_two_matches == 0
            and self.ratings_applied_twice == 0
            and self.players_resynced == self.players
            and not self.problems
        )


def _ws(port: int) -> str:
    return f"ws://127.0.0.1:{port}/ws"


async def start_hosts(
    secret: str, admin_token: str, ports: list[int], count: int, http: httpx.AsyncClient
) -> list[Host]:
    """Game servers made by an admin (their keys), each on its own process's websocket."""
    hosts = []
    for n in range(count):
        port = ports[n % len(ports)]
        made = await http.post(
            f"http://127.0.0.1:{port}/v1/admin/game-servers",
            json={"name": f"nemesis-{n}"},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        made.raise_for_status()
        hosts.append(Host(str(made.json()["id"]), str(made.json()["key"]), port))
    for n, host in enumerate(hosts):

        def token(host: Host = host) -> str:
            now = int(time.time())
            return issue_access_token(secret, host.id, "game_server", f"gs-{host.id}", now, 600)

        register = {"region": "eu", "capacity": SERVER_CAPACITY, "address": f"10.9.0.{n}:27015"}
        host.socket = Socket(
            _ws(host.port), token, _on_assigned(host), ("server.register", register)
        )
        await host.socket.start([f"gameserver:{host.id}"])
    return hosts


def _on_assigned(host: Host) -> Callable[[str, dict[str, Any]], None]:
    def on_pub(ch: str, body: dict[str, Any]) -> None:
        match = body.get("match")
        assigned = body.get("kind") == "match.assigned" and isinstance(match, str)
        if assigned:
            assert isinstance(match, str)
            host.notes.setdefault(match, []).append("assigned")
        if assigned and match not in host.live and match not in host.acknowledged:
            assert isinstance(match, str)
            host.live.add(match)
            asyncio.get_running_loop().create_task(_host(host, match))

    return on_pub


async def _host(host: Host, match: str) -> None:
    """Play the match for a moment, then report a random result until the server answers."""
    assert host.socket is not None
    rng = random.Random(match)
    await asyncio.sleep(rng.uniform(*PLAY_S))
    ranks = [0, 1] if rng.random() < 0.5 else [1, 0]
    try:
        for _ in range(RESULT_TRIES_MAX):
            try:
                await host.socket.rpc(
                    "match.result", match=match, ranks=ranks, signature=sign(host.key, match, ranks)
                )
            except (ConnectionError, TimeoutError) as cut:
                host.notes[match].append(type(cut).__name__)
                await asyncio.sleep(0.5)
                continue
            except Refused as refused:
                host.notes[match].append(refused.code)
                if refused.code in ("busy", "unavailable", "internal"):
                    await asyncio.sleep(0.5)
                    continue
                return  # too late (aborted meanwhile), or not ours any more: not acknowledged
            host.acknowledged[match] = ranks
            return
    finally:
        host.live.discard(match)


async def start_queuers(secret: str, ports: list[int], names: list[str]) -> list[Queuer]:
    queuers = [Queuer(name, ports[n % len(ports)]) for n, name in enumerate(names)]
    for q in queuers:

        def token(q: Queuer = q) -> str:
            return issue_access_token(secret, q.name, "player", "nemesis", int(time.time()))

        def on_pub(ch: str, body: dict[str, Any], q: Queuer = q) -> None:
            if ch == f"user:{q.name}":
                q.events.put_nowait(body)

        q.socket = Socket(_ws(q.port), token, on_pub)
        await q.socket.start([f"user:{q.name}"])
    return queuers


async def queue_loop(q: Queuer, until: Callable[[], bool]) -> None:
    """Queue, accept, wait for the end; again, until ``until()``. Every call may be cut or
    refused by a fault: the player then asks where it stands and goes on from there."""
    assert q.socket is not None
    socket = q.socket
    while not until():
        try:
            where = await socket.rpc("match.current")
            if (
                where.get("match") is None
                and (await socket.rpc("queue.status")).get("ticket") is None
            ):
                await socket.rpc("queue.join", queue=QUEUE)
            elif where.get("match") is not None and not where.get("accepted"):
                await socket.rpc("match.accept", match=where["match"])
        except Refused as refused:
            q.refusals[refused.code] = q.refusals.get(refused.code, 0) + 1
            if refused.code not in ("already_queued", "in_match", "too_late", "unknown_match"):
                await asyncio.sleep(1.0)  # a fault's refusal (unavailable, rate_limited)
        except (ConnectionError, TimeoutError) as cut:
            kind = type(cut).__name__
            q.refusals[kind] = q.refusals.get(kind, 0) + 1
            await asyncio.sleep(0.5)
            continue
        await _follow(q, socket, until)


async def _follow(q: Queuer, socket: Socket, until: Callable[[], bool]) -> None:
    """Answer the ready check and wait for the match's end, or for quiet."""
    while not until():
        try:
            body = await asyncio.wait_for(q.events.get(), QUIET_S)
        except TimeoutError:
            return  # quiet: ask where it stands
        kind, match = body.get("kind"), body.get("match")
        if kind == "match.found" and isinstance(match, str):
            with contextlib.suppress(Refused, ConnectionError, TimeoutError):
                await socket.rpc("match.accept", match=match)
        elif kind == "match.settled" and isinstance(match, str):
            q.finished.append((match, time.monotonic()))
            return
        elif kind in ("match.aborted", "match.cancelled", "queue.expired", "queue.left"):
            return


async def where(q: Queuer) -> str:
    """What the server says of the player now (for the report of one that did not resync)."""
    if q.socket is None:
        return "no socket"
    try:
        current = await asyncio.wait_for(q.socket.rpc("match.current"), 5)
        status = await asyncio.wait_for(q.socket.rpc("queue.status"), 5)
    except (Refused, ConnectionError, TimeoutError) as failed:
        return f"no answer ({type(failed).__name__}: {failed}); socket stopping={q.socket.stopping}"
    return f"match {current.get('match')}, ticket {status.get('ticket')}"


async def stop_all(queuers: list[Queuer], hosts: list[Host]) -> None:
    for s in [q.socket for q in queuers] + [h.socket for h in hosts]:
        if s is not None:
            await s.stop()


async def check(
    database_url: str,
    queuers: list[Queuer],
    hosts: list[Host],
    faults_over_at: float,
    outcome: MatchOutcome,
) -> None:
    outcome.players = len(queuers)
    outcome.players_resynced = sum(
        1 for q in queuers if any(at >= faults_over_at for _, at in q.finished)
    )
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "app"})
    try:
        rows = await conn.fetch("SELECT id, state, document, tickets FROM matches")
        for q in queuers:
            if not any(at >= faults_over_at for _, at in q.finished):
                last = [
                    (orjson.loads(r["document"])["history"][-1], r["id"])
                    for r in rows
                    if f'"{q.name}"' in r["document"]
                ]
                latest = max(last, default=None, key=lambda h: h[0][1])
                outcome.problems.append(
                    f"{q.name}: no match finished after the faults (its latest: {latest}; "
                    f"it met {q.refusals}; at the end: {q.last_word})"
                )
        ladder = [r for r in rows if not str(r["id"]).startswith("t.")]
        outcome.matches_formed = len(ladder)
        seen_tickets: dict[str, str] = {}
        windows: dict[str, list[tuple[float, float, str]]] = {}
        documents = {}
        for r in ladder:
            doc = orjson.loads(r["document"])
            documents[r["id"]] = (r["state"], doc)
            # a ticket goes back to the queue when its match is aborted or called off, and
            # may be matched again: it must be played (finished) at most once
            for ticket in orjson.loads(r["tickets"]) if r["state"] in DONE else []:
                tid = str(ticket["id"])
                if tid in seen_tickets:
                    outcome.tickets_in_two_matches += 1
                    outcome.problems.append(
                        f"ticket {tid} played in {seen_tickets[tid]} and {r['id']}"
                    )
                seen_tickets[tid] = r["id"]
            history = doc.get("history") or []
            begun = float(history[0][1]) if history else 0.0
            ended = next((float(at) for state, at in history if state in TERMINAL), float("inf"))
            for team in doc["teams"]:
                for player in team:
                    windows.setdefault(player, []).append((begun, ended, r["id"]))
        for player, spans in windows.items():
            spans.sort()
            for (_, end, first), (start, _, second) in itertools.pairwise(spans):
                if start < end:
                    outcome.players_in_two_matches += 1
                    outcome.problems.append(f"{player} in {first} and {second} at once")
        finished = {m for m, (state, _) in documents.items() if state in DONE}
        for m, (state, doc) in documents.items():
            if state == "live":
                notes = [h.notes.get(m) for h in hosts if h.id == doc.get("server")]
                outcome.problems.append(f"{m} still live on {doc.get('server')}: {notes}")
        outcome.matches_finished = len(finished)
        for host in hosts:
            for match, ranks in host.acknowledged.items():
                outcome.results_acknowledged += 1
                state, doc = documents.get(match, ("missing", {}))
                if state not in DONE or doc.get("ranks") != ranks:
                    outcome.results_lost += 1
                    outcome.problems.append(f"{match}: result {ranks} acknowledged, {state}")
        rated = await conn.fetch(
            "SELECT player, count(*) AS n FROM rating_history WHERE mode = $1 GROUP BY player",
            MODE,
        )
        history_of = {r["player"]: int(r["n"]) for r in rated}
        games = await conn.fetch("SELECT player, games FROM ratings WHERE mode = $1", MODE)
        for r in games:
            if int(r["games"]) != history_of.get(r["player"], 0):
                outcome.ratings_applied_twice += 1
                outcome.problems.append(
                    f"{r['player']}: {r['games']} games, {history_of.get(r['player'], 0)} rated"
                )
        unrated = await conn.fetch(
            "SELECT m.id FROM matches m WHERE m.state = 'settled' AND NOT EXISTS "
            "(SELECT 1 FROM rating_history h WHERE h.match = m.id)"
        )
        for r in unrated:
            if not str(r["id"]).startswith("t."):
                outcome.problems.append(f"{r['id']}: finished, never rated")
    finally:
        await conn.close()
