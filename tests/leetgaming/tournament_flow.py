"""A tournament flow on a real database and ledger (SQLite, or PostgreSQL), with the real match
lifecycle; publications are recorded where the hub would send them. Shared by the tournament
tests and the crash worker."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ledger import Ledger, LedgerStore, Transfer, derive_id, open_store
from leetgaming.db import Database, open_database
from leetgaming.play import Play, result_message
from leetgaming.tournaments import Tournaments, apply_delta, snapshot
from matchmaking import tournament as tm
from matchmaking.formats import Format, Kind
from matchmaking.match import State
from matchmaking.queues import parse_queues
from matchmaking.tickets import MemoryTicketStore
from realtime.channel import Principal, Role
from wallet import accounts

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
ready_check_s = 20

[queue."cs2:2v2:eu"]
team_size = 2
ready_check_s = 20
"""
SERVER_KEY = "server-key"
SERVER = "gs-1"


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Flow:
    db: Database
    store: LedgerStore
    ledger: Ledger
    play: Play
    tournaments: Tournaments
    clock: Clock
    published: list[tuple[str, Any]] = field(default_factory=list)
    deposits: itertools.count[int] = field(default_factory=itertools.count)

    async def fund(self, player: str, amount: int, asset: str = "USD") -> None:
        """Money arriving in the player's wallet (a deposit, as the wallet will make them)."""
        source, wallet = accounts.settlement(asset), accounts.user(player, asset)
        await self.ledger.create_accounts([source, wallet])
        [outcome] = await self.ledger.create_transfers(
            [
                Transfer(
                    derive_id("test.deposit", player, next(self.deposits)),
                    source.id,
                    wallet.id,
                    amount,
                    asset,
                    accounts.Code.DEPOSIT,
                )
            ]
        )
        assert outcome.result == "ok", outcome.result

    async def balance(self, player: str, asset: str = "USD") -> tuple[int, int]:
        """(posted, available) of the player's wallet."""
        [state] = await self.ledger.lookup_accounts([accounts.user(player, asset).id])
        return state.balance.posted, state.balance.available

    async def pool(self, tournament_id: str, asset: str = "USD") -> tuple[int, int]:
        found = await self.ledger.lookup_accounts([accounts.prize_pool(tournament_id, asset).id])
        if not found:
            return 0, 0
        return found[0].balance.posted, found[0].balance.pending

    async def open_matches(self, tournament_id: str) -> list[tuple[str, State, list[list[str]]]]:
        rows = await self.db.fetch(
            "SELECT id, state, document FROM matches WHERE state IN (?, ?, ?) ORDER BY id",
            "ready_check",
            "allocating",
            "live",
        )
        return [
            (str(r[0]), State(r[1]), json.loads(r[2])["teams"])
            for r in rows
            if str(r[0]).startswith(f"t.{tournament_id}.")
        ]

    async def accept_all(self, match_id: str, teams: list[list[str]]) -> None:
        for team in teams:
            for player in team:
                await self.play.call(
                    Principal(Role.PLAYER, player), "match.accept", {"match": match_id}
                )

    async def server_abort(self, match_id: str, afk: list[str] | None = None) -> None:
        await self.play.call(
            Principal(Role.GAME_SERVER, SERVER),
            "match.abort",
            {"match": match_id, "afk": afk or []},
        )

    async def play_match(self, match_id: str, teams: list[list[str]], winner: int) -> None:
        """The match's players accept, the server plays it and reports ``winner`` (a side)."""
        await self.accept_all(match_id, teams)
        ranks = [0 if side == winner else 1 for side in range(len(teams))]
        signature = hmac.new(
            SERVER_KEY.encode(), result_message(match_id, ranks), hashlib.sha256
        ).hexdigest()
        await self.play.call(
            Principal(Role.GAME_SERVER, SERVER),
            "match.result",
            {"match": match_id, "ranks": ranks, "signature": signature},
        )
        await self.tournaments.quiet()

    async def decline(self, match_id: str, player: str) -> None:
        await self.play.call(Principal(Role.PLAYER, player), "match.decline", {"match": match_id})
        await self.tournaments.quiet()  # the outcome's effects are carried out in the background

    def spectator_view(self, tournament_id: str, start: dict[str, Any]) -> dict[str, Any]:
        """What a spectator holds: ``start`` (a snapshot) plus every later delta published."""
        view = start
        for channel, body in self.published:
            delta = channel == f"tournament:{tournament_id}" and body["kind"] == "tournament.delta"
            if delta and body["version"] > view["version"]:
                assert body["base"] == view["version"], "a delta went missing"
                view = apply_delta(view, body)
        return view

    async def fresh(self, tournament_id: str) -> dict[str, Any]:
        return snapshot(await self.tournaments.get(tournament_id))


async def open_flow(url: str) -> Flow:
    db = await open_database(url)
    store = await open_store(url)
    await store.migrate()
    ledger = Ledger(store)
    ledger.start()
    clock = Clock()
    published: list[tuple[str, Any]] = []

    async def publish(channel: str, body: object) -> int:
        published.append((channel, body))
        return len(published)

    async def key_of(server: str) -> str | None:
        return SERVER_KEY if server == SERVER else None

    play = Play(db, MemoryTicketStore(), parse_queues(QUEUES), publish, clock, result_key_of=key_of)
    await play.start()
    tournaments = Tournaments(db, ledger, play, publish, clock)
    await tournaments.start()
    await play.call(
        Principal(Role.GAME_SERVER, SERVER),
        "server.register",
        {"region": "eu", "capacity": 64, "address": "10.0.0.1:27015"},
    )
    return Flow(db, store, ledger, play, tournaments, clock, published)


async def close_flow(flow: Flow) -> None:
    await flow.ledger.close()
    await flow.store.close()
    await flow.db.close()


@asynccontextmanager
async def flow_on(url: str) -> AsyncIterator[Flow]:
    flow = await open_flow(url)
    try:
        yield flow
    finally:
        await close_flow(flow)


def config(**changes: Any) -> tm.Config:
    base: dict[str, Any] = {
        "name": "Friday cup",
        "queue": "cs2:1v1:eu",
        "team_size": 1,
        "format": Format(Kind.SINGLE_ELIMINATION),
        "entry_fee": tm.EntryFee("USD", 1_000),
        "prize_asset": "USD",
        "payout_bps": (6_000, 3_000, 1_000),
        "participants_min": 3,
        "participants_max": 16,
        "rake_bps": 1_000,
    }
    return tm.Config(**(base | changes))


async def run_to_end(
    flow: Flow, tournament_id: str, choose: Callable[[list[list[str]]], int], check: bool = True
) -> None:
    """Play every match of the tournament through the match lifecycle until none is open;
    after each, the spectator's snapshot-plus-deltas equals a fresh snapshot."""
    start = await flow.fresh(tournament_id)
    while matches := await flow.open_matches(tournament_id):
        match_id, _, teams = matches[0]
        await flow.play_match(match_id, teams, choose(teams))
        if check:
            assert flow.spectator_view(tournament_id, start) == await flow.fresh(tournament_id)
