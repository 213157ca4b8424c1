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

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from leetgaming.batching import Batcher, Done
from leetgaming.db import Conn, Database, is_unique_violation, one_of
from leetgaming.parties import MIGRATION as PARTIES_MIGRATION
from leetgaming.parties import Parties, expect_params
from leetgaming.ratelimit import MemoryRateLimiter, Rate, RateLimiter
from matchmaking.match import Event as MatchEvent
from matchmaking.match import (
    IllegalTransition,
    Match,
    NotInMatch,
    ResultRefused,
    State,
    abort,
    accept,
    allocate,
    conflicting,
    decline,
    expire_ready_check,
    final_result,
    from_document,
    heard,
    settle,
    start_ready_check,
    to_document,
    withdraw,
)
from matchmaking.matcher import Member, Ticket
from matchmaking.queues import mode_of
from matchmaking.rating import Rating
from matchmaking.servers import GameServer, MemoryServerRegistry, ServerRegistry
from matchmaking.service import Event, Expired, Matched, QueueConfig
from matchmaking.tickets import AddOutcome, TicketStore, Waiting, decode_ticket, encode_ticket
from realtime.channel import Principal, Role
from realtime.server import RpcError

log = logging.getLogger("leetgaming.play")

Publish = Callable[[str, object], Awaitable[int]]
PublishMany = Callable[[Sequence[tuple[str, object]]], Awaitable[object]]

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
    PARTIES_MIGRATION,
    # when a match formed and how long its tickets had waited (the queues' wait estimates)
    """
    ALTER TABLE matches ADD COLUMN formed_s DOUBLE PRECISION;
    ALTER TABLE matches ADD COLUMN waited_s DOUBLE PRECISION;
    CREATE INDEX matches_formed ON matches (queue, formed_s)
    """,
]
WAIT_WINDOW_S: Final = 900.0  # the wait estimate looks at matches formed this recently
WAIT_SAMPLES_MAX: Final = 50  # and at most this many of them
QUEUE_FIGURES_TTL_S: Final = 1.0
CURRENT_MATCHES_MAX: Final = 20  # documents a match.current reads at most
LEADERBOARD_ROWS_MAX: Final = 100
ALLOCATION_TIMEOUT_S: Final = 60.0  # no server for this long after the ready check: aborted
SERVER_SILENCE_S: Final = 60.0  # a live match's server silent this long: aborted
# a live match its server has not spoken of yet is assigned to it again this often (the first
# assignment may have been lost: a publication while Redis was away, a server reconnecting)
REASSIGN_EVERY_S: Final = 5.0
REASSIGNED_KEPT_MAX: Final = 10_000
SERVER_CAPACITY_MAX: Final = 64
QUEUE_JOINS: Final = Rate(count=10, per_s=60)  # per player: joining and leaving is not free
RESULTS_PER_COMMIT_MAX: Final = 128  # final results settled in one transaction
READIES_PER_COMMIT_MAX: Final = 256  # ready-check answers (accept, decline) in one transaction

# A match rated: (match, queue, teams of players, ranks)
Rated = tuple[str, str, list[list[str]], list[int]]
AfterCommit = Callable[[], Awaitable[None]]
# Told of matches settled, in the settling transaction; returns what to do after the commit
SettledListener = Callable[[Conn, Sequence[Match]], Awaitable[AfterCommit | None]]


@dataclass(frozen=True)
class _Finished:
    """A final result checked against the match as loaded, waiting for its batch."""

    loaded: Match
    finished: Match
    events: list[MatchEvent]


@dataclass(frozen=True)
class _Answer:
    """A player's answer to a ready check, waiting for its batch."""

    player: str
    match: str
    step: Callable[[Match, str, float], tuple[Match, list[Any]]]


