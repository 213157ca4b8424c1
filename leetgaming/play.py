"""Playing: queueing over the websocket, the matchmaker's matches, the ready check.

The flow that crosses domains (matchmaking and the hub), so it lives here:

- ``queue.join {queue}`` (players): a ticket with the player's rating for the queue's game and
  mode; refused with ``unknown_queue``, ``already_queued``, ``cooldown`` (after a decline) or
  ``forbidden`` (not a player). ``queue.leave``: the ticket goes.
- A player whose last connection closes keeps the ticket for the queue's disconnect grace;
  reconnecting within it restores the full TTL.
- The matchmaker (one per process; a lease per queue) claims matches; each becomes a
  :class:`~matchmaking.match.Match` stored in the database and enters its ready check:
  ``match.found`` goes to every player's ``user:`` channel and to ``match:<id>``.
- ``match.accept`` / ``match.decline {match}``; at the deadline, silence counts as declining.
  A failed ready check puts the others back at the front of the queue (their tickets keep
  their original waiting time) and gives the decliners a cooldown.
- Matches change by compare-and-set on their version, so two processes handling the same match
  (an accept on one, the deadline on another) never both win.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from leetgaming.db import Database, is_unique_violation
from matchmaking.match import (
    IllegalTransition,
    Match,
    NotInMatch,
    State,
    accept,
    decline,
    expire_ready_check,
    from_document,
    start_ready_check,
    to_document,
)
from matchmaking.matcher import Member, Ticket
from matchmaking.queues import mode_of
from matchmaking.rating import Rating
from matchmaking.service import Event, Expired, Matched, QueueConfig
from matchmaking.tickets import AddOutcome, TicketStore, decode_ticket, encode_ticket
from realtime.channel import Principal, Role
from realtime.server import RpcError

log = logging.getLogger("leetgaming.play")

Publish = Callable[[str, object], Awaitable[int]]

MIGRATIONS: Final = [
    """
    CREATE TABLE ratings (
        player TEXT NOT NULL,
        mode TEXT NOT NULL,
        mu DOUBLE PRECISION NOT NULL,
        sigma DOUBLE PRECISION NOT NULL CHECK (sigma > 0),
        games INTEGER NOT NULL DEFAULT 0,
        updated_s DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (player, mode)
    );
    CREATE TABLE matches (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        deadline_s DOUBLE PRECISION,
        document TEXT NOT NULL,
        tickets TEXT NOT NULL
    );
    CREATE INDEX matches_open ON matches (state, deadline_s);
    CREATE TABLE queue_cooldowns (
        player TEXT PRIMARY KEY,
        until_s DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE rating_history (
        match TEXT NOT NULL,
        player TEXT NOT NULL,
        mode TEXT NOT NULL,
        mu_before DOUBLE PRECISION NOT NULL,
        sigma_before DOUBLE PRECISION NOT NULL,
        mu DOUBLE PRECISION NOT NULL,
        sigma DOUBLE PRECISION NOT NULL,
        at_s DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (match, player)
    );
    CREATE INDEX rating_history_player ON rating_history (player, mode, at_s);
    CREATE INDEX ratings_board ON ratings (mode, (mu - 3 * sigma))
    """,
]
LEADERBOARD_ROWS_MAX: Final = 100


class Play:
    """The ``rpc`` methods of playing, and the matchmaker's event handler."""

    def __init__(
        self,
        db: Database,
        tickets: TicketStore,
        queues: Mapping[str, QueueConfig],
        publish: Publish,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.tickets = tickets
        self.queues = dict(queues)
        self.publish = publish
        self.clock = clock

    async def start(self) -> None:
        await self.db.migrate("play", MIGRATIONS)

    # The hub's Application ---------------------------------------------------------------

    async def call(self, principal: Principal, method: str, params: dict[str, Any]) -> object:
        handler = _METHODS[method]  # KeyError: unknown_method
        if principal.role is not Role.PLAYER:
            raise RpcError("forbidden", "only players play")
        return await handler(self, principal.subject, params)

    async def connected(self, principal: Principal) -> None:
        waiting = await self.tickets.of_player(principal.subject)
        if waiting is not None:
            ttl = self.queues[waiting.queue].ticket_ttl_s
            await self.tickets.set_expiry(waiting.ticket.id, self.clock() + ttl)

    async def disconnected(self, principal: Principal) -> None:
        waiting = await self.tickets.of_player(principal.subject)
        if waiting is not None:
            grace = self.queues[waiting.queue].disconnect_grace_s
            await self.tickets.set_expiry(waiting.ticket.id, self.clock() + grace)

    # Methods ----------------------------------------------------------------------------

    async def queue_join(self, player: str, params: dict[str, Any]) -> object:
        name = params.get("queue")
        if set(params) - {"queue"}:
            raise RpcError("bad_params", "queue.join takes {queue}")
        config = self.queues.get(name) if isinstance(name, str) else None
        if config is None:
            raise RpcError("unknown_queue", f"queues: {', '.join(sorted(self.queues))}")
        now = self.clock()
        row = await self.db.fetchone("SELECT until_s FROM queue_cooldowns WHERE player = ?", player)
        if row is not None and row[0] > now:
            raise RpcError("cooldown", f"you declined a match: wait {row[0] - now:.0f} s")
        rating = await self.rating(player, mode_of(config.name), config)
        ticket = Ticket(f"tk-{secrets.token_hex(8)}", (Member(player, rating),), now)
        outcome = await self.tickets.add(config.name, ticket, now + config.ticket_ttl_s)
        if outcome is not AddOutcome.OK:
            raise RpcError("already_queued", "you are already in a queue: leave it first")
        await self.publish(f"user:{player}", {"kind": "queue.joined", "queue": config.name})
        return {"ticket": ticket.id, "queue": config.name, "expires_in_s": config.ticket_ttl_s}

    async def queue_leave(self, player: str, params: dict[str, Any]) -> object:
        waiting = await self.tickets.of_player(player)
        if waiting is None or await self.tickets.cancel(waiting.ticket.id) is None:
            return {"left": False}
        await self.publish(f"user:{player}", {"kind": "queue.left", "queue": waiting.queue})
        return {"left": True, "queue": waiting.queue}

    async def match_accept(self, player: str, params: dict[str, Any]) -> object:
        return await self._ready(player, params, accept)

    async def match_decline(self, player: str, params: dict[str, Any]) -> object:
        return await self._ready(player, params, decline)

    async def _ready(
        self,
        player: str,
        params: dict[str, Any],
        step: Callable[[Match, str, float], tuple[Match, list[Any]]],
    ) -> object:
        match_id = params.get("match")
        if not isinstance(match_id, str) or set(params) - {"match"}:
            raise RpcError("bad_params", "takes {match}")
        for _ in range(5):  # compare-and-set: another process may change the match meanwhile
            loaded = await self.load(match_id)
            if loaded is None or player not in loaded[0].players:
                raise RpcError("unknown_match", "no such match of yours")
            match, tickets = loaded
            try:
                changed, events = step(match, player, self.clock())
            except (IllegalTransition, NotInMatch):
                raise RpcError("too_late", f"the match is {match.state}") from None
            if changed == match or await self.save(changed, match.version):
                await self._after(changed, events, tickets)
                return {"match": changed.id, "state": str(changed.state)}
        raise RpcError("busy", "try again", retryable=True)

    # The matchmaker's events and the ready check's deadline --------------------------------

    async def on_event(self, event: Event) -> None:
        if isinstance(event, Expired):
            for m in event.waiting.ticket.members:
                await self.publish(
                    f"user:{m.player}", {"kind": "queue.expired", "queue": event.waiting.queue}
                )
            return
        assert isinstance(event, Matched)
        claimed = event.match
        config = self.queues[claimed.queue]
        teams = tuple(tuple(m.player for t in team for m in t.members) for team in claimed.teams)
        match, found = start_ready_check(
            Match(claimed.id, claimed.queue, teams), self.clock(), config.ready_check_s
        )
        tickets = [encode_ticket(t) for team in claimed.teams for t in team]
        await self.db.execute(
            "INSERT INTO matches (id, queue, state, version, deadline_s, document, tickets) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            match.id,
            match.queue,
            str(match.state),
            match.version,
            match.deadline_s,
            json.dumps(to_document(match)),
            json.dumps(tickets),
        )
        await self._announce(match, [found])

    async def sweep(self) -> int:
        """Ready checks past their deadline fail; returns how many did."""
        now = self.clock()
        rows = await self.db.fetch(
            "SELECT id FROM matches WHERE state = ? AND deadline_s <= ?",
            str(State.READY_CHECK),
            now,
        )
        failed = 0
        for (match_id,) in rows:
            loaded = await self.load(str(match_id))
            if loaded is None:
                continue
            match, tickets = loaded
            changed, events = expire_ready_check(match, now)
            if changed != match and await self.save(changed, match.version):
                await self._after(changed, events, tickets)
                failed += 1
        return failed

    # Storage ----------------------------------------------------------------------------

    async def load(self, match_id: str) -> tuple[Match, list[Ticket]] | None:
        row = await self.db.fetchone("SELECT document, tickets FROM matches WHERE id = ?", match_id)
        if row is None:
            return None
        return from_document(json.loads(row[0])), [decode_ticket(t) for t in json.loads(row[1])]

    async def save(self, match: Match, expected_version: int) -> bool:
        changed = await self.db.execute(
            "UPDATE matches SET state = ?, version = ?, deadline_s = ?, document = ? "
            "WHERE id = ? AND version = ?",
            str(match.state),
            match.version,
            match.deadline_s,
            json.dumps(to_document(match)),
            match.id,
            expected_version,
        )
        return changed == 1

    async def rating(self, player: str, mode: str, config: QueueConfig) -> Rating:
        row = await self.db.fetchone(
            "SELECT mu, sigma FROM ratings WHERE player = ? AND mode = ?", player, mode
        )
        return config.model.new() if row is None else Rating(float(row[0]), float(row[1]))

    async def apply_ratings(
        self, match_id: str, queue: str, teams: list[list[str]], ranks: list[int]
    ) -> bool:
        """Rate one finished match, exactly once: False when it was rated already.

        In one transaction: the players' rows are created if new and locked (so two matches
        of one player finishing at once never both start from the same rating), rated, and
        written with their history; the history's key (match, player) makes a second
        application of the same match fail as a whole."""
        config = self.queues[queue]
        mode = mode_of(queue)
        fresh = config.model.new()
        lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        now = self.clock()
        players = sorted(p for team in teams for p in team)  # one lock order for everyone
        try:
            async with self.db.transaction() as tx:
                current: dict[str, Rating] = {}
                for player in players:
                    await tx.execute(
                        "INSERT INTO ratings (player, mode, mu, sigma, games, updated_s) "
                        "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (player, mode) DO NOTHING",
                        player,
                        mode,
                        fresh.mu,
                        fresh.sigma,
                        now,
                    )
                    row = await tx.fetchone(
                        "SELECT mu, sigma FROM ratings WHERE player = ? AND mode = ?" + lock,
                        player,
                        mode,
                    )
                    assert row is not None
                    current[player] = Rating(float(row[0]), float(row[1]))
                before = [[current[p] for p in team] for team in teams]
                after = config.model.rate(before, ranks)
                for team, olds, news in zip(teams, before, after, strict=True):
                    for player, old, new in zip(team, olds, news, strict=True):
                        await tx.execute(
                            "INSERT INTO rating_history (match, player, mode, mu_before, "
                            "sigma_before, mu, sigma, at_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            match_id,
                            player,
                            mode,
                            old.mu,
                            old.sigma,
                            new.mu,
                            new.sigma,
                            now,
                        )
                        await tx.execute(
                            "UPDATE ratings SET mu = ?, sigma = ?, games = games + 1, "
                            "updated_s = ? WHERE player = ? AND mode = ?",
                            new.mu,
                            new.sigma,
                            now,
                            player,
                            mode,
                        )
        except Exception as exc:
            if is_unique_violation(exc):
                return False  # rated before: the repeat changes nothing
            raise
        return True

    async def leaderboard(self, mode: str, limit: int) -> list[dict[str, object]]:
        """The mode's players by conservative rating (mu - 3 sigma), best first."""
        rows = await self.db.fetch(
            "SELECT player, mu, sigma, games FROM ratings WHERE mode = ? "
            "ORDER BY mu - 3 * sigma DESC, player LIMIT ?",
            mode,
            max(1, min(limit, LEADERBOARD_ROWS_MAX)),
        )
        return [
            {"player": p, "rating": mu - 3 * sigma, "mu": mu, "sigma": sigma, "games": games}
            for p, mu, sigma, games in rows
        ]

    async def rating_history(self, player: str, mode: str) -> list[dict[str, object]]:
        rows = await self.db.fetch(
            "SELECT match, mu_before, sigma_before, mu, sigma, at_s FROM rating_history "
            "WHERE player = ? AND mode = ? ORDER BY at_s, match",
            player,
            mode,
        )
        keys = ("match", "mu_before", "sigma_before", "mu", "sigma", "at_s")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # Effects ----------------------------------------------------------------------------

    async def _after(self, match: Match, events: list[Any], tickets: list[Ticket]) -> None:
        if match.state is State.CANCELLED:
            config = self.queues[match.queue]
            now = self.clock()
            back = [t for t in tickets if all(m.player not in match.declined for m in t.members)]
            await self.tickets.requeue(match.queue, back, now + config.ticket_ttl_s)
            for player in sorted(match.declined):
                await self.db.execute(
                    "INSERT INTO queue_cooldowns (player, until_s) VALUES (?, ?) "
                    "ON CONFLICT (player) DO UPDATE SET until_s = excluded.until_s",
                    player,
                    now + config.decline_cooldown_s,
                )
        await self._announce(match, events)

    async def _announce(self, match: Match, events: list[Any]) -> None:
        for event in events:
            body = {"kind": event.kind, **event.data}
            await self.publish(f"match:{match.id}", body)
            for player in match.players:
                await self.publish(f"user:{player}", body)


_METHODS: Final[dict[str, Callable[[Play, str, dict[str, Any]], Awaitable[object]]]] = {
    "queue.join": Play.queue_join,
    "queue.leave": Play.queue_leave,
    "match.accept": Play.match_accept,
    "match.decline": Play.match_decline,
}
