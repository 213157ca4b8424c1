"""Tournaments over the real app: REST for admins and players, a spectator on the websocket
following the bracket (snapshot, then deltas) to a fresh snapshot's state, and the prizes in
the ledger; embedded (SQLite, in-process) and distributed (PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from ledger import Transfer, derive_id
from leetgaming.play import result_message
from leetgaming.tokens import issue_access_token
from leetgaming.tournaments import apply_delta
from realtime.channel import Principal, Role
from wallet import accounts

from ..ws import call, connect, receive
from .test_play import SECRET, serving_play

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
ready_check_s = 20
"""
CONFIG = {
    "name": "Sunday cup",
    "queue": "cs2:1v1:eu",
    "team_size": 1,
    "format": {"kind": "double_elimination"},
    "entry_fee": {"asset": "USD", "amount": "1000"},
    "prize_asset": "USD",
    "payout_bps": [7000, 3000],
    "participants_min": 2,
    "participants_max": 8,
    "rake_bps": 1000,
}


def token(subject: str, role: str = "player") -> dict[str, str]:
    issued = issue_access_token(SECRET, subject, role, "s", int(time.time()), mfa=role == "admin")
    return {"Authorization": f"Bearer {issued}"}


async def test_a_tournament_from_creation_to_payout_over_rest_and_the_hub(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            admin = token("root", "admin")
            bad = await http.post(
                "/v1/admin/tournaments", json=CONFIG | {"payout_bps": [7000, 2999]}, headers=admin
            )
            assert bad.status_code == 422 and "not 100 %" in bad.json()["detail"]
            assert (
                await http.post("/v1/admin/tournaments", json=CONFIG, headers=token("p1"))
            ).status_code == 403
            created = await http.post("/v1/admin/tournaments", json=CONFIG, headers=admin)
            assert created.status_code == 201, created.text
            tid = created.json()["id"]
            assert (
                await http.post(f"/v1/admin/tournaments/{tid}/open-registration", headers=admin)
            ).status_code == 200
            players = [f"p{i}" for i in range(4)]
            poor = await http.post(f"/v1/tournaments/{tid}/registration", headers=token("p0"))
            assert poor.status_code == 409 and poor.json()["code"] == "insufficient_funds"
            ledger = state.ledger
            await fund_players(ledger, players, 2_000)
            for p in players:
                joined = await http.post(f"/v1/tournaments/{tid}/registration", headers=token(p))
                assert joined.status_code == 201, joined.text
            twice = await http.post(f"/v1/tournaments/{tid}/registration", headers=token("p1"))
            assert (twice.status_code, twice.json()["code"]) == (409, "team_taken")
            assert (await http.post(f"/v1/tournaments/{tid}/registration")).status_code == 401
            listed = (await http.get("/v1/tournaments")).json()["tournaments"]
            assert [(t["id"], t["entries"]) for t in listed] == [(tid, 4)]
            assert (
                await http.post(f"/v1/admin/tournaments/{tid}/seed", json={}, headers=admin)
            ).status_code == 200

            # A spectator: subscribe, then the snapshot, then every later delta
            async with connect(ws_url) as spectator:
                await call(spectator, type="auth", id="1")
                subscribed = await call(spectator, type="subscribe", id="2", ch=f"tournament:{tid}")
                assert subscribed["type"] == "subscribed"
                view = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
                started = await http.post(f"/v1/admin/tournaments/{tid}/start", headers=admin)
                assert started.status_code == 200 and started.json()["phase"] == "running"
                again = await http.post(f"/v1/tournaments/{tid}/registration", headers=token("p9"))
                assert (again.status_code, again.json()["code"]) == (409, "wrong_phase")
                early = await http.post(
                    f"/v1/admin/tournaments/{tid}/matches/GF/correct",
                    json={"winner": "p1"},
                    headers=admin,
                )  # a result for a match not played yet
                assert (early.status_code, early.json()["code"]) == (409, "bad_correction")
                no_dispute = await http.post(
                    f"/v1/admin/tournaments/{tid}/matches/U1-1/resolve",
                    json={"winner": None},
                    headers=admin,
                )
                assert (no_dispute.status_code, no_dispute.json()["code"]) == (409, "no_dispute")

                play = state.play
                server = "gs-eu-1"
                key = "k" * 32
                await play.call(
                    Principal(Role.GAME_SERVER, server),
                    "server.register",
                    {"region": "eu", "capacity": 8, "address": "10.0.0.2:27015"},
                )
                play.result_key_of = _key_of(server, key)
                payouts: list[dict[str, Any]] = []
                while await play_one_match(state, tid, server, key):
                    pass
                # Everything published reached the spectator: apply it
                fresh = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
                while view["version"] < fresh["version"] or not payouts:
                    frame = await receive(spectator)
                    body = frame["data"]["body"]
                    if body["kind"] == "tournament.delta" and body["version"] > view["version"]:
                        assert body["base"] == view["version"]  # none missed
                        view = apply_delta(view, body)
                    elif body["kind"] == "tournament.payouts":
                        payouts.append(body)
                assert view == fresh and fresh["phase"] == "complete"
            # 4 x 1000 less 10 % rake: 3600; 70 % and 30 %
            amounts = {p["player"]: int(p["amount"]) for p in payouts[0]["payouts"]}
            assert sorted(amounts.values()) == [1_080, 2_520]
            for p in players:
                [wallet] = await ledger.lookup_accounts([accounts.user(p, "USD").id])
                assert wallet.balance.posted == 1_000 + amounts.get(p, 0)
            standings = (await http.get(f"/v1/tournaments/{tid}/standings")).json()["standings"]
            champion = standings[0]["teams"][0]
            assert amounts[champion] == 2_520
            history = (await http.get(f"/v1/players/{champion}/tournaments")).json()["tournaments"]
            assert [(h["id"], h["place"]) for h in history] == [(tid, 1)]
            assert (await http.get("/v1/tournaments/nope/bracket")).status_code == 404


async def fund_players(ledger: Any, players: list[str], usd_cents: int) -> None:
    """Give each player ``usd_cents`` (as a deposit would)."""
    for n, p in enumerate(players):
        await ledger.create_accounts([accounts.settlement("USD"), accounts.user(p, "USD")])
        [ok] = await ledger.create_transfers(
            [
                Transfer(
                    derive_id("test.deposit", p, n),
                    accounts.settlement("USD").id,
                    accounts.user(p, "USD").id,
                    usd_cents,
                    "USD",
                    1,
                )
            ]
        )
        assert ok.result == "ok"


async def report_result(
    state: Any, server: str, key: str, match_id: str, ranks: list[int]
) -> dict[str, Any]:
    """The game server ``server`` (registered with ``key``) reports ``ranks``, signed."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    signature = hmac.new(digest.encode(), result_message(match_id, ranks), hashlib.sha256)
    answer: dict[str, Any] = await state.play.call(
        Principal(Role.GAME_SERVER, server),
        "match.result",
        {"match": match_id, "ranks": ranks, "signature": signature.hexdigest()},
    )
    return answer


async def play_one_match(state: Any, tid: str, server: str, key: str) -> bool:
    """Accept the ready check of the tournament's first match waiting for one and report the
    first team as the winner, signed as the game server ``server`` (registered with ``key``);
    False when no match of the tournament waits."""
    play = state.play
    await state.tournaments.quiet()  # a start's matches are made in the background
    rows = await play.db.fetch(
        "SELECT id, document FROM matches WHERE state = ? ORDER BY id", "ready_check"
    )
    mine = [(r[0], orjson.loads(r[1])["teams"]) for r in rows if str(r[0]).startswith(f"t.{tid}.")]
    if not mine:
        return False
    match_id, teams = mine[0]
    for team in teams:
        for p in team:
            await play.call(Principal(Role.PLAYER, p), "match.accept", {"match": match_id})
    result = await report_result(state, server, key, match_id, [0, 1])
    assert result["state"] == "finished"
    await state.tournaments.quiet()  # the next matches start in the background
    return True


def _key_of(server: str, key: str) -> Any:
    """The app checks results with the SHA-256 of the server's key (as its identity stores)."""

    async def key_of(who: str) -> str | None:
        return hashlib.sha256(key.encode()).hexdigest() if who == server else None

    return key_of


TEAM_QUEUES = QUEUES + '\n[queue."cs2:2v2:eu"]\nteam_size = 2\nready_check_s = 20\n'


async def test_a_team_registers_as_its_leaders_party_and_nobody_pays_unasked(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with serving_play(tmp_path, backends, TEAM_QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            admin = token("root", "admin")
            config = CONFIG | {"name": "Duos", "queue": "cs2:2v2:eu", "team_size": 2}
            created = await http.post("/v1/admin/tournaments", json=config, headers=admin)
            assert created.status_code == 201, created.text
            tid = created.json()["id"]
            opened = await http.post(
                f"/v1/admin/tournaments/{tid}/open-registration", headers=admin
            )
            assert opened.status_code == 200
            lead, mate, victim = (f"{n}{time.time_ns()}" for n in ("lead", "mate", "victim"))
            await fund_players(state.ledger, [lead, mate, victim], 2_000)

            async def enter(who: str, roster: list[str]) -> httpx.Response:
                return await http.post(
                    f"/v1/tournaments/{tid}/registration",
                    json={"team": "Wolves", "roster": roster},
                    headers=token(who),
                )

            async def available(p: str) -> int:
                [wallet] = await state.ledger.lookup_accounts([accounts.user(p, "USD").id])
                return int(wallet.balance.available)

            # someone who never agreed to play cannot be entered (and charged)
            refused = await enter(lead, [lead, victim])
            assert (refused.status_code, refused.json()["code"]) == (409, "roster_not_party")
            assert await available(victim) == 2_000
            # a party: the leader makes it, the teammate joins it
            play = state.play
            await play.call(Principal(Role.PLAYER, lead), "party.create", {})
            await play.call(Principal(Role.PLAYER, lead), "party.invite", {"player": mate})
            party = await play.call(Principal(Role.PLAYER, lead), "party.status", {})
            await play.call(Principal(Role.PLAYER, mate), "party.join", {"party": party["party"]})
            not_leader = await enter(mate, [lead, mate])
            assert (not_leader.status_code, not_leader.json()["code"]) == (409, "roster_not_party")
            not_all = await enter(lead, [lead, mate, victim])
            assert not_all.status_code in (409, 422)
            entered = await enter(lead, [lead, mate])
            assert entered.status_code == 201, entered.text
            assert sorted(entered.json()["roster"]) == sorted([lead, mate])
            for p in (lead, mate):  # each pays their own fee
                assert await available(p) == 1_000
            assert await available(victim) == 2_000


async def test_with_a_spectator_delay_the_public_sees_the_bracket_later_than_referees(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, _):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            admin = token("root", "admin")
            bad = CONFIG | {"spectator_delay_s": 99_999}
            refused = await http.post("/v1/admin/tournaments", json=bad, headers=admin)
            assert refused.status_code == 422 and "spectator_delay_s" in refused.json()["detail"]
            created = await http.post(
                "/v1/admin/tournaments", json=CONFIG | {"spectator_delay_s": 2}, headers=admin
            )
            assert created.status_code == 201, created.text
            tid = created.json()["id"]
            version = created.json()["version"]
            async with connect(ws_url) as public, connect(ws_url) as referee:
                await call(public, type="auth", id="1")
                assert (await call(public, type="subscribe", id="2", ch=f"tournament:{tid}"))[
                    "type"
                ] == "subscribed"
                admin_token = admin["Authorization"].removeprefix("Bearer ")
                await call(referee, type="auth", id="1", data={"token": admin_token})
                answer = await call(
                    referee, type="subscribe", id="2", ch=f"referee:tournament.{tid}"
                )
                assert answer["type"] == "subscribed"
                began = time.monotonic()
                opened = await http.post(
                    f"/v1/admin/tournaments/{tid}/open-registration", headers=admin
                )
                assert opened.status_code == 200
                now = await receive(referee)
                assert now["data"]["body"]["kind"] == "tournament.delta"
                assert time.monotonic() - began < 1.5
                moved = now["data"]["body"]["version"]
                # the public's snapshot has not moved; an admin's has
                held = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
                assert (held["version"], held["phase"]) == (version, "draft")
                current = (await http.get(f"/v1/tournaments/{tid}/bracket", headers=admin)).json()
                assert (current["version"], current["phase"]) == (moved, "registration")
                detail = (await http.get(f"/v1/tournaments/{tid}")).json()
                assert detail["phase"] == "draft" and "matches" not in detail
                table = (await http.get(f"/v1/tournaments/{tid}/standings")).json()
                assert table["version"] == version
                later = await receive(public)
                assert time.monotonic() - began >= 2.0
                assert later["data"]["body"] == now["data"]["body"]
                for _ in range(20):  # (marked published right after it went out)
                    held = (await http.get(f"/v1/tournaments/{tid}/bracket")).json()
                    if held["version"] == moved:
                        break
                    await asyncio.sleep(0.1)
                assert (held["version"], held["phase"]) == (moved, "registration")