class Play:
    """The ``rpc`` methods of playing, and the matchmaker's event handler."""

    def __init__(
        self,
        db: Database,
        tickets: TicketStore,
        queues: Mapping[str, QueueConfig],
        publish: Publish,
        clock: Callable[[], float],
        servers: ServerRegistry | None = None,
        result_key_of: Callable[[str], Awaitable[str | None]] | None = None,
        allocation_timeout_s: float = ALLOCATION_TIMEOUT_S,
        server_silence_s: float = SERVER_SILENCE_S,
        limiter: RateLimiter | None = None,
        publish_many: PublishMany | None = None,
    ) -> None:
        self.publish_many = publish_many
        self.limiter: RateLimiter = limiter or MemoryRateLimiter()
        self.allocation_timeout_s = allocation_timeout_s
        self.server_silence_s = server_silence_s
        self.db = db
        self.tickets = tickets
        self.queues = dict(queues)
        self.publish = publish
        self.clock = clock
        self.servers: ServerRegistry = servers or MemoryServerRegistry()
        self.result_key_of = result_key_of or _no_keys
        # Tournaments listen: matches settled (told in the settling transaction; what they
        # return runs once it has committed), or one ended without a result (aborted,
        # cancelled)
        self.on_settled: list[SettledListener] = []
        self.on_failed: list[Callable[[Match], Awaitable[None]]] = []
        # Told of a match given to a server, after the server's own notice (CS2 servers are
        # told over RCON)
        self.on_allocated: list[Callable[[Match, str], Awaitable[None]]] = []
        # A match whose channel has a spectator delay (a CS2 match's): its match-channel
        # events go to referees now and to the public after the delay
        self.delay_of: Callable[[str], Awaitable[float | None]] | None = None
        self.feed: Any = None  # leetgaming.spectators.SpectatorFeed, with delay_of
        party_size_max = max((q.rules.team_size for q in self.queues.values()), default=1)
        self.parties = Parties(db, publish, clock, party_size_max)
        self._figures: dict[str, tuple[float, dict[str, object]]] = {}  # queue -> (at, figures)
        self._results: Batcher[_Finished, bool] = Batcher(
            self._settle_results, RESULTS_PER_COMMIT_MAX
        )
        self._announcing: asyncio.Task[None] | None = None
        # the game servers connected to this process, registered again every
        # SERVERS_REREGISTER_S: a Redis that lost its data (restarted empty) has them back
        self._hosted: dict[str, GameServer] = {}
        self._reassigned: dict[str, float] = {}  # live match -> when last assigned again
        self._answers: Batcher[_Answer, dict[str, str] | RpcError] = Batcher(
            self._answer_batch, READIES_PER_COMMIT_MAX
        )

    async def start(self) -> None:
        await self.db.migrate("play", MIGRATIONS)

    # The hub's Application ---------------------------------------------------------------

    async def call(self, principal: Principal, method: str, params: dict[str, Any]) -> object:
        role, handler = _METHODS[method]  # KeyError: unknown_method
        if principal.role is not role:
            raise RpcError("forbidden", f"{method} is for the role {role}")
        return await handler(self, principal.subject, params)

    async def connected(self, principal: Principal) -> None:
        if principal.role is not Role.PLAYER:
            return
        waiting = await self.tickets.of_player(principal.subject)
        if waiting is not None:
            ttl = self.queues[waiting.queue].ticket_ttl_s
            await self.tickets.set_expiry(waiting.ticket.id, self.clock() + ttl)

    async def disconnected(self, principal: Principal) -> None:
        if principal.role is Role.GAME_SERVER:
            self._hosted.pop(principal.subject, None)
            await self.servers.unregister(principal.subject)  # its matches fall silent, abort
            return
        waiting = await self.tickets.of_player(principal.subject)
        if waiting is not None:
            grace = self.queues[waiting.queue].disconnect_grace_s
            await self.tickets.set_expiry(waiting.ticket.id, self.clock() + grace)

    # Methods ----------------------------------------------------------------------------

    async def queue_join(self, player: str, params: dict[str, Any]) -> object:
        """Queue the caller, or the caller's whole party (its leader only; the party at most
        one team)."""
        name = params.get("queue")
        if set(params) - {"queue"}:
            raise RpcError("bad_params", "queue.join takes {queue}")
        config = self.queues.get(name) if isinstance(name, str) else None
        if config is None:
            raise RpcError("unknown_queue", f"queues: {', '.join(sorted(self.queues))}")
        wait_ms = await self.limiter.hit(
            f"queue.join:{player}", QUEUE_JOINS, int(self.clock() * 1000)
        )
        if wait_ms:
            raise RpcError(
                "rate_limited", f"too many queue joins: wait {wait_ms / 1000:.0f} s", True
            )
        party = await self.parties.of(player)
        players: tuple[str, ...] = (player,)
        if party is not None:
            if party.leader != player:
                raise RpcError("not_party_leader", "your party's leader queues the party")
            if len(party.members) > config.rules.team_size:
                raise RpcError(
                    "party_too_large",
                    f"{config.name} has teams of {config.rules.team_size}: "
                    f"your party has {len(party.members)}",
                )
            players = party.members
        now = self.clock()
        for member in players:
            if await self._open_match_of(member) is not None:
                who = "you are" if member == player else f"{member} is"
                raise RpcError("in_match", f"{who} in a match that is not over")
            row = await self.db.fetchone(
                "SELECT until_s FROM queue_cooldowns WHERE player = ?", member
            )
            if row is not None and row[0] > now:
                who = "you" if member == player else member
                raise RpcError("cooldown", f"{who} declined a match: wait {row[0] - now:.0f} s")
        mode = mode_of(config.name)
        members = tuple([Member(m, await self.rating(m, mode, config)) for m in players])
        ticket = Ticket(f"tk-{secrets.token_hex(8)}", members, now)
        outcome = await self.tickets.add(config.name, ticket, now + config.ticket_ttl_s)
        if outcome is not AddOutcome.OK:
            raise RpcError("already_queued", "you (or a party member) are already in a queue")
        for member in players:
            await self.publish(
                f"user:{member}",
                {"kind": "queue.joined", "queue": config.name, "ticket": ticket.id},
            )
        return {
            "ticket": ticket.id,
            "queue": config.name,
            "players": list(players),
            "expires_in_s": config.ticket_ttl_s,
        }

    async def queue_leave(self, player: str, params: dict[str, Any]) -> object:
        expect_params(params)
        waiting = await self._cancel_ticket_of(player)
        if waiting is None:
            return {"left": False}
        return {"left": True, "queue": waiting.queue, "ticket": waiting.ticket.id}

    async def queue_status(self, player: str, params: dict[str, Any]) -> object:
        """The ticket the caller waits in, if any."""
        expect_params(params)
        waiting = await self.tickets.of_player(player)
        if waiting is None:
            return {"ticket": None}
        return {
            "ticket": waiting.ticket.id,
            "queue": waiting.queue,
            "players": [m.player for m in waiting.ticket.members],
            "waiting_s": max(0.0, self.clock() - waiting.ticket.waiting_since_s),
            "expires_in_s": max(0.0, waiting.expires_s - self.clock()),
        }

    async def match_current(self, player: str, params: dict[str, Any]) -> object:
        """The caller's match that is not over (in its ready check, finding a server, or
        live), if any: what a client opened after its ``match.found`` (a reload) missed."""
        expect_params(params)
        match = await self._open_match_of(player)
        if match is None:
            return {"match": None}
        deadline = match.deadline_s if match.state is State.READY_CHECK else None
        return {
            "match": match.id,
            "queue": match.queue,
            "teams": [list(team) for team in match.teams],
            "state": str(match.state),
            "accepted": player in match.accepted,
            "accept_within_s": None if deadline is None else max(0.0, deadline - self.clock()),
        }

    async def _open_match_of(self, player: str) -> Match | None:
        """The player's match that is not over (ready check, allocating, live), if any."""
        pattern = '%"' + player.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
        for match, _ in await self._loaded(
            "WHERE state IN (?, ?, ?) AND document LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
            str(State.READY_CHECK),
            str(State.ALLOCATING),
            str(State.LIVE),
            pattern,
            CURRENT_MATCHES_MAX,
        ):
            if player in match.players:
                return match  # (the text may have matched elsewhere in a document)
        return None

    async def _cancel_ticket_of(self, player: str) -> Waiting | None:
        """Cancel the ticket ``player`` waits in (with everyone on it), telling each of them."""
        waiting = await self.tickets.of_player(player)
        if waiting is None or await self.tickets.cancel(waiting.ticket.id) is None:
            return None
        for member in waiting.ticket.members:
            await self.publish(
                f"user:{member.player}",
                {"kind": "queue.left", "queue": waiting.queue, "ticket": waiting.ticket.id},
            )
        return waiting

    # Parties: a change of members cancels the party's ticket (it was made for the old party)

    async def party_create(self, player: str, params: dict[str, Any]) -> object:
        party = await self.parties.create(player, params)
        await self._cancel_ticket_of(player)  # queued alone before: no longer
        return party.view()

    async def party_invite(self, player: str, params: dict[str, Any]) -> object:
        return await self.parties.invite(player, params)

    async def party_join(self, player: str, params: dict[str, Any]) -> object:
        party = await self.parties.join(player, params)
        await self._cancel_ticket_of(player)
        await self._cancel_ticket_of(party.leader)
        return party.view()

    async def party_leave(self, player: str, params: dict[str, Any]) -> object:
        expect_params(params)
        await self._cancel_ticket_of(player)
        party = await self.parties.leave(player)
        return {"left": party is not None, "party": None if party is None else party.id}

    async def party_status(self, player: str, params: dict[str, Any]) -> object:
        expect_params(params)
        party = await self.parties.of(player)
        return {"party": None} if party is None else party.view()

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
        answered = await self._answers.submit(_Answer(player, match_id, step))
        if isinstance(answered, RpcError):
            raise answered
        return answered

    async def _answer_batch(self, batch: Sequence[_Answer]) -> Done[dict[str, str] | RpcError]:
        """Ready-check answers, a batch at a time (a round of a tournament starts hundreds of
        ready checks at once, and ten players answer each within a second): one transaction
        holds the matches' rows (PostgreSQL; SQLite serialises writers), so an answer waits
        its turn instead of losing a compare-and-set, applies the answers in the order they
        came, and writes each match once. An answer the match refuses fails alone."""
        among, ids = one_of(self.db.dialect, sorted({a.match for a in batch}))
        now = self.clock()
        async with self.db.transaction() as tx:
            found = await self._loaded(
                f"WHERE id {among} ORDER BY id{self._for_update}", *ids, conn=tx
            )
            loaded = {match.id: (match, tickets) for match, tickets in found}
            current = {match_id: match for match_id, (match, _) in loaded.items()}
            events: dict[str, list[Any]] = {}
            answers: list[dict[str, str] | RpcError] = []
            for answer in batch:
                match = current.get(answer.match)
                if match is None or answer.player not in match.players:
                    answers.append(RpcError("unknown_match", "no such match of yours"))
                    continue
                try:
                    changed, happened = answer.step(match, answer.player, now)
                except (IllegalTransition, NotInMatch):
                    answers.append(RpcError("too_late", f"the match is {match.state}"))
                    continue
                current[match.id] = changed
                events.setdefault(match.id, []).extend(happened)
                answers.append({"match": changed.id, "state": str(changed.state)})
            moved = [m for m in current.values() if m != loaded[m.id][0]]
            if moved:  # the rows are held: every compare-and-set wins
                await tx.executemany(_SAVE, [_saved(m, loaded[m.id][0].version) for m in moved])

        async def after() -> None:  # the matches' events, allocations, requeues, side by side
            done = await asyncio.gather(
                *(self._after(m, events[m.id], loaded[m.id][1]) for m in moved),
                return_exceptions=True,
            )
            for match, outcome in zip(moved, done, strict=True):
                if isinstance(outcome, Exception):
                    log.error("after a ready check", exc_info=outcome, extra={"match": match.id})

        return answers, (after if moved else None)

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
        tickets = [encode_ticket(t) for team in claimed.teams for t in team]
        match, found, _ = await self._ready_check(claimed.id, config, teams, tickets)
        await self._announce(match, [found])

    async def start_match(
        self, match_id: str, queue: str, teams: tuple[tuple[str, ...], ...], best_of: int = 1
    ) -> bool:
        """A match made elsewhere (a tournament's, a series of ``best_of`` games): its ready
        check starts as the matchmaker's do, and it goes on as they do. Idempotent: a match id
        already known is left as it is (False)."""
        match, found, inserted = await self._ready_check(
            match_id, self.queues[queue], teams, [], best_of
        )
        if inserted:
            await self._announce(match, [found])
        return inserted

    async def _ready_check(
        self,
        match_id: str,
        config: QueueConfig,
        teams: tuple[tuple[str, ...], ...],
        tickets: list[Any],
        best_of: int = 1,
    ) -> tuple[Match, MatchEvent, bool]:
        """A new match stored in its ready check (unless its id is known: False)."""
        match, found = start_ready_check(
            Match(match_id, config.name, teams, best_of=best_of),
            self.clock(),
            config.ready_check_s,
        )
        now = self.clock()
        waits = [now - float(t["since"]) for t in tickets]  # none: a tournament's, an admin's
        inserted = await self.db.execute(
            "INSERT INTO matches (id, queue, state, version, deadline_s, document, tickets, "
            "formed_s, waited_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            match.id,
            match.queue,
            str(match.state),
            match.version,
            match.deadline_s,
            json.dumps(to_document(match)),
            json.dumps(tickets),
            now,
            sum(waits) / len(waits) if waits else None,
        )
        return match, found, bool(inserted)

    async def withdraw_match(self, match_id: str) -> bool:
        """Call off a match that is not over (its tournament no longer needs it); False when
        it is over already or unknown."""
        for _ in range(5):
            loaded = await self.load(match_id)
            if loaded is None:
                return False
            match, tickets = loaded
            try:
                moved, event = withdraw(match, self.clock())
            except IllegalTransition:
                return False
            if await self.save(moved, match.version):
                await self._after(moved, [event], tickets)
                return True
        raise RuntimeError(f"match {match_id} kept changing while being withdrawn")

    async def sweep(self) -> int:
        """Time-driven changes, run every second by some process (compare-and-set makes a
        second one harmless): ready checks past their deadline fail, matches waiting for a
        server are offered one again or aborted after ``allocation_timeout_s``, and live
        matches whose server has been silent for ``server_silence_s`` are aborted; a live
        match its server has said nothing of yet is assigned to it again every
        :data:`REASSIGN_EVERY_S` (a server takes an assignment it already has as a no-op).
        Returns how many matches changed."""
        changed_count = await self._sweep_ready_checks()
        now = self.clock()
        for state in (State.ALLOCATING, State.LIVE):
            for match, tickets in await self._loaded("WHERE state = ?", str(state)):
                since = match.history[-1][1] if match.history else now
                if match.state is State.ALLOCATING:
                    if now - since >= self.allocation_timeout_s:
                        changed_count += await self._abort(match, tickets, frozenset())
                    else:
                        changed_count += await self._try_allocate(match, tickets)
                elif now - (match.last_heard_s or since) >= self.server_silence_s:
                    changed_count += await self._abort(match, tickets, frozenset())
                elif (
                    match.last_heard_s is None
                    and match.server is not None
                    and now - self._reassigned.get(match.id, since) >= REASSIGN_EVERY_S
                ):
                    self._reassigned[match.id] = now
                    await self._assign(match, match.server)
        if len(self._reassigned) > REASSIGNED_KEPT_MAX:
            self._reassigned.clear()
        return changed_count

    async def _sweep_ready_checks(self) -> int:
        now = self.clock()
        due = await self._loaded("WHERE state = ? AND deadline_s <= ?", str(State.READY_CHECK), now)
        failed = 0
        for match, tickets in due:
            changed, events = expire_ready_check(match, now)
            if changed != match and await self.save(changed, match.version):
                await self._after(changed, events, tickets)
                failed += 1
        return failed

    # Game servers -----------------------------------------------------------------------

    async def server_register(self, server: str, params: dict[str, Any]) -> object:
        region, capacity, address = (params.get(k) for k in ("region", "capacity", "address"))
        if (
            set(params) - {"region", "capacity", "address"}
            or not isinstance(region, str)
            or not 0 < len(region) <= 32
            or type(capacity) is not int
            or not 1 <= capacity <= SERVER_CAPACITY_MAX
            or not isinstance(address, str)
            or not 0 < len(address) <= 255
        ):
            raise RpcError(
                "bad_params",
                f"server.register takes {{region, capacity 1..{SERVER_CAPACITY_MAX}, address}}",
            )
        registered = GameServer(server, region, capacity, address)
        await self.servers.register(registered)
        self._hosted[server] = registered
        return {"server": server, "region": region, "capacity": capacity}

    async def reregister(self) -> None:
        """Register again the game servers connected to this process (idempotent; each keeps
        its slots in use): after Redis lost its data, matches are allocated to them again."""
        for server in list(self._hosted.values()):
            await self.servers.register(server)

    async def _server_match(
        self, server: str, params: dict[str, Any]
    ) -> tuple[Match, list[Ticket]]:
        match_id = params.get("match")
        loaded = await self.load(match_id) if isinstance(match_id, str) else None
        if loaded is None or loaded[0].server != server:
            raise RpcError("not_your_match", "no such match on this server")
        return loaded

    async def match_update(self, server: str, params: dict[str, Any]) -> object:
        """Live state from the match's server (score, round, ...), shown to spectators."""
        if set(params) - {"match", "live"}:
            raise RpcError("bad_params", "match.update takes {match, live}")
        match, _ = await self._server_match(server, params)
        try:
            updated = heard(match, server, self.clock())
        except IllegalTransition:
            raise RpcError("too_late", f"the match is {match.state}") from None
        await self.save(updated, match.version)  # a lost race only loses a heartbeat
        await self.publish(
            f"match:{match.id}",
            {"kind": "match.update", "match": match.id, "live": params.get("live")},
        )
        return {"match": match.id}

    async def match_result(self, server: str, params: dict[str, Any]) -> object:
        """The final result, signed: HMAC-SHA256 of ``result_message(match, ranks)`` with the
        SHA-256 (hex) of the server's key as the HMAC key."""
        ranks, signature = params.get("ranks"), params.get("signature")
        if (
            set(params) - {"match", "ranks", "signature"}
            or not isinstance(ranks, list)
            or not all(type(r) is int and 0 <= r < 64 for r in ranks)
            or not isinstance(signature, str)
        ):
            raise RpcError("bad_params", "match.result takes {match, ranks: [int], signature}")
        match, _ = await self._server_match(server, params)
        message = result_message(match.id, ranks)
        key = await self.result_key_of(server)
        expected = (
            "" if key is None else hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
        )
        if key is None or not hmac.compare_digest(expected, signature):
            log.warning("result with a bad signature", extra={"match": match.id, "server": server})
            raise RpcError("bad_signature", "the result's signature does not verify")
        return await self._settle(match, server, ranks, hashlib.sha256(message).hexdigest())

    async def settle_result(self, match_id: str, server: str, ranks: list[int]) -> object:
        """A final result that arrived another way than ``match.result`` (a CS2 plugin's
        series, already authenticated): settled exactly as a signed one is."""
        loaded = await self.load(match_id)
        if loaded is None:
            raise RpcError("not_your_match", "no such match")
        message = result_message(match_id, ranks)
        return await self._settle(loaded[0], server, ranks, hashlib.sha256(message).hexdigest())

    async def _settle(self, match: Match, server: str, ranks: list[int], digest: str) -> object:
        for _ in range(5):
            try:
                finished, events = final_result(match, server, tuple(ranks), digest, self.clock())
            except ResultRefused as refused:
                if refused.code == "conflicting_result":
                    log.warning("conflicting result", extra={"match": match.id, "server": server})
                    await self.save(conflicting(match), match.version)
                raise RpcError(refused.code, str(refused)) from None
            except IllegalTransition:
                raise RpcError("too_late", f"the match is {match.state}") from None
            if finished == match:
                return {"match": match.id, "state": str(match.state), "repeat": True}
            if await self._results.submit(_Finished(match, finished, events)):
                return {"match": match.id, "state": "finished", "repeat": False}
            match, _ = await self._server_match(server, {"match": match.id})
        raise RpcError("busy", "try again", retryable=True)

    async def hear(self, match_id: str, server: str) -> bool:
        """The match's server was heard from another way (a CS2 plugin's event): it is not
        silent. False when the match is not live on that server (nothing changes)."""
        for _ in range(3):
            loaded = await self.load(match_id)
            if loaded is None:
                return False
            match = loaded[0]
            try:
                updated = heard(match, server, self.clock())
            except IllegalTransition:
                return False
            if await self.save(updated, match.version):
                return True
        return False

    async def abort_match(self, match_id: str, server: str) -> bool:
        """The match's server failed it (could not load it, or called it off): aborted, its
        players back in the queue. False when it is not live or allocating on that server."""
        for _ in range(5):
            loaded = await self.load(match_id)
            if loaded is None or loaded[0].server != server:
                return False
            match, tickets = loaded
            try:
                if await self._abort(match, tickets, frozenset()):
                    return True
            except IllegalTransition:
                return False
        return False

    async def _settle_results(self, batch: Sequence[_Finished]) -> Done[bool]:
        """Results, a batch at a time (see :mod:`leetgaming.batching`), in one transaction:
        each match compare-and-set from the version its result was checked against to settled
        (finished and rated), the players rated, and what listens (a tournament's bracket)
        told in the same transaction, so a result acknowledged is a bracket advanced even if
        the process dies right after. A match whose version moved meanwhile (a heartbeat)
        gets False: its caller reloads it and tries again."""
        now = self.clock()
        among, ids = one_of(self.db.dialect, sorted({f.loaded.id for f in batch}))
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT id, version FROM matches WHERE id {among} ORDER BY id" + self._for_update,  # nosec B608
                *ids,
            )
            versions = {row[0]: int(row[1]) for row in rows}
            won: list[tuple[Match, list[MatchEvent]]] = []
            saves: list[tuple[Any, ...]] = []
            taken: set[str] = set()
            for f in batch:
                if versions.get(f.loaded.id) != f.loaded.version or f.loaded.id in taken:
                    continue
                taken.add(f.loaded.id)
                settled, event = settle(f.finished, now)
                won.append((settled, [*f.events, event]))
                saves.append(_saved(settled, f.loaded.version))
            if won:
                # the rows are held (versions checked above): every compare-and-set wins
                await tx.executemany(_SAVE, saves)
                await self._rate_many(
                    tx,
                    [
                        (m.id, m.queue, [list(t) for t in m.teams], list(m.ranks or ()))
                        for m, _ in won
                    ],
                )
            settled_matches = [m for m, _ in won]
            then = [await listener(tx, settled_matches) for listener in self.on_settled]

        async def announce() -> None:
            for after_commit in then:  # a bracket's delta: what spectators wait for
                if after_commit is not None:
                    await after_commit()
            # the matches' own events, and their servers freed, beside the next batch
            self._in_order(
                [item for match, events in won for item in _announcements(match, events)],
                [match.server for match, _ in won if match.server is not None],
            )

        return [f.loaded.id in taken for f in batch], (announce if won else None)

    def _in_order(self, items: list[tuple[str, object]], servers: list[str]) -> None:
        """Publish ``items`` and free ``servers`` in the background, after what was queued
        before (so a channel's events keep their order)."""
        previous = self._announcing

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await self._publish_all(items)
                for server in servers:
                    await self.servers.release(server)
            except Exception:
                log.exception("announcing settled matches failed")

        self._announcing = asyncio.create_task(run())

    async def stop(self) -> None:
        """Let the answers and results under way finish and their events go out."""
        await self._answers.stop()
        await self._results.stop()
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)

    async def match_abort(self, server: str, params: dict[str, Any]) -> object:
        afk = params.get("afk", [])
        if set(params) - {"match", "afk"} or not isinstance(afk, list):
            raise RpcError("bad_params", "match.abort takes {match, afk: [player]}")
        match, tickets = await self._server_match(server, params)
        try:
            if not await self._abort(match, tickets, frozenset(str(p) for p in afk)):
                raise RpcError("busy", "try again", retryable=True)
        except ResultRefused as refused:
            raise RpcError(refused.code, str(refused)) from None
        except IllegalTransition:
            raise RpcError("too_late", f"the match is {match.state}") from None
        return {"match": match.id, "state": "aborted"}

    async def _abort(self, match: Match, tickets: list[Ticket], afk: frozenset[str]) -> int:
        aborted, event = abort(match, self.clock(), afk)
        if not await self.save(aborted, match.version):
            return 0
        await self._after(aborted, [event], tickets)
        return 1

    async def _assign(self, match: Match, server: str) -> None:
        """Tell the game server to host the match."""
        await self.publish(
            f"gameserver:{server}",
            {
                "kind": "match.assigned",
                "match": match.id,
                "queue": match.queue,
                "teams": [list(team) for team in match.teams],
                "best_of": match.best_of,
            },
        )

    async def _try_allocate(self, match: Match, tickets: list[Ticket]) -> int:
        server = await self.servers.allocate(match.queue.rsplit(":", 1)[-1])
        if server is None:
            return 0
        live, event = allocate(match, server.id, self.clock())
        if not await self.save(live, match.version):
            await self.servers.release(server.id)
            return 0
        await self._assign(match, server.id)
        event.data["address"] = server.address
        await self._announce(live, [event])
        for listener in self.on_allocated:
            await listener(live, server.id)
        return 1

    # Storage ----------------------------------------------------------------------------

    async def load(self, match_id: str) -> tuple[Match, list[Ticket]] | None:
        found = await self._loaded("WHERE id = ?", match_id)
        return found[0] if found else None

    async def _loaded(
        self, where: str, *args: Any, conn: Conn | None = None
    ) -> list[tuple[Match, list[Ticket]]]:
        """The matches ``where`` selects, with their tickets, in one query."""
        rows = await (conn or self.db).fetch(
            f"SELECT document, tickets FROM matches {where}",  # nosec B608
            *args,
        )
        return [_decoded(row) for row in rows]

    @property
    def _for_update(self) -> str:
        """The clause that locks selected rows for the transaction (SQLite: its writers are
        serialised already)."""
        return " FOR UPDATE" if self.db.dialect == "postgresql" else ""

    async def save(self, match: Match, expected_version: int, conn: Conn | None = None) -> bool:
        changed = await (conn or self.db).execute(_SAVE, *_saved(match, expected_version))
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
        try:
            async with self.db.transaction() as tx:
                await self._rate_many(tx, [(match_id, queue, teams, ranks)])
        except Exception as exc:
            if is_unique_violation(exc):
                return False  # rated before: the repeat changes nothing
            raise
        return True

    async def _rate_many(self, tx: Conn, matches: Sequence[Rated]) -> None:
        """The ratings of matches (match, queue, teams, ranks), one after the other as if
        rated alone, in the caller's transaction, in a handful of statements whatever their
        number: the players' rows created if new, then read and locked (in one order, by
        mode then player, for every writer), rated, and written with their history."""
        now = self.clock()
        by_mode: dict[str, set[str]] = {}
        fresh: dict[str, Rating] = {}
        for _, queue, teams, _ in matches:
            mode = mode_of(queue)
            by_mode.setdefault(mode, set()).update(p for team in teams for p in team)
            fresh.setdefault(mode, self.queues[queue].model.new())
        current: dict[tuple[str, str], Rating] = {}
        for mode in sorted(by_mode):
            players = sorted(by_mode[mode])
            await tx.executemany(
                "INSERT INTO ratings (player, mode, mu, sigma, games, updated_s) "
                "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (player, mode) DO NOTHING",
                [(p, mode, fresh[mode].mu, fresh[mode].sigma, now) for p in players],
            )
            among, args = one_of(self.db.dialect, players)
            rows = await tx.fetch(
                f"SELECT player, mu, sigma FROM ratings WHERE mode = ? AND player {among} "  # nosec B608
                "ORDER BY player" + self._for_update,
                mode,
                *args,
            )
            current.update({(p, mode): Rating(float(mu), float(sg)) for p, mu, sg in rows})
        history: list[tuple[Any, ...]] = []
        games: dict[tuple[str, str], int] = {}
        for match_id, queue, teams, ranks in matches:
            mode = mode_of(queue)
            before = [[current[(p, mode)] for p in team] for team in teams]
            after = self.queues[queue].model.rate(before, ranks)
            for team, olds, news in zip(teams, before, after, strict=True):
                for player, old, new in zip(team, olds, news, strict=True):
                    history.append(
                        (match_id, player, mode, old.mu, old.sigma, new.mu, new.sigma, now)
                    )
                    current[(player, mode)] = new
                    games[(player, mode)] = games.get((player, mode), 0) + 1
        await tx.executemany(
            "INSERT INTO rating_history (match, player, mode, mu_before, "
            "sigma_before, mu, sigma, at_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            history,
        )
        await tx.executemany(
            "UPDATE ratings SET mu = ?, sigma = ?, games = games + ?, "
            "updated_s = ? WHERE player = ? AND mode = ?",
            [
                (current[key].mu, current[key].sigma, n, now, key[0], key[1])
                for key, n in sorted(games.items())
            ],
        )

    async def queue_figures(self, queue: str) -> dict[str, object]:
        """How many tickets (a party is one) wait in ``queue`` now, and the median of how long
        the players of its matches formed in the last 15 minutes had waited (None without such
        matches): what a player joining now may expect. Kept a second: every open lobby asks."""
        now = self.clock()
        cached = self._figures.get(queue)
        if cached is not None and now - cached[0] < QUEUE_FIGURES_TTL_S:
            return cached[1]
        figures = await self._queue_figures(queue)
        self._figures[queue] = (now, figures)
        return figures

    async def _queue_figures(self, queue: str) -> dict[str, object]:
        waiting = await self.tickets.size(queue)
        rows = await self.db.fetch(
            "SELECT waited_s FROM matches WHERE queue = ? AND formed_s > ? "
            "AND waited_s IS NOT NULL ORDER BY formed_s DESC LIMIT ?",
            queue,
            self.clock() - WAIT_WINDOW_S,
            WAIT_SAMPLES_MAX,
        )
        waits = sorted(float(r[0]) for r in rows)
        median = None
        if waits:
            middle = len(waits) // 2
            median = waits[middle] if len(waits) % 2 else (waits[middle - 1] + waits[middle]) / 2
        return {
            "waiting": waiting,
            "wait_estimate_s": None if median is None else round(median, 1),
            "matches_recent": len(waits),
        }

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
        if match.state in (State.ABORTED, State.CANCELLED):
            # Back to the front of the queue: everyone but who did not show (AFK) or declined.
            config = self.queues[match.queue]
            now = self.clock()
            left_out = match.afk | match.declined
            back = [t for t in tickets if all(m.player not in left_out for m in t.members)]
            await self.tickets.requeue(match.queue, back, now + config.ticket_ttl_s)
        if match.state is State.ABORTED and match.server is not None:
            await self.servers.release(match.server)
        if match.state is State.CANCELLED:
            for player in sorted(match.declined):
                await self.db.execute(
                    "INSERT INTO queue_cooldowns (player, until_s) VALUES (?, ?) "
                    "ON CONFLICT (player) DO UPDATE SET until_s = excluded.until_s",
                    player,
                    now + config.decline_cooldown_s,
                )
        await self._announce(match, events)
        if match.state in (State.ABORTED, State.CANCELLED):
            for listener in self.on_failed:
                await listener(match)
        if match.state is State.ALLOCATING:
            await self._try_allocate(match, tickets)

    async def _announce(self, match: Match, events: list[Any]) -> None:
        await self._publish_all(_announcements(match, events))

    async def _publish_all(self, items: Sequence[tuple[str, object]]) -> None:
        """Publish ``items``; a match channel's body without the server's address (players
        get it on their own channel), and delayed when the match has a spectator delay."""
        now: list[tuple[str, object]] = []
        delayed: dict[str, tuple[float, list[Any]]] = {}  # match -> (its delay, bodies)
        for channel, body in items:
            if channel.startswith("match:") and isinstance(body, dict):
                body = {k: v for k, v in body.items() if k != "address"}
                match_id = channel.removeprefix("match:")
                delay = None if self.delay_of is None else await self.delay_of(match_id)
                if delay is not None:
                    delayed.setdefault(match_id, (delay, []))[1].append(body)
                    continue
            now.append((channel, body))
        await publish_all(self.publish, self.publish_many, now)
        if delayed:
            await self.feed.delayed_many(
                [(m, bodies, d, None) for m, (d, bodies) in delayed.items()]
            )
            await self.feed.now_many([(m, bodies) for m, (_, bodies) in delayed.items()])


