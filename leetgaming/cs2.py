"""Real CS2 servers (get5, MatchZy): registered, handed matches over RCON, heard over HTTP.

The flow, across matchmaking, identity and the hub (so it lives here):

1. An admin registers a CS2 server: its flavor, region, the address players connect to and
   its RCON endpoint. It joins the game-server registry with room for one match.
2. When the allocator gives a match to such a server, a **lease** is made: the match's
   integer number (MatchZy's ``matchid``), and a single-use **config token**, good for
   ``config_token_ttl_s``, stored hashed. Over RCON the server is told
   ``<flavor>_loadmatch_url "<our config URL>" "Authorization" "Bearer <config token>"``
   (the token in a header, never in the URL, which the plugin shows to every client). A
   player without a Steam id, or a server that does not answer, aborts the match (the others
   go back to the queue).
3. ``GET /v1/matches/{id}/config/{flavor}`` spends the config token and answers the config
   (``Cache-Control: no-store``), in which a fresh random **ingest token** points the event
   log, demo upload and backups back at us; only its SHA-256 is kept.
4. ``POST /v1/ingest/cs2/{flavor}/{match}``: the event log. The path names the match; the
   body's ``matchid`` is compared with it and never used to find one. Each body is checked,
   then stored raw, append-only, in ``cs2_events`` and folded into the series
   (:mod:`matchmaking.cs2`) in the same transaction, before the 200; a body stored before
   (same bytes) is acknowledged and changes nothing. Bodies are committed in groups
   (:mod:`leetgaming.batching`); a match's are folded in arrival order under its lease row's
   lock, so two processes never fold one match at once.
5. The series result goes to :meth:`Play.settle_result` exactly as a native server's signed
   result does: ratings, brackets, prizes follow. A crash between the commit and that call is
   mended by :meth:`Cs2.sweep`, which delivers every finished series not yet delivered.
   The ingest token stops working ``token_grace_s`` after the match ends (resends of the last
   events are still acknowledged until then).
6. A server silent for ``silence_check_s`` is asked over RCON whether it is alive; the
   matchmaking sweep aborts a match whose server stays unheard for its silence limit.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from leetgaming.batching import Batcher, Done
from leetgaming.db import Conn, Database, append_only, one_of
from leetgaming.rcon import RconError, command, quoted
from leetgaming.sealing import Sealer
from leetgaming.spectators import DELAY_MIN_S, PublishMany, SpectatorFeed, delay_for
from matchmaking.cs2 import (
    BadEvent,
    Effect,
    Event,
    Flavor,
    Phase,
    Series,
    apply,
    from_document,
    new_series,
    parse,
    public_view,
    to_document,
)
from matchmaking.cs2_config import ConfigRefused, Endpoints, Team, build
from matchmaking.match import Match
from matchmaking.servers import GameServer, ServerRegistry

log = logging.getLogger("leetgaming.cs2")

EVENT_BYTES_MAX: Final = 256 * 1024
EVENTS_PER_COMMIT_MAX: Final = 512
EVENTS_PER_MATCH_MAX: Final = 50_000  # a series that sends more is refused (a runaway plugin)
CONFIG_TOKEN_TTL_S: Final = 120.0
TOKEN_GRACE_S: Final = 120.0
# a match's events tell the matchmaking it is alive this often (its silence limit is 60 s),
# the first time within HEARD_FIRST_WITHIN_S of the first event this process takes; each
# match at its own phase, so 200 matches started at once are not told at once
HEARD_EVERY_S: Final = 10.0
HEARD_FIRST_WITHIN_S: Final = 5.0
AUTH_CACHE_S: Final = 5.0
FLAVORS: Final = frozenset(f.value for f in Flavor)
AUTH_CACHED_MAX: Final = 10_000
LEASES_KEPT_MAX: Final = 10_000  # a match's last-heard time is written at most this often
SILENCE_CHECK_S: Final = 30.0
SILENCE_CHECKS_MAX: Final = 64  # servers asked per sweep
NAME_CHARS_MAX: Final = 64
RCON_SEALING_LABEL: Final = b"leetgaming rcon passwords v1"
END_MATCH: Final = "get5_endmatch"  # get5's; MatchZy's alias of css_endmatch

_TABLES: Final = """
    CREATE TABLE cs2_servers (
        id TEXT PRIMARY KEY,
        flavor TEXT NOT NULL,
        region TEXT NOT NULL,
        address TEXT NOT NULL,
        rcon_host TEXT NOT NULL,
        rcon_port INTEGER NOT NULL,
        rcon_password TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_s DOUBLE PRECISION NOT NULL,
        removed_s DOUBLE PRECISION
    );
    CREATE TABLE cs2_leases (
        match TEXT PRIMARY KEY,
        number BIGINT NOT NULL UNIQUE,
        server TEXT NOT NULL,
        flavor TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        config_expires_s DOUBLE PRECISION NOT NULL,
        config_used_s DOUBLE PRECISION,
        ingest_hash TEXT,
        created_s DOUBLE PRECISION NOT NULL,
        ended_s DOUBLE PRECISION,
        events INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0,
        finished INTEGER NOT NULL DEFAULT 0,
        teams TEXT NOT NULL,
        delay_s DOUBLE PRECISION NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX cs2_leases_open ON cs2_leases (delivered, finished, ended_s);
    CREATE TABLE cs2_events (
        match TEXT NOT NULL,
        seq INTEGER NOT NULL,
        digest TEXT NOT NULL,
        name TEXT NOT NULL,
        event_key TEXT NOT NULL,
        received_s DOUBLE PRECISION NOT NULL,
        applied INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (match, seq)
    );
    CREATE UNIQUE INDEX cs2_events_digest ON cs2_events (match, digest)
"""
_APPEND_ONLY: Final = "the event log is append-only"
MIGRATIONS_SQLITE: Final = (_TABLES + ";" + append_only("cs2_events", "sqlite", _APPEND_ONLY),)
MIGRATIONS_POSTGRES: Final = (
    _TABLES + ";" + append_only("cs2_events", "postgresql", _APPEND_ONLY),
)


class Cs2Refused(Exception):
    """A request refused, with its HTTP status and stable code; nothing was changed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Cs2Server:
    id: str
    flavor: Flavor
    region: str
    address: str
    rcon_host: str
    rcon_port: int
    rcon_password: str = field(repr=False)

    def as_json(self) -> dict[str, object]:  # never the RCON password
        return {
            "id": self.id,
            "flavor": str(self.flavor),
            "region": self.region,
            "address": self.address,
            "rcon": f"{self.rcon_host}:{self.rcon_port}",
        }


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an ingested body did: ``duplicate`` (stored before: nothing), or stored, with
    ``applied`` telling whether it changed the series."""

    duplicate: bool
    applied: bool = False
    seq: int | None = None


@dataclass(frozen=True)
class _Body:
    match: str
    digest: str
    event: Event
    text: str


@dataclass
class _Lease:
    match: str
    server: str
    events: int
    series: Series
    digests: set[str]  # of every body stored before this batch (shared: never changed here)
    changed: bool = False
    new: set[str] = field(default_factory=set)  # stored in this batch

    def stored(self, digest: str) -> bool:
        return digest in self.digests or digest in self.new


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _same(token: str, stored: str | None) -> bool:
    return stored is not None and hmac.compare_digest(_hash(token), stored)


def match_number(match_id: str) -> int:
    """The match's integer id (MatchZy's ``matchid``): 52 bits of its id's SHA-256, the same
    in every process without coordination (exact in a JSON number, a C# long, a JS number);
    the lease's UNIQUE column refuses the improbable collision loudly."""
    return int(hashlib.sha256(match_id.encode()).hexdigest()[:13], 16)


def server_id_of(name: str) -> str:
    return f"cs2-{name}"


Publish = Callable[[str, object], Awaitable[int]]
SteamOf = Callable[[str], Awaitable[str | None]]


class Cs2:
    def __init__(
        self,
        db: Database,
        play: Any,  # leetgaming.play.Play (its settle_result, abort_match, hear)
        servers: ServerRegistry,
        publish: Publish,
        clock: Callable[[], float],
        base_url: str,
        steam_of: SteamOf,
        publish_many: PublishMany | None = None,
        feed: SpectatorFeed | None = None,
        tv_delay_s: int = 90,
        delay_min_s: float = DELAY_MIN_S,
        config_token_ttl_s: float = CONFIG_TOKEN_TTL_S,
        token_grace_s: float = TOKEN_GRACE_S,
        rcon: Callable[[str, int, str, str], Awaitable[str]] = command,
        *,
        signing_key: str,
    ) -> None:
        self.db = db
        self.play = play
        self.servers = servers
        self.publish = publish
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.steam_of = steam_of
        self.tv_delay_s = tv_delay_s
        self.feed = feed or SpectatorFeed(db, publish, clock, publish_many)
        self.delay_s = delay_for(tv_delay_s, delay_min_s)
        # match -> (valid until, its public delay; None: not a CS2 match)
        self._delays: dict[str, tuple[float, float | None]] = {}
        self.config_token_ttl_s = config_token_ttl_s
        self.token_grace_s = token_grace_s
        self.rcon = rcon
        self._sealer = Sealer(signing_key, RCON_SEALING_LABEL)  # RCON passwords at rest
        self._known: dict[str, Cs2Server | None] = {}
        self._heard: dict[str, float] = {}
        self.silence_check_s = SILENCE_CHECK_S
        self._background: dict[str, asyncio.Task[None]] = {}  # the last follow-up per match
        self._publishing: asyncio.Task[None] | None = None  # the last batch's publications
        # match -> (when read, its lease's authorization row): a token check per event
        # without a query; revocation is seen within AUTH_CACHE_S
        self._auth: dict[str, tuple[float, Any]] = {}
        self._leases: dict[str, _Lease] = {}  # the series as this process last committed it
        self._ingest: Batcher[_Body, Accepted | Cs2Refused] = Batcher(
            self._ingest_batch, EVENTS_PER_COMMIT_MAX
        )

    async def start(self) -> None:
        pg = self.db.dialect == "postgresql"
        await self.db.migrate("cs2", MIGRATIONS_POSTGRES if pg else MIGRATIONS_SQLITE)
        await self.feed.start()
        await self._seal_plain_passwords()
        for server in await self.list_servers():  # every process offers them to the allocator
            await self.servers.register(_as_game_server(server))

    async def delay_of(self, match_id: str) -> float | None:
        """The public delay of ``match_id``'s channel if it is a CS2 match (a lease's delay
        never changes; "not one" is remembered briefly, a lease may come)."""
        now = self.clock()
        known = self._delays.get(match_id)
        if known is not None and now < known[0]:
            return known[1]
        delay = await self._delay_in_row(match_id)
        if len(self._delays) >= LEASES_KEPT_MAX:
            self._delays.clear()
        self._delays[match_id] = (float("inf") if delay is not None else now + 2.0, delay)
        return delay

    async def _delay_in_row(self, match_id: str) -> float | None:
        row = await self.db.fetchone("SELECT delay_s FROM cs2_leases WHERE match = ?", match_id)
        return None if row is None else float(row[0])

    async def stop(self) -> None:
        await self._ingest.stop()
        await asyncio.gather(*self._background.values(), return_exceptions=True)
        if self._publishing is not None:
            await asyncio.gather(self._publishing, return_exceptions=True)

    # Servers ----------------------------------------------------------------------------

    async def add_server(self, admin: str, params: Mapping[str, Any]) -> Cs2Server:
        allowed = {"name", "flavor", "region", "address", "rcon_host", "rcon_port", "rcon_password"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise Cs2Refused(422, "unknown_field", f"unknown fields: {', '.join(unknown)}")
        texts = {k: params.get(k) for k in allowed - {"rcon_port"}}
        if not all(isinstance(v, str) and 0 < len(v) <= NAME_CHARS_MAX for v in texts.values()):
            raise Cs2Refused(
                422,
                "bad_server",
                f"name, flavor, region, address, rcon_host and rcon_password are strings of "
                f"1..{NAME_CHARS_MAX} characters",
            )
        port = params.get("rcon_port")
        if type(port) is not int or not 1 <= port <= 65535:
            raise Cs2Refused(422, "bad_server", "rcon_port is 1..65535")
        if params["flavor"] not in FLAVORS:
            raise Cs2Refused(422, "unknown_flavor", "flavor is get5 or matchzy")
        name = str(params["name"])
        if not name.replace("-", "").replace("_", "").isalnum():
            raise Cs2Refused(422, "bad_server", "a name is letters, digits, - and _")
        server = Cs2Server(
            server_id_of(name),
            Flavor(params["flavor"]),
            str(params["region"]),
            str(params["address"]),
            str(params["rcon_host"]),
            port,
            str(params["rcon_password"]),
        )
        inserted = await self.db.execute(
            "INSERT INTO cs2_servers (id, flavor, region, address, rcon_host, rcon_port, "
            "rcon_password, created_by, created_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            server.id,
            str(server.flavor),
            server.region,
            server.address,
            server.rcon_host,
            server.rcon_port,
            self._sealer.seal(server.id, server.rcon_password),
            admin,
            self.clock(),
        )
        if not inserted:
            raise Cs2Refused(409, "server_exists", f"a CS2 server is named {name}")
        self._known.pop(server.id, None)
        await self.servers.register(_as_game_server(server))
        return server

    def _server(self, row: Any) -> Cs2Server:
        server_id = str(row[0])
        password = self._sealer.open(server_id, str(row[6]))
        return Cs2Server(
            server_id, Flavor(row[1]), str(row[2]), str(row[3]), str(row[4]), int(row[5]), password
        )

    async def _seal_plain_passwords(self) -> None:
        """Seal the RCON passwords a version before sealing stored as they were."""
        rows = await self.db.fetch("SELECT id, rcon_password FROM cs2_servers")
        for server_id, stored in rows:
            if not Sealer.sealed(str(stored)):
                await self.db.execute(
                    "UPDATE cs2_servers SET rcon_password = ? WHERE id = ? AND rcon_password = ?",
                    self._sealer.seal(str(server_id), str(stored)),
                    server_id,
                    stored,
                )

    async def remove_server(self, server_id: str) -> bool:
        removed = await self.db.execute(
            "UPDATE cs2_servers SET removed_s = ? WHERE id = ? AND removed_s IS NULL",
            self.clock(),
            server_id,
        )
        self._known.pop(server_id, None)
        if removed:
            await self.servers.unregister(server_id)
        return bool(removed)

    async def list_servers(self) -> list[Cs2Server]:
        rows = await self.db.fetch(
            "SELECT id, flavor, region, address, rcon_host, rcon_port, rcon_password "
            "FROM cs2_servers WHERE removed_s IS NULL ORDER BY id"
        )
        return [self._server(row) for row in rows]

    async def server(self, server_id: str) -> Cs2Server | None:
        if server_id not in self._known:
            row = await self.db.fetchone(
                "SELECT id, flavor, region, address, rcon_host, rcon_port, rcon_password "
                "FROM cs2_servers WHERE id = ? AND removed_s IS NULL",
                server_id,
            )
            self._known[server_id] = None if row is None else self._server(row)
        return self._known[server_id]

    # Allocation: a lease, and the server told to load the match ----------------------------

    async def on_allocated(self, match: Match, server_id: str) -> None:
        """The allocator gave ``match`` to ``server_id``: if it is a CS2 server, lease it the
        match and tell it over RCON where its config is. A player without a Steam id, or a
        server that cannot be told, aborts the match."""
        server = await self.server(server_id)
        if server is None:
            return
        try:
            token = await self.lease(match, server)
            url = f"{self.base_url}/v1/matches/{match.id}/config/{server.flavor}"
            line = (
                f"{server.flavor}_loadmatch_url {quoted(url)} "
                f'"Authorization" {quoted("Bearer " + token)}'
            )
            await self.rcon(server.rcon_host, server.rcon_port, server.rcon_password, line)
        except (ConfigRefused, RconError) as failed:
            log.warning(
                "a CS2 match could not be handed to its server",
                extra={"match": match.id, "server": server_id, "error": str(failed)},
            )
            await self.play.abort_match(match.id, server_id)

    async def lease(self, match: Match, server: Cs2Server) -> str:
        """The match leased to ``server`` (again: a new config token); the config token."""
        if len(match.teams) != 2:
            raise ConfigRefused("a CS2 match has two teams")
        teams = []
        for index, players in enumerate(match.teams):
            lines = []
            for player in players:
                steamid = await self.steam_of(player)
                if steamid is None:
                    raise ConfigRefused(f"player {player} has not signed in with Steam")
                lines.append((steamid, player[:32]))
            teams.append({"name": f"team_{players[0][:12]}", "players": lines, "index": index})
        token = secrets.token_urlsafe(32)
        now = self.clock()
        await self.db.execute(
            "INSERT INTO cs2_leases (match, number, server, flavor, config_hash, "
            "config_expires_s, created_s, teams, delay_s, document) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (match) DO UPDATE SET "
            "server = excluded.server, flavor = excluded.flavor, "
            "config_hash = excluded.config_hash, "
            "config_expires_s = excluded.config_expires_s, config_used_s = NULL",
            match.id,
            match_number(match.id),
            server.id,
            str(server.flavor),
            _hash(token),
            now + self.config_token_ttl_s,
            now,
            json.dumps(teams),
            self.delay_s,  # fixed now: a second lease of the match keeps the first's
            json.dumps(to_document(new_series(match.best_of))),
        )
        self._delays[match.id] = (float("inf"), await self._delay_in_row(match.id))
        return token

    # The config -------------------------------------------------------------------------

    async def config(self, match_id: str, flavor: str, token: str | None) -> dict[str, object]:
        """Spend the config token; the plugin's config, with a fresh ingest token in it."""
        lease = await self.db.fetchone(
            "SELECT number, flavor, config_hash, config_expires_s, config_used_s, teams, "
            "document, ended_s FROM cs2_leases WHERE match = ?",
            match_id,
        )
        if flavor not in FLAVORS:
            raise Cs2Refused(404, "unknown_flavor", "flavors are get5 and matchzy")
        if lease is None or lease[1] != flavor:
            raise Cs2Refused(404, "unknown_match", f"no {flavor} match {match_id} here")
        number, _, config_hash, expires_s, used_s, teams_text, document, ended_s = lease
        if token is None or not _same(token, config_hash):
            raise Cs2Refused(401, "bad_token", "send the config token as Authorization: Bearer")
        if used_s is not None or ended_s is not None or self.clock() >= float(expires_s):
            raise Cs2Refused(401, "token_spent", "the config token was used or has expired")
        ingest = secrets.token_urlsafe(32)
        spent = await self.db.execute(
            "UPDATE cs2_leases SET config_used_s = ?, ingest_hash = ? "
            "WHERE match = ? AND config_hash = ? AND config_used_s IS NULL AND ended_s IS NULL",
            self.clock(),
            _hash(ingest),
            match_id,
            config_hash,
        )
        if not spent:
            raise Cs2Refused(401, "token_spent", "the config token was used or has expired")
        base = f"{self.base_url}/v1/ingest/cs2/{flavor}/{match_id}"
        teams = json.loads(teams_text)
        return build(
            Flavor(flavor),
            match_id,
            int(number),
            [Team(t["name"], [tuple(p) for p in t["players"]]) for t in teams],
            from_document(json.loads(document)).num_maps,
            Endpoints(base, f"{base}/demo", f"{base}/backup", f"Bearer {ingest}"),
            self.tv_delay_s,
        )

    # The event log ----------------------------------------------------------------------

    async def authorize(self, flavor: str, match_id: str, token: str | None) -> tuple[str, int]:
        """The lease's server and number if ``token`` is this match's ingest token (and the
        match ended less than ``token_grace_s`` ago, if it ended)."""
        if flavor not in FLAVORS:
            raise Cs2Refused(404, "unknown_flavor", "flavors are get5 and matchzy")
        now = self.clock()
        cached = self._auth.get(match_id)
        if cached is not None and now - cached[0] < AUTH_CACHE_S:
            row = cached[1]
        else:
            row = await self.db.fetchone(
                "SELECT flavor, ingest_hash, ended_s, server, number FROM cs2_leases "
                "WHERE match = ?",
                match_id,
            )
            if row is not None and row[1] is not None:  # no token yet: not remembered
                if len(self._auth) >= AUTH_CACHED_MAX:
                    self._auth.clear()
                self._auth[match_id] = (now, row)
        if row is None or row[0] != flavor:
            raise Cs2Refused(404, "unknown_match", f"no {flavor} match {match_id} here")
        if token is None or not _same(token, row[1]):
            raise Cs2Refused(401, "bad_token", "send this match's token as Authorization: Bearer")
        if row[2] is not None and self.clock() - float(row[2]) > self.token_grace_s:
            raise Cs2Refused(401, "token_revoked", "the match is over: its token is revoked")
        return str(row[3]), int(row[4])

    async def ingest(self, flavor: str, match_id: str, token: str | None, raw: bytes) -> Accepted:
        """One body of the plugin's event log: refused (and nothing changed), or stored and
        folded (or recognised as stored already) once committed."""
        _, number = await self.authorize(flavor, match_id, token)
        return await self.ingest_authorized(flavor, match_id, number, raw)

    async def ingest_authorized(
        self, flavor: str, match_id: str, number: int, raw: bytes
    ) -> Accepted:
        """:meth:`ingest` for a request :meth:`authorize` let in (``number`` is its lease's)."""
        if len(raw) > EVENT_BYTES_MAX:
            raise Cs2Refused(413, "body_too_large", f"events are at most {EVENT_BYTES_MAX} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Cs2Refused(400, "bad_json", "the body is not JSON") from None
        try:
            event = parse(Flavor(flavor), body)
        except BadEvent as bad:
            raise Cs2Refused(422, "bad_event", str(bad)) from None
        expected = str(number) if flavor == Flavor.MATCHZY else match_id
        if event.matchid != expected:
            raise Cs2Refused(
                409, "other_match", f"this event is for match {event.matchid[:40]}, not this one"
            )
        digest = hashlib.sha256(raw).hexdigest()
        outcome = await self._ingest.submit(_Body(match_id, digest, event, raw.decode()))
        if isinstance(outcome, Cs2Refused):
            raise outcome
        return outcome

    async def _ingest_batch(self, batch: Sequence[_Body]) -> Done[Accepted | Cs2Refused]:
        now = self.clock()
        matches = sorted({b.match for b in batch})
        among, ids = one_of(self.db.dialect, matches)
        lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT match, server, events, delay_s FROM cs2_leases WHERE match {among} "  # nosec B608
                "ORDER BY match" + lock,
                *ids,
            )
            leases = {r[0]: await self._lease_state(tx, r[0], r[1], int(r[2])) for r in rows}
            delays = {r[0]: float(r[3]) for r in rows}
            results: list[Accepted | Cs2Refused] = []
            stored: list[tuple[Any, ...]] = []
            effects: dict[str, list[Effect]] = {}
            for body in batch:
                lease = leases[body.match]
                if lease.stored(body.digest):
                    results.append(Accepted(duplicate=True))
                    continue
                if lease.events >= EVENTS_PER_MATCH_MAX:
                    results.append(
                        Cs2Refused(
                            429, "too_many_events", f"a match takes {EVENTS_PER_MATCH_MAX} events"
                        )
                    )
                    continue
                lease.new.add(body.digest)
                series, changed = apply(lease.series, body.event)
                lease.events += 1
                if series != lease.series:
                    lease.series, lease.changed = series, True
                effects.setdefault(body.match, []).extend(changed)
                stored.append(
                    (
                        body.match,
                        lease.events,
                        body.digest,
                        body.event.name,
                        body.event.key,
                        now,
                        int(bool(changed)),
                        body.text,
                    )
                )
                results.append(Accepted(duplicate=False, applied=bool(changed), seq=lease.events))
            if stored:
                await tx.executemany(
                    "INSERT INTO cs2_events (match, seq, digest, name, event_key, received_s, "
                    "applied, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    stored,
                )
                await _save_leases(tx, list(leases.values()))
                public = {m: _bodies(m, leases[m].series, e) for m, e in effects.items() if e}
                await self.feed.delayed_many(
                    [
                        (m, public[m], delays[m], public_view(leases[m].series))
                        for m in sorted(public)
                    ],
                    tx,
                )
        for lease in leases.values():  # committed: what the next batch starts from
            lease.digests |= lease.new
            lease.new = set()
            self._leases[lease.match] = lease
        finished = [m for m, lease in leases.items() if lease.changed and _done(lease.series)]

        async def after() -> None:
            # the acknowledgements do not wait for these: they run behind. The referees'
            # publications of every batch go out in one round trip, batches in order; a
            # match's liveness and result follow its publications, in order per match.
            published = self._after_published(
                [(m, public[m]) for m in matches if m in public] if public else []
            )
            for m in matches:
                steps: list[Callable[[], Awaitable[object]]] = []
                if m not in self._heard:  # first heard here: due within HEARD_FIRST_WITHIN_S
                    self._heard[m] = now - HEARD_EVERY_S + HEARD_FIRST_WITHIN_S * _phase(m)
                elif now - self._heard[m] >= HEARD_EVERY_S:
                    self._heard[m] = now
                    steps.append(functools.partial(self.play.hear, m, leases[m].server))
                if m in finished:
                    steps.append(functools.partial(self.deliver, m))
                if steps:
                    self._behind(m, steps, published)

        return results, (after if stored else None)

    def _after_published(
        self, items: list[tuple[str, list[dict[str, object]]]]
    ) -> asyncio.Task[None] | None:
        """Publish ``items`` to the referees after the batches before have published theirs;
        the task that does (None when there is nothing, and nothing before)."""
        previous = self._publishing
        if not items:
            return previous

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await self.feed.now_many(items)
            except Exception:
                log.exception("the referees' CS2 publications failed")

        task = asyncio.create_task(run())
        self._publishing = task
        task.add_done_callback(self._published)
        return task

    def _published(self, done: asyncio.Task[None]) -> None:
        if self._publishing is done:
            self._publishing = None

    def _behind(
        self,
        match_id: str,
        steps: list[Callable[[], Awaitable[object]]],
        after: asyncio.Task[None] | None = None,
    ) -> None:
        """Run ``steps`` in the background, after ``after`` and the steps queued before for
        the same match (other matches' do not wait); a failing step is logged, the others
        still run."""
        previous = self._background.get(match_id)

        async def run() -> None:
            waits = [t for t in (previous, after) if t is not None]
            if waits:
                await asyncio.gather(*waits, return_exceptions=True)
            for step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("a CS2 follow-up failed (the sweep delivers results again)")

        task = asyncio.create_task(run())
        self._background[match_id] = task
        task.add_done_callback(lambda done: self._forget(match_id, done))

    def _forget(self, match_id: str, done: asyncio.Task[None]) -> None:
        if self._background.get(match_id) is done:
            del self._background[match_id]

    async def _lease_state(self, tx: Conn, match_id: str, server: str, events: int) -> _Lease:
        """The lease as its row says, locked: from this process's copy when the row has not
        moved since (the same count of events: no other process stored one), else read."""
        kept = self._leases.get(match_id)
        if kept is not None and kept.events == events:
            return _Lease(match_id, server, events, kept.series, kept.digests)
        row = await tx.fetchone("SELECT document FROM cs2_leases WHERE match = ?", match_id)
        assert row is not None
        digests = await tx.fetch("SELECT digest FROM cs2_events WHERE match = ?", match_id)
        if len(self._leases) >= LEASES_KEPT_MAX:
            self._leases.clear()
        return _Lease(
            match_id,
            server,
            events,
            from_document(orjson.loads(row[0])),
            {str(d[0]) for d in digests},
        )

    # Results ----------------------------------------------------------------------------

    async def deliver(self, match_id: str) -> bool:
        """Hand a finished series to the match lifecycle (idempotent); True once done."""
        row = await self.db.fetchone(
            "SELECT server, document, delivered FROM cs2_leases WHERE match = ?", match_id
        )
        if row is None or int(row[2]):
            return row is not None
        series = from_document(json.loads(row[1]))
        if not _done(series):
            return False
        if series.phase is Phase.FINISHED and series.ranks is not None:
            await self.play.settle_result(match_id, str(row[0]), list(series.ranks))
        else:
            await self.play.abort_match(match_id, str(row[0]))
        await self.db.execute(
            "UPDATE cs2_leases SET delivered = 1, ended_s = ? WHERE match = ? AND delivered = 0",
            self.clock(),
            match_id,
        )
        self._heard.pop(match_id, None)
        return True

    async def match_ended(self, match: Match) -> None:
        """The match ended some other way (aborted, withdrawn): its token is revoked after the
        grace, nothing is delivered, and a server still playing it (its plugin reported no
        end) is told over RCON to end it (``get5_endmatch``, which MatchZy takes too), so it
        is free for the next match; a server that does not answer is logged."""
        row = await self.db.fetchone(
            "SELECT server, finished FROM cs2_leases WHERE match = ? AND delivered = 0", match.id
        )
        ended = await self.db.execute(
            "UPDATE cs2_leases SET delivered = 1, ended_s = ? WHERE match = ? AND delivered = 0",
            self.clock(),
            match.id,
        )
        if not ended or row is None or int(row[1]):
            return
        # in the background: an unreachable server must not hold up the match's end
        self._behind(match.id, [functools.partial(self._end_on_server, match.id, str(row[0]))])

    async def _end_on_server(self, match_id: str, server_id: str) -> None:
        server = await self.server(server_id)
        if server is None:
            return
        try:
            await self.rcon(server.rcon_host, server.rcon_port, server.rcon_password, END_MATCH)
        except RconError as failed:
            log.warning(
                "a CS2 server was not told to end its match",
                extra={"match": match_id, "server": server_id, "error": str(failed)},
            )

    async def sweep(self) -> int:
        """Deliver the finished series a crash left undelivered, and ask each CS2 server
        unheard for ``SILENCE_CHECK_S`` whether it is alive (a server in warmup sends no
        events): one that answers is heard; one that does not is left to the matchmaking
        sweep's silence limit. How many series were delivered."""
        await self.feed.pump()
        rows = await self.db.fetch(
            "SELECT match, server, finished FROM cs2_leases WHERE delivered = 0 AND ended_s IS NULL"
        )
        delivered = 0
        quiet: list[tuple[str, str]] = []
        now = self.clock()
        for match_id, server, finished in rows:  # (the documents are not read: 200 live
            if int(finished):  # series are 200 parses a second)
                delivered += await self.deliver(match_id)
            elif now - self._heard.get(match_id, 0.0) >= self.silence_check_s:
                quiet.append((str(match_id), str(server)))
        await asyncio.gather(*(self._check(m, s) for m, s in quiet[:SILENCE_CHECKS_MAX]))
        return delivered

    async def _check(self, match_id: str, server_id: str) -> None:
        server = await self.server(server_id)
        self._heard[match_id] = self.clock()  # asked: not again before SILENCE_CHECK_S
        if server is None:
            return
        try:
            await self.rcon(server.rcon_host, server.rcon_port, server.rcon_password, "status")
        except RconError:
            log.warning("a CS2 server does not answer", extra={"server": server_id})
            return
        await self.play.hear(match_id, server_id)

    async def series(self, match_id: str) -> dict[str, object] | None:
        """The series as the plugin reported it: per map, score, rounds and players' stats."""
        row = await self.db.fetchone(
            "SELECT flavor, number, server, events, document, teams FROM cs2_leases "
            "WHERE match = ?",
            match_id,
        )
        if row is None:
            return None
        flavor, number, server, events, document, _ = row
        return {
            "match": match_id,
            "flavor": flavor,
            "number": int(number),
            "server": server,
            "events": int(events),
            **to_document(from_document(json.loads(document))),
        }

    async def map_stats(
        self, match_id: str, map_number: int
    ) -> tuple[str | None, dict[str, dict[str, int]]] | None:
        """The plugin's name and per-player figures of one map of the match, if reported."""
        series = await self.series(match_id)
        if series is None:
            return None
        for state in series["maps"]:  # type: ignore[attr-defined]
            if state["number"] == map_number:
                return state["name"], state["stats"]
        return None

    async def events(self, match_id: str, after_seq: int, limit: int) -> list[dict[str, object]]:
        rows = await self.db.fetch(
            "SELECT seq, name, event_key, received_s, applied, digest FROM cs2_events "
            "WHERE match = ? AND seq > ? ORDER BY seq LIMIT ?",
            match_id,
            after_seq,
            limit,
        )
        keys = ("seq", "name", "key", "received_s", "applied", "digest")
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _bodies(match_id: str, series: Series, effects: list[Effect]) -> list[dict[str, object]]:
    """The publications of ``effects``: each with the series' public view (scores, rounds,
    kills; no names, no addresses)."""
    view = public_view(series)
    return [{"kind": e.kind, "match": match_id, **e.data, "series": view} for e in effects]


def _phase(match_id: str) -> float:
    """A fraction in [0, 1) that spreads matches over a period (stable per match)."""
    return int.from_bytes(hashlib.sha256(match_id.encode()).digest()[:4], "big") / 2**32


def _done(series: Series) -> bool:
    return series.phase in (Phase.FINISHED, Phase.CANCELLED)


async def _save_leases(tx: Conn, leases: list[_Lease]) -> None:
    changed = [lease for lease in leases if lease.changed]
    counted = [lease for lease in leases if not lease.changed]
    if changed:
        await tx.executemany(
            "UPDATE cs2_leases SET events = ?, document = ?, finished = ? WHERE match = ?",
            [
                (
                    lease.events,
                    orjson.dumps(to_document(lease.series)).decode(),
                    int(_done(lease.series)),
                    lease.match,
                )
                for lease in changed
            ],
        )
    if counted:
        await tx.executemany(
            "UPDATE cs2_leases SET events = ? WHERE match = ?",
            [(lease.events, lease.match) for lease in counted],
        )


def _as_game_server(server: Cs2Server) -> GameServer:
    return GameServer(server.id, server.region, 1, server.address)
