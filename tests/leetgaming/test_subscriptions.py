"""Pro subscriptions on the real database and ledger (SQLite and PostgreSQL) with a clock the
test moves: the first month charged once, one open subscription per player, renewals charged
once per period, lapse when the wallet is short, cancel to the period's end, a crash between
the row and the charge settled by the sweeper; and over REST, the Pro rates on deposits."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from ledger import Ledger, LedgerStore, derive_id, open_store, reconcile
from ledger.ids import id_to_text
from leetgaming.audit import AuditLog
from leetgaming.db import Database, open_database
from leetgaming.subscriptions import SubscriptionRefused, Subscriptions
from wallet import accounts
from wallet import subscriptions as sb

from .test_play import serving_play
from .test_wallet_api import QUEUES, fund, token
from .test_withdrawals import stripe_settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2027, 1, 31, 10, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@dataclass
class Shop:
    db: Database
    store: LedgerStore
    ledger: Ledger
    subs: Subscriptions
    clock: Clock
    published: list[tuple[str, Any]]

    async def usd(self, player: str) -> int:
        [account] = await self.ledger.lookup_accounts([accounts.user(player, "USD").id])
        return int(account.balance.available)


@pytest.fixture(params=["sqlite", "postgresql"])
async def shop(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server_url: str
) -> AsyncIterator[Shop]:
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/app.sqlite3"
    else:
        name = f"lgtest_sub_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(postgres_server_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = urlunsplit(urlsplit(postgres_server_url)._replace(path="/" + name))
    db = await open_database(url)
    store = await open_store(url)
    await store.migrate()
    ledger = Ledger(store)
    ledger.start()
    clock = Clock()
    audit = AuditLog(db, time.time_ns)
    await audit.start()
    published: list[tuple[str, Any]] = []

    async def publish(channel: str, body: object) -> int:
        published.append((channel, body))
        return len(published)

    subs = Subscriptions(db, ledger, audit, publish, 999, clock)
    await subs.start()
    try:
        yield Shop(db, store, ledger, subs, clock, published)
    finally:
        await ledger.close()
        await store.close()
        await db.close()
        if admin is not None:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


async def test_subscribe_renew_lapse_cancel_and_one_open_per_player(shop: Shop) -> None:
    await fund(shop.ledger, "p1", "USD", 2_500, 1)
    with pytest.raises(SubscriptionRefused, match="plan is pro"):
        await shop.subs.subscribe("p1", "k0", "gold")
    sub = await shop.subs.subscribe("p1", "k1", "pro")
    assert (sub.state, sub.charges) == (sb.State.ACTIVE, 1)
    assert await shop.usd("p1") == 2_500 - 999 and await shop.subs.is_pro("p1")
    assert (await shop.subs.subscribe("p1", "k1", "pro")).id == sub.id  # the same request
    assert await shop.usd("p1") == 2_500 - 999
    with pytest.raises(SubscriptionRefused) as other:
        await shop.subs.subscribe("p1", "k2", "pro")
    assert other.value.code == "already_subscribed"
    assert await shop.usd("p1") == 2_500 - 999

    # renewed at the period's end, once however often the sweeper runs
    shop.clock.at("2027-02-28T10:00:00")
    assert not await shop.subs.is_pro("p1")  # the period is over until renewed
    await asyncio.gather(shop.subs.sweep(), shop.subs.sweep())
    await shop.subs.sweep()
    assert await shop.usd("p1") == 2_500 - 2 * 999 and await shop.subs.is_pro("p1")
    renewed = await shop.subs.current("p1")
    assert renewed is not None and renewed.period_end_s == int(
        datetime(2027, 3, 31, 10, tzinfo=UTC).timestamp()
    )
    ids = [derive_id("subscription.charge", sub.id, n) for n in range(3)]
    assert len(await shop.ledger.lookup_transfers(ids)) == 2

    # the wallet cannot pay the third month: lapsed, nothing owed, free to subscribe again
    shop.clock.at("2027-03-31T10:00:01")
    await shop.subs.sweep()
    lapsed = await shop.subs.current("p1")
    assert lapsed is not None and lapsed.state is sb.State.LAPSED
    assert await shop.usd("p1") == 2_500 - 2 * 999 and not await shop.subs.is_pro("p1")
    with pytest.raises(SubscriptionRefused) as short:
        await shop.subs.subscribe("p1", "k3", "pro")
    assert short.value.code == "insufficient_funds"
    await fund(shop.ledger, "p1", "USD", 999, 2)
    again = await shop.subs.subscribe("p1", "k3", "pro")
    assert again.id != sub.id and again.state is sb.State.ACTIVE

    # cancelled: Pro to the period's end, resumed, cancelled again, then ended
    assert (await shop.subs.cancel("p1")).state is sb.State.CANCELLING
    assert await shop.subs.is_pro("p1")
    assert (await shop.subs.resume("p1")).state is sb.State.ACTIVE
    with pytest.raises(SubscriptionRefused) as twice:
        await shop.subs.resume("p1")
    assert twice.value.code == "wrong_state"
    await shop.subs.cancel("p1")
    shop.clock.at("2027-04-30T10:00:01")
    await shop.subs.sweep()
    ended = await shop.subs.current("p1")
    assert ended is not None and ended.state is sb.State.ENDED
    assert await shop.usd("p1") == 2_500 + 999 - 3 * 999  # three months paid; no fourth
    with pytest.raises(SubscriptionRefused) as none:
        await shop.subs.cancel("p1")
    assert none.value.code == "not_found"
    actions = [body["subscription"]["state"] for _, body in shop.published]
    assert actions == [
        "active",
        "active",
        "lapsed",
        "active",
        "cancelling",
        "active",
        "cancelling",
        "ended",
    ]
    assert (await reconcile(shop.store)).ok


async def test_concurrent_first_subscriptions_charge_once(shop: Shop) -> None:
    await fund(shop.ledger, "p2", "USD", 5_000, 1)
    outcomes = await asyncio.gather(
        *(shop.subs.subscribe("p2", f"k{i}", "pro") for i in range(6)), return_exceptions=True
    )
    won = [o for o in outcomes if isinstance(o, sb.Subscription)]
    assert len(won) == 1, outcomes
    assert all(
        isinstance(o, SubscriptionRefused) and o.code == "already_subscribed"
        for o in outcomes
        if o not in won
    )
    assert await shop.usd("p2") == 5_000 - 999


async def test_a_crash_between_the_row_and_the_charge_is_settled(shop: Shop) -> None:
    await fund(shop.ledger, "p3", "USD", 5_000, 1)
    await fund(shop.ledger, "p4", "USD", 5_000, 1)
    # p3's request died after writing its row and posting its charge; p4's before the charge
    for player, charged in (("p3", True), ("p4", False)):
        sid = sb.subscription_id(player, "k")
        sub, first = sb.start(sid, player, 999, int(shop.clock()))
        await shop.db.execute(
            "INSERT INTO subscriptions (id, player, plan, price, state, anchor_s, months, "
            "charges, version, period_end_s, created_at_s, updated_at_s) "
            "VALUES (?, ?, 'pro', 999, 'pending', ?, 1, 0, 0, ?, ?, ?)",
            sid,
            player,
            sub.anchor_s,
            sub.period_end_s,
            sub.anchor_s,
            sub.anchor_s,
        )
        if charged:
            await shop.ledger.create_accounts([accounts.revenue("USD")])
            [ok] = await shop.ledger.create_transfers([first])
            assert ok.result.succeeded
    await shop.subs.sweep()  # too early: a request may still be running
    assert not await shop.subs.is_pro("p3")
    shop.clock.now += 31
    await shop.subs.sweep()
    assert await shop.subs.is_pro("p3") and await shop.usd("p3") == 5_000 - 999
    assert not await shop.subs.is_pro("p4") and await shop.usd("p4") == 5_000
    assert await shop.subs.current("p4") is None
    assert (await shop.subs.subscribe("p4", "k2", "pro")).state is sb.State.ACTIVE


async def test_pro_pays_the_pro_rates_over_rest(
    tmp_path: Path, backends: dict[str, str], localstripe: str
) -> None:
    me = f"s{secrets.token_hex(4)}"
    settings = stripe_settings(localstripe)
    async with serving_play(tmp_path, backends, QUEUES, **settings) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def deposit_fee(amount: int) -> str:
                made = await http.post(
                    "/v1/deposits",
                    json={"method": "card", "asset": "USD", "amount": str(amount)},
                    headers=token(me) | {"Idempotency-Key": secrets.token_hex(8)},
                )
                assert made.status_code == 201, made.text
                fee: str = made.json()["fee"]
                return fee

            def subscribe(key: str, body: object) -> Any:
                return http.post(
                    "/v1/subscriptions", json=body, headers=token(me) | {"Idempotency-Key": key}
                )

            assert (
                await http.get("/v1/subscriptions/current", headers=token(me))
            ).status_code == 404
            assert await deposit_fee(10_000) == "250"  # 2.5 %
            short = await subscribe("a", {"plan": "pro"})
            assert (short.status_code, short.json()["code"]) == (409, "insufficient_funds")
            await fund(state.ledger, me, "USD", 1_000, 7)
            made = await subscribe("b", {"plan": "pro"})
            assert made.status_code == 201, made.text
            body = made.json()
            assert (body["state"], body["pro"], body["renews"], body["price"]) == (
                "active",
                True,
                True,
                {"asset": "USD", "amount": "999", "per": "month"},
            )
            replay = await subscribe("b", {"plan": "pro"})
            assert replay.headers.get("Idempotent-Replayed") == "true"
            assert (await subscribe("b", {"plan": "max"})).status_code == 422  # key reused
            assert await deposit_fee(10_000) == "150"  # 1.5 % for Pro
            cancelled = await http.post("/v1/subscriptions/current/cancel", headers=token(me))
            assert cancelled.json()["state"] == "cancelling" and cancelled.json()["pro"]
            assert await deposit_fee(10_000) == "150"  # Pro to the period's end
            wallet = (await http.get("/v1/wallet", headers=token(me))).json()
            usd = next(b for b in wallet["balances"] if b["asset"] == "USD")
            assert usd["available"] == "1"
            # the charge is in the player's history, as a subscription
            history = (
                await http.get("/v1/transactions?kind=subscription", headers=token(me))
            ).json()
            charge = derive_id("subscription.charge", body["id"], 0)
            assert [e["id"] for e in history["transactions"]] == [id_to_text(charge)]