async def publish_all(
    publish: Publish, publish_many: PublishMany | None, items: Sequence[tuple[str, object]]
) -> None:
    """Publish each (channel, body) in order: in one round trip when the hub can."""
    if publish_many is not None:
        await publish_many(items)
        return
    for channel, body in items:
        await publish(channel, body)


_SAVE: Final = (
    "UPDATE matches SET state = ?, version = ?, deadline_s = ?, document = ? "
    "WHERE id = ? AND version = ?"
)


def _saved(match: Match, expected_version: int) -> tuple[Any, ...]:
    """:data:`_SAVE`'s arguments: ``match`` written over the version ``expected_version``."""
    return (
        str(match.state),
        match.version,
        match.deadline_s,
        json.dumps(to_document(match)),
        match.id,
        expected_version,
    )


def _announcements(match: Match, events: Sequence[MatchEvent]) -> list[tuple[str, object]]:
    """A match's events for its channel and each of its players' channels."""
    items: list[tuple[str, object]] = []
    for event in events:
        body = {"kind": event.kind, **event.data}
        items.append((f"match:{match.id}", body))
        items += [(f"user:{player}", body) for player in match.players]
    return items


def _decoded(row: Any) -> tuple[Match, list[Ticket]]:
    """A ``matches`` row's (document, tickets) as the match and its tickets."""
    document, tickets = row
    return from_document(json.loads(document)), [decode_ticket(t) for t in json.loads(tickets)]


