"""Races for the same money over the real REST API (uvicorn, PostgreSQL, Redis), each on a
database of its own: of 50 concurrent withdrawals of the whole balance exactly one is taken
and one refund reaches the card; an entry fee raced against a withdrawal of the same last
funds lets exactly one through; one player's concurrent registrations give one seat and one
held fee; and an ``Idempotency-Key`` replays the first answer, refuses another body, and runs
once when the same request arrives 20 times at once. After each race the ledger reconciles and
no wallet is overdrawn."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from ledger import reconcile
from wallet import accounts

from .test_deposits import SK, send_webhooks, usd
from .test_play import serving_play
from .test_tournaments_api import fund_players
from .test_wallet_api import QUEUES, fund, token
from .test_withdrawals import deposited, stripe_settings

# A database of the test's own (its tournaments, prices and idempotency keys stay there), on
# PostgreSQL with Redis: the backend where requests really run side by side
pytestmark = pytest.mark.parametrize("own_backends", ["distributed"], indirect=True)

DEPOSIT = 10_000  # $100 by card: $97.50 after the 2.5 % fee, below every withdrawal threshold
AVAILABLE = 9_750
REFUSED_FUNDS = (409, "insufficient_funds")


def tournament(fee: int) -> dict[str, Any]:
    return {
        "name": "Race cup",
        "queue": "cs2:1v1:eu",
        "team_size": 1,
        "format": {"kind": "single_elimination"},
        "entry_fee": {"asset": "USD", "amount": str(fee)},
        "prize_asset": "USD",
        "payout_bps": [10000],
        "participants_min": 2,
        "participants_max": 8,
        "rake_bps": 1000,
    }


async def open_tournament(http: httpx.AsyncClient, fee: int) -> str:
    """A paid tournament created and opened for registration by an admin over REST: its id."""
    admin = token("root", "admin")
    created = await http.post("/v1/admin/tournaments", json=tournament(fee), headers=admin)
    assert created.status_code == 201, created.text
    tid: str = created.json()["id"]
    opened = await http.post(f"/v1/admin/tournaments/{tid}/open-registration", headers=admin)
    assert opened.status_code == 200, opened.text
    return tid


def withdrawal(
    http: httpx.AsyncClient, me: str, amount: int, destination: str, key: str | None = None
) -> Any:
    return http.post(
        "/v1/withdrawals",
        json={
            "asset": "USD",
            "amount": str(amount),
            "rail": "card_refund",
            "destination": destination,
        },
        headers=token(me) | {"Idempotency-Key": key or secrets.token_hex(8)},
    )


def outcome(response: httpx.Response) -> tuple[int, str]:
    """(status, the problem's code, or ``ok`` for a success)."""
    if response.is_success:
        return response.status_code, "ok"
    return response.status_code, response.json().get("code", "?")


async def wallet_of(state: Any, player: str, asset: str = "USD") -> Any:
    """The player's wallet account in the ledger, checked never overdrawn."""
    [found] = await state.ledger.lookup_accounts([accounts.user(player, asset).id])
    b = found.balance
    assert b.debits_posted + b.debits_pending <= b.credits_posted, (player, b)
    return b


async def refunds_of(sdk: stripe.StripeClient, payment_intent: str) -> list[int]:
    listed = await asyncio.to_thread(sdk.v1.refunds.list, params={"payment_intent": payment_intent})
    return sorted(r.amount for r in listed.data)


async def test_fifty_concurrent_withdrawals_of_the_whole_balance_take_it_once(
    tmp_path: Path, own_backends: dict[str, str], localstripe: str
) -> None:
    me = f"r{secrets.token_hex(4)}"
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(
        tmp_path, own_backends, QUEUES, None, **stripe_settings(localstripe)
    ) as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            card = await deposited(http, sdk, me, DEPOSIT)
            assert (await usd(http, me))["available"] == str(AVAILABLE)

            keys = [secrets.token_hex(8) for _ in range(50)]
            raced = await asyncio.gather(
                *(withdrawal(http, me, AVAILABLE, card["id"], key) for key in keys)
            )
            outcomes = Counter(outcome(r) for r in raced)
            assert outcomes == Counter({(201, "ok"): 1, REFUSED_FUNDS: 49}), outcomes
            [won] = [r.json() for r in raced if r.status_code == 201]
            assert (won["state"], won["amount"]) == ("sent", str(AVAILABLE))
            for refused in raced:
                if refused.status_code != 201:
                    assert refused.headers["content-type"] == "application/problem+json"

            mine = await usd(http, me)
            assert (mine["available"], mine["held"], mine["total"]) == ("0", "0", "0")
            balance = await wallet_of(state, me)
            assert (balance.available, balance.debits_pending) == (0, 0)
            # one refund reached the card, of the one withdrawal's payout
            assert await refunds_of(sdk, card["payment_intent"]) == [int(won["payout"])]
            rows = await state.withdrawals.db.fetch(
                "SELECT id, held FROM withdrawals WHERE player = ?", me
            )
            assert [(r[0], bool(r[1])) for r in rows] == [(won["id"], True)]
            # a refusal is not kept under its key: retried, it is refused again (not replayed
            # as a success) and takes nothing
            loser = next(k for k, r in zip(keys, raced, strict=True) if r.status_code != 201)
            again = await withdrawal(http, me, AVAILABLE, card["id"], loser)
            assert again.status_code in (409, 422) and "idempotent-replayed" not in again.headers
            assert (await usd(http, me))["available"] == "0"
            assert (await reconcile(state.ledger.store)).ok


async def test_an_entry_fee_and_a_withdrawal_race_for_the_same_last_funds(
    tmp_path: Path, own_backends: dict[str, str], localstripe: str
) -> None:
    players = [f"e{n}{secrets.token_hex(3)}" for n in range(4)]
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(
        tmp_path, own_backends, QUEUES, None, **stripe_settings(localstripe)
    ) as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            cards = {p: await deposited(http, sdk, p, DEPOSIT) for p in players}
            tid = await open_tournament(http, AVAILABLE)  # the fee takes all a player has

            def register(p: str) -> Any:
                return http.post(f"/v1/tournaments/{tid}/registration", headers=token(p))

            # every player races their own registration against their own withdrawal, all at
            # once; half of them send the registration first, half the withdrawal
            requests = []
            for n, p in enumerate(players):
                pair = [register(p), withdrawal(http, p, AVAILABLE, cards[p]["id"])]
                requests += pair if n % 2 == 0 else pair[::-1]
            answers = await asyncio.gather(*requests)
            by_player: dict[str, tuple[tuple[int, str], tuple[int, str]]] = {}
            for n, p in enumerate(players):
                pair = answers[2 * n : 2 * n + 2]
                entry, paid_out = pair if n % 2 == 0 else pair[::-1]
                by_player[p] = (outcome(entry), outcome(paid_out))

            detail = (await http.get(f"/v1/tournaments/{tid}")).json()
            for p, (entry, paid_out) in by_player.items():
                assert sorted([entry, paid_out]) == [(201, "ok"), REFUSED_FUNDS], (
                    p,
                    entry,
                    paid_out,
                )
                balance = await wallet_of(state, p)
                assert balance.available == 0, (p, balance)
                mine = await usd(http, p)
                refunds = await refunds_of(sdk, cards[p]["payment_intent"])
                if entry == (201, "ok"):  # the seat is taken and its fee held; nothing paid out
                    assert detail["entries"][p]["hold"] == "held", detail["entries"]
                    assert (mine["available"], mine["held"]) == ("0", str(AVAILABLE))
                    assert refunds == []
                else:  # the money went to the card; no seat was given
                    assert p not in detail["entries"], detail["entries"]
                    assert (mine["available"], mine["held"], mine["total"]) == ("0", "0", "0")
                    assert len(refunds) == 1
            seated = [p for p, (entry, _) in by_player.items() if entry == (201, "ok")]
            assert sorted(detail["entries"]) == sorted(seated)
            assert (await reconcile(state.ledger.store)).ok


async def test_one_players_concurrent_registrations_give_one_seat_and_one_fee(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    me, rival = f"d{secrets.token_hex(4)}", f"d{secrets.token_hex(4)}"
    async with serving_play(tmp_path, own_backends, QUEUES, rest_requests_per_min="100000") as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await fund_players(state.ledger, [me, rival], 3_000)
            tid = await open_tournament(http, 1_000)
            raced = await asyncio.gather(
                *(
                    http.post(f"/v1/tournaments/{tid}/registration", headers=token(me))
                    for _ in range(10)
                )
            )
            outcomes = Counter(outcome(r) for r in raced)
            assert outcomes == Counter({(201, "ok"): 1, (409, "team_taken"): 9}), outcomes

            detail = (await http.get(f"/v1/tournaments/{tid}")).json()
            assert list(detail["entries"]) == [me]
            assert detail["entries"][me]["hold"] == "held"
            mine = await usd(http, me)
            assert (mine["available"], mine["held"]) == ("2000", "1000")  # one fee, not two
            balance = await wallet_of(state, me)
            assert (balance.debits_pending, balance.debits_posted) == (1_000, 0)
            fees = (
                await http.get("/v1/transactions", params={"kind": "entry_fee"}, headers=token(me))
            ).json()["transactions"]
            assert [r["amount"] for r in fees] == ["-1000"]
            # the seat still counts: another player takes the next one
            theirs = await http.post(f"/v1/tournaments/{tid}/registration", headers=token(rival))
            assert theirs.status_code == 201, theirs.text
            listed = (await http.get("/v1/tournaments")).json()["tournaments"]
            assert [t["entries"] for t in listed if t["id"] == tid] == [2]
            assert (await reconcile(state.ledger.store)).ok


async def test_an_idempotency_key_replays_refuses_another_body_and_runs_once_under_a_race(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    me = f"i{secrets.token_hex(4)}"
    async with serving_play(tmp_path, own_backends, QUEUES, rest_requests_per_min="100000") as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await fund(state.ledger, me, "USD", 20_000, 1)
            admin = token("root", "admin")
            priced = await http.put(
                "/v1/admin/prices/ETH", json={"price_usd": "2000"}, headers=admin
            )
            assert priced.status_code == 200, priced.text

            def convert(body: dict[str, Any], key: str) -> Any:
                return http.post(
                    "/v1/conversions", json=body, headers=token(me) | {"Idempotency-Key": key}
                )

            async def holdings() -> dict[str, str]:
                wallet = (await http.get("/v1/wallet", headers=token(me))).json()
                return {b["asset"]: b["total"] for b in wallet["balances"]}

            async def conversions() -> int:
                rows = (
                    await http.get(
                        "/v1/transactions",
                        params={"kind": "conversion", "limit": "100"},
                        headers=token(me),
                    )
                ).json()["transactions"]
                return len(rows)

            # the same key and body: the first answer again, the money moved once
            body = {"from_asset": "USD", "to_asset": "ETH", "amount": "10000"}
            first = await convert(body, "k1")
            assert first.status_code == 201, first.text
            assert "idempotent-replayed" not in first.headers
            moved = await holdings()
            assert moved == {"USD": "10000", "ETH": str(495 * 10**14)}  # 0.05 ETH less 1 %
            made = await conversions()  # its rows in the player's history
            assert made >= 1
            reordered = {"amount": "10000", "to_asset": "ETH", "from_asset": "USD"}
            for again in (await convert(body, "k1"), await convert(reordered, "k1")):
                assert again.status_code == 201
                assert again.headers["idempotent-replayed"] == "true"
                assert again.json() == first.json()
            assert await holdings() == moved and await conversions() == made

            # the same key with another body: refused, whatever it asks
            for other in (body | {"amount": "5000"}, body | {"to_asset": "USDC"}):
                reused = await convert(other, "k1")
                assert (reused.status_code, reused.json()["code"]) == (
                    422,
                    "idempotency_key_reused",
                ), reused.text
            assert await holdings() == moved and await conversions() == made

            # 20 at once with a fresh key: one runs, the others replay it or are told to wait
            small = body | {"amount": "1000"}
            raced = await asyncio.gather(*(convert(small, "k2") for _ in range(20)))
            ran = [
                r for r in raced if r.status_code == 201 and "idempotent-replayed" not in r.headers
            ]
            assert len(ran) == 1, [
                (r.status_code, r.headers.get("idempotent-replayed")) for r in raced
            ]
            for r in raced:
                if r is ran[0]:
                    continue
                if r.status_code == 201:
                    assert r.headers["idempotent-replayed"] == "true"
                    assert r.json() == ran[0].json()
                else:
                    assert (r.status_code, r.json()["code"]) == (409, "idempotency_in_progress")
                    assert r.headers["retry-after"] == "1"
            after = await holdings()
            assert after["USD"] == "9000", after  # 1,000 more, once
            assert int(after["ETH"]) == 495 * 10**14 + int(ran[0].json()["received"])
            assert await conversions() == 2 * made
            replayed = await convert(small, "k2")
            assert replayed.headers["idempotent-replayed"] == "true"
            assert replayed.json() == ran[0].json()

            # an admin's credit grant, 20 at once under one key: granted once
            grant = {"player": me, "asset": "LEETCOIN", "amount": 70, "expires_on": None}
            granted = await asyncio.gather(
                *(
                    http.post(
                        "/v1/admin/credits", json=grant, headers=admin | {"Idempotency-Key": "g1"}
                    )
                    for _ in range(20)
                )
            )
            codes = Counter(outcome(r) for r in granted)
            assert set(codes) <= {(201, "ok"), (409, "idempotency_in_progress")}, codes
            fresh = [
                r
                for r in granted
                if r.status_code == 201 and "idempotent-replayed" not in r.headers
            ]
            assert len(fresh) == 1, codes
            credits = (await http.get("/v1/wallet", headers=token(me))).json()["credits"]
            assert [(c["asset"], c["total"]) for c in credits] == [("LEETCOIN", "70")]
            assert (await wallet_of(state, me)).available == 9_000
            assert (await reconcile(state.ledger.store)).ok


async def test_a_withdrawal_sent_twenty_times_under_one_key_is_made_and_refunded_once(
    tmp_path: Path, own_backends: dict[str, str], localstripe: str
) -> None:
    me = f"k{secrets.token_hex(4)}"
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    async with serving_play(
        tmp_path, own_backends, QUEUES, None, **stripe_settings(localstripe)
    ) as (
        ws_url,
        state,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await send_webhooks(http, localstripe, base)
            card = await deposited(http, sdk, me, DEPOSIT)
            raced = await asyncio.gather(
                *(withdrawal(http, me, 5_000, card["id"], key="w1") for _ in range(20))
            )
            fresh = [
                r for r in raced if r.status_code == 201 and "idempotent-replayed" not in r.headers
            ]
            assert len(fresh) == 1, [outcome(r) for r in raced]
            for r in raced:
                if r.status_code == 201:
                    assert r.json()["id"] == fresh[0].json()["id"]
                else:
                    assert outcome(r) == (409, "idempotency_in_progress"), r.text
            assert fresh[0].json()["state"] == "sent"
            assert (await usd(http, me))["available"] == str(AVAILABLE - 5_000)
            assert await refunds_of(sdk, card["payment_intent"]) == [int(fresh[0].json()["payout"])]
            # the same key for another amount is refused and moves nothing
            reused = await withdrawal(http, me, 4_000, card["id"], key="w1")
            assert outcome(reused) == (422, "idempotency_key_reused")
            assert (await usd(http, me))["available"] == str(AVAILABLE - 5_000)
            await wallet_of(state, me)
            assert (await reconcile(state.ledger.store)).ok