async def _no_keys(server: str) -> str | None:
    return None


def result_message(match_id: str, ranks: list[int]) -> bytes:
    """What a game server signs: canonical JSON of the match id and the ranks."""
    return json.dumps(
        {"match": match_id, "ranks": ranks}, separators=(",", ":"), sort_keys=True
    ).encode()


Handler = Callable[[Play, str, dict[str, Any]], Awaitable[object]]
_METHODS: Final[dict[str, tuple[Role, Handler]]] = {
    "queue.join": (Role.PLAYER, Play.queue_join),
    "queue.leave": (Role.PLAYER, Play.queue_leave),
    "queue.status": (Role.PLAYER, Play.queue_status),
    "match.current": (Role.PLAYER, Play.match_current),
    "party.create": (Role.PLAYER, Play.party_create),
    "party.invite": (Role.PLAYER, Play.party_invite),
    "party.join": (Role.PLAYER, Play.party_join),
    "party.leave": (Role.PLAYER, Play.party_leave),
    "party.status": (Role.PLAYER, Play.party_status),
    "match.accept": (Role.PLAYER, Play.match_accept),
    "match.decline": (Role.PLAYER, Play.match_decline),
    "server.register": (Role.GAME_SERVER, Play.server_register),
    "match.update": (Role.GAME_SERVER, Play.match_update),
    "match.result": (Role.GAME_SERVER, Play.match_result),
    "match.abort": (Role.GAME_SERVER, Play.match_abort),
}
