"""The wallet over REST on the real app, embedded (SQLite, in-process) and distributed
(PostgreSQL, Redis): balances and portfolio value, paged history, ledger transfers, prices,
the audit log, the per-address rate limit and the OpenAPI document the answers conform to."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate as validate_openapi
from starlette.routing import Route

from ledger import Transfer, TransferFlags, derive_id
from leetgaming.settings import SettingsError
from leetgaming.tokens import issue_access_token
from wallet import accounts

from .openapi_check import conforms
from .test_play import SECRET, serving_play

QUEUES = """
[queue."cs2:1v1:eu"]
team_size = 1
"""


def token(subject: str, role: str = "player") -> dict[str, str]:
    issued = issue_access_token(SECRET, subject, role, "s", int(time.time()), mfa=role == "admin")
    return {"Authorization": f"Bearer {issued}"}


async def fund(ledger: Any, player: str, asset: str, amount: int, n: int) -> None:
    source, wallet = accounts.settlement(asset), accounts.user(player, asset)
    await ledger.create_accounts([source, wallet])
    [ok] = await ledger.create_transfers(
        [
            Transfer(
                derive_id("test.deposit", player, asset, n),
                source.id,
                wallet.id,
                amount,
                asset,
                accounts.Code.DEPOSIT,
            )
        ]
    )
    assert ok.result == "ok", ok


async def test_balances_prices_and_the_portfolio_value(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    me, other = f"w{secrets.token_hex(4)}", f"w{secrets.token_hex(4)}"
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            doc = (await http.get("/openapi.json")).json()
            anonymous = await http.get("/v1/wallet")
            assert anonymous.status_code == 401
            assert anonymous.headers["content-type"] == "application/problem+json"
            conforms(doc, anonymous)

            empty = await http.get("/v1/wallet", headers=token(me))
            assert empty.status_code == 200, empty.text
            conforms(doc, empty)
            assert (
                empty.json()["balances"] == [] and empty.json()["portfolio"]["value_cents"] == "0"
            )

            ledger = state.ledger
            await fund(ledger, me, "USD", 12_345, 1)
            await fund(ledger, me, "ETH", 3 * 10**18 // 2, 1)  # 1.5 ETH
            await fund(ledger, me, "LEETCOIN", 500, 1)
            await fund(ledger, other, "USD", 99_999, 1)
            # an entry fee held: still the player's, no longer available
            pool = accounts.prize_pool("t1", "USD")
            await ledger.create_accounts([pool])
            [held] = await ledger.create_transfers(
                [
                    Transfer(
                        derive_id("test.hold", me),
                        accounts.user(me, "USD").id,
                        pool.id,
                        1_000,
                        "USD",
                        accounts.Code.ENTRY_FEE,
                        TransferFlags.PENDING,
                    )
                ]
            )
            assert held.result == "ok"

            admin = token("root", "admin")
            assert (
                await http.put(
                    "/v1/admin/prices/ETH", json={"price_usd": "2000"}, headers=token(me)
                )
            ).status_code == 403
            for bad, code in [
                ({"price_usd": "-1"}, "bad_price"),
                ({"price_usd": 5}, "bad_price"),
                ({"usd": "1"}, "unknown_field"),
            ]:
                refused = await http.put("/v1/admin/prices/ETH", json=bad, headers=admin)
                assert (refused.status_code, refused.json()["code"]) == (422, code)
                conforms(doc, refused)
            unknown = await http.put(
                "/v1/admin/prices/DOGE", json={"price_usd": "1"}, headers=admin
            )
            assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_asset")
            assert (await http.get("/v1/prices")).json()["prices"] == []  # nothing was set
            priced = await http.put(
                "/v1/admin/prices/ETH", json={"price_usd": "2000.50"}, headers=admin
            )
            assert priced.status_code == 200, priced.text
            conforms(doc, priced)
            before = int(time.time())
            listed = (await http.get("/v1/prices")).json()["prices"]
            assert [(p["asset"], p["price_usd"]) for p in listed] == [("ETH", "2000.5")]
            assert abs(listed[0]["set_at_s"] - before) <= 2

            mine = await http.get("/v1/wallet", headers=token(me))
            conforms(doc, mine)
            body = mine.json()
            usd = next(b for b in body["balances"] if b["asset"] == "USD")
            assert (usd["available"], usd["held"], usd["total"], usd["decimal"]) == (
                "11345",
                "1000",
                "12345",
                "113.45",
            )
            eth = next(b for b in body["balances"] if b["asset"] == "ETH")
            assert eth["total"] == str(3 * 10**18 // 2) and eth["decimal"].startswith("1.5")
            assert [(c["asset"], c["total"]) for c in body["credits"]] == [("LEETCOIN", "500")]
            # $123.45 + 1.5 ETH at $2000.50 = $3000.75: 300075 + 12345 cents; LEETCOIN unpriced
            assert body["portfolio"]["value_cents"] == str(12_345 + 300_075)
            assert body["portfolio"]["unpriced"] == ["LEETCOIN"]
            eth_value = next(a for a in body["portfolio"]["assets"] if a["asset"] == "ETH")
            assert eth_value["price_set_at_s"] == listed[0]["set_at_s"]
            # the other player's money is not in my wallet, nor mine in theirs
            theirs = (await http.get("/v1/wallet", headers=token(other))).json()
            assert [(b["asset"], b["total"]) for b in theirs["balances"]] == [("USD", "99999")]

            # the price change is in the audit log, which players cannot read
            assert (await http.get("/v1/admin/audit", headers=token(me))).status_code == 403
            log = await http.get("/v1/admin/audit", params={"action": "price.set"}, headers=admin)
            conforms(doc, log)
            entries = [e for e in log.json()["entries"] if e["subject"] == "ETH"]
            assert entries and entries[0]["actor"] == "root"
            assert entries[0]["detail"] == {"price_usd": "2000.5"}

            # the live figures: admins only
            assert (await http.get("/v1/admin/figures", headers=token(me))).status_code == 403
            figures = await http.get("/v1/admin/figures", headers=admin)
            conforms(doc, figures)
            seen = figures.json()
            assert [q["queue"] for q in seen["queues"]] == sorted(state.play.queues)
            # (the distributed tests share a database: other tests' matches are counted)
            assert set(seen["matches"]) == {"ready_check", "allocating", "live"}
            assert all(type(n) is int and n >= 0 for n in seen["matches"].values())
            assert seen["ledger"]["transfers_written"] >= 1  # the funding above
            assert seen["connections"] == 0  # REST only so far

            # the reconciliation report: admins only, and clean
            refused = await http.get("/v1/admin/reconciliation", headers=token(me))
            assert refused.status_code == 403
            report = await http.get("/v1/admin/reconciliation", headers=admin)
            conforms(doc, report)
            body = report.json()
            assert body["ok"] is True and body["problems_total"] == 0
            assert body["transfers"] >= 1 and "USD" in body["assets"]


async def test_history_pages_filters_and_transfers_are_the_players_own(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    me, other = f"h{secrets.token_hex(4)}", f"h{secrets.token_hex(4)}"
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            doc = (await http.get("/openapi.json")).json()
            ledger = state.ledger
            for n in range(12):
                await fund(ledger, me, "USD", 100 + n, n)
                await fund(ledger, me, "USDC", 1_000_000 + n, n)
            await fund(ledger, other, "USD", 7, 0)
            pool = accounts.prize_pool("t2", "USD")
            await ledger.create_accounts([pool])
            entry_id = derive_id("test.entry", me)
            [paid] = await ledger.create_transfers(
                [
                    Transfer(
                        entry_id,
                        accounts.user(me, "USD").id,
                        pool.id,
                        50,
                        "USD",
                        accounts.Code.ENTRY_FEE,
                    )
                ]
            )
            assert paid.result == "ok"

            seen: list[dict[str, Any]] = []
            cursor = None
            while True:
                params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
                page = await http.get("/v1/transactions", params=params, headers=token(me))
                assert page.status_code == 200, page.text
                conforms(doc, page)
                seen += page.json()["transactions"]
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == 25 and len({r["id"] for r in seen}) == 25
            stamps = [int(r["timestamp_ns"]) for r in seen]
            assert stamps == sorted(stamps, reverse=True)
            assert seen[0]["kind"] == "entry_fee" and seen[0]["amount"] == "-50"
            assert {r["asset"] for r in seen[1:]} == {"USD", "USDC"}

            usdc = (
                await http.get(
                    "/v1/transactions", params={"asset": "USDC", "limit": "100"}, headers=token(me)
                )
            ).json()["transactions"]
            assert len(usdc) == 12 and all(r["asset"] == "USDC" for r in usdc)
            fees = (
                await http.get("/v1/transactions", params={"kind": "entry_fee"}, headers=token(me))
            ).json()
            assert [r["id"] for r in fees["transactions"]] == [seen[0]["id"]]
            middle = stamps[10]
            window = (
                await http.get(
                    "/v1/transactions",
                    params={"since_ns": str(stamps[14]), "until_ns": str(middle), "limit": "100"},
                    headers=token(me),
                )
            ).json()["transactions"]
            assert [r["id"] for r in window] == [r["id"] for r in seen[10:15]]

            for params, code in [
                ({"cursor": "nonsense"}, "bad_cursor"),
                ({"kind": "loot"}, "bad_query"),
                ({"limit": "0"}, "bad_query"),
                ({"limit": "101"}, "bad_query"),
                ({"player": other}, "bad_query"),
                ({"asset": "DOGE"}, "unknown_asset"),
            ]:
                refused = await http.get("/v1/transactions", params=params, headers=token(me))
                assert (refused.status_code, refused.json()["code"]) == (422, code), params
                conforms(doc, refused)

            theirs = (await http.get("/v1/transactions", headers=token(other))).json()
            assert len(theirs["transactions"]) == 1 and theirs["transactions"][0]["amount"] == "7"

            link = seen[0]["ledger_transfer"]
            one = await http.get(link, headers=token(me))
            assert one.status_code == 200
            conforms(doc, one)
            assert one.json()["debit"] == {"kind": "user", "you": True}
            assert one.json()["credit"] == {"kind": "prize_pool", "you": False}
            hidden = await http.get(link, headers=token(other))
            assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
            assert (
                await http.get("/v1/transactions/not-an-id", headers=token(me))
            ).status_code == 404
            as_admin = (await http.get(link, headers=token("root", "admin"))).json()
            assert as_admin["debit"] == {"kind": "user", "owner": me}


async def test_rest_requests_are_limited_per_address_with_retry_after(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with serving_play(tmp_path, backends, QUEUES, rest_requests_per_min="5") as (
        ws_url,
        _,
    ):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            statuses = [(await http.get("/v1/prices")).status_code for _ in range(5)]
            assert statuses == [200] * 5
            limited = await http.get("/v1/wallet", headers=token("x"))
            assert limited.status_code == 429
            assert limited.headers["content-type"] == "application/problem+json"
            assert limited.json()["code"] == "rate_limited"
            assert 1 <= int(limited.headers["retry-after"]) <= 12  # one per 12 s comes back
            # probes are never limited
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200


async def test_the_openapi_document_is_valid_and_matches_the_routes(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, _state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            served = await http.get("/openapi.json")
            assert served.status_code == 200
            doc = served.json()
            validate_openapi(doc)
            page = await http.get("/docs")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            for path in doc["paths"]:
                assert f"<code>{path}</code>" in page.text
    # every documented wallet path is routed with the documented methods
    from leetgaming.app import create_app
    from leetgaming.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.sqlite3"))
    routed = {
        r.path: {m.lower() for m in (r.methods or ())} - {"head"}
        for r in app.routes
        if isinstance(r, Route)
    }
    for path, operations in doc["paths"].items():
        assert path in routed, f"{path} is documented but not routed"
        assert set(operations) <= routed[path], path
    for path in routed:
        if path.startswith(
            (
                "/v1/wallet",
                "/v1/transactions",
                "/v1/prices",
                "/v1/admin/prices",
                "/v1/admin/audit",
                "/v1/admin/reconciliation",
                "/v1/admin/figures",
            )
        ):
            assert path in doc["paths"], f"{path} is routed but not documented"


async def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    from leetgaming.app import create_app
    from leetgaming.settings import Settings

    from ..ws import serving

    plain = create_app(Settings(database_url=f"sqlite:///{tmp_path}/a.sqlite3"))
    behind_tls = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/b.sqlite3", public_url="https://lg.example/")
    )
    for app, hsts in [(plain, False), (behind_tls, True)]:
        async with (
            serving(app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            for response in [
                await http.get("/healthz"),
                await http.get("/docs"),
                await http.get("/v1/wallet"),  # a problem+json answer too
            ]:
                h = response.headers
                assert h["x-content-type-options"] == "nosniff"
                assert h["x-frame-options"] == "DENY"
                assert "frame-ancestors 'none'" in h["content-security-policy"]
                assert "script-src" not in h["content-security-policy"]  # default 'self'
                assert ("strict-transport-security" in h) is hsts


def test_the_card_form_opens_the_policy_to_stripe_only() -> None:
    from leetgaming.app import content_security_policy
    from leetgaming.settings import Settings

    cards = Settings(
        stripe_secret_key="sk_test_" + "x" * 24,
        stripe_webhook_secret="whsec_" + "x" * 24,
        stripe_publishable_key="pk_test_abc",
    )
    policy = dict(
        part.strip().split(" ", 1) for part in content_security_policy(cards).decode().split(";")
    )
    assert policy["script-src"] == "'self' https://js.stripe.com https://*.js.stripe.com"
    assert policy["frame-src"] == (
        "https://js.stripe.com https://hooks.stripe.com https://*.js.stripe.com"
    )
    assert policy["connect-src"] == "'self' https://api.stripe.com https://js.stripe.com"
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'self'"
    google = Settings(google_client_id="portal.apps.example")
    policy = dict(
        part.strip().split(" ", 1) for part in content_security_policy(google).decode().split(";")
    )
    assert policy["script-src"] == "'self' https://accounts.google.com"
    assert policy["frame-src"] == "https://accounts.google.com"
    assert policy["connect-src"] == "'self' https://accounts.google.com"
    assert policy["style-src"] == "'self' 'unsafe-inline' https://accounts.google.com"
    plain = content_security_policy(Settings()).decode()
    assert "stripe" not in plain and "frame-src 'none'" in plain
    with pytest.raises(SettingsError, match="needs LEETGAMING_STRIPE_SECRET_KEY"):
        Settings(stripe_publishable_key="pk_test_abc")
    with pytest.raises(SettingsError, match="publishable key"):
        Settings(stripe_publishable_key="sk_live_oops")
    for bad in ("http://js.example/v3/", "https://u:p@js.example/v3/", "javascript:alert(1)"):
        with pytest.raises(SettingsError, match="STRIPE_JS_URL"):
            Settings(stripe_js_url=bad)


async def test_conversions_at_the_price_table(tmp_path: Path, backends: dict[str, str]) -> None:
    from ledger import reconcile

    me = f"x{secrets.token_hex(4)}"
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            doc = (await http.get("/openapi.json")).json()
            await fund(state.ledger, me, "USD", 20_000, 1)
            await fund(state.ledger, me, "LEETCOIN", 50, 1)
            admin = token("root", "admin")
            assert (
                await http.put("/v1/admin/prices/ETH", json={"price_usd": "2000"}, headers=admin)
            ).status_code == 200

            def convert(body: dict[str, Any], key: str) -> Any:
                return http.post(
                    "/v1/conversions", json=body, headers=token(me) | {"Idempotency-Key": key}
                )

            body = {"from_asset": "USD", "to_asset": "ETH", "amount": "10000"}
            done = await convert(body, "c1")
            assert done.status_code == 201, done.text
            conforms(doc, done)
            assert done.json()["received"] == str(495 * 10**14)  # 0.05 ETH less 1 %
            assert done.json()["fee"] == str(5 * 10**14)
            again = await convert(body, "c1")
            assert again.json() == done.json() and again.headers["idempotent-replayed"] == "true"
            for bad, status, code in [
                (body | {"amount": "20000"}, 409, "insufficient_funds"),
                (body | {"to_asset": "USDT"}, 422, "unpriced_asset"),
                (
                    {"from_asset": "LEETCOIN", "to_asset": "USD", "amount": "5"},
                    422,
                    "not_convertible",
                ),
                (body | {"to_asset": "USD"}, 422, "same_asset"),
                (body | {"amount": "0"}, 422, "bad_amount"),
            ]:
                refused = await convert(bad, secrets.token_hex(4))
                assert (refused.status_code, refused.json()["code"]) == (status, code), bad
                conforms(doc, refused)
            wallet = (await http.get("/v1/wallet", headers=token(me))).json()
            held = {b["asset"]: b["total"] for b in wallet["balances"]}
            assert held == {"USD": "10000", "ETH": str(495 * 10**14)}
            assert (await reconcile(state.ledger.store)).ok


async def test_credits_granted_used_oldest_first_and_expired(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    import datetime as dt

    from ledger import reconcile

    me = f"k{secrets.token_hex(4)}"
    today = dt.datetime.now(dt.UTC).date()
    soon, later = today + dt.timedelta(days=2), today + dt.timedelta(days=10)
    async with serving_play(tmp_path, backends, QUEUES) as (ws_url, state):
        base = ws_url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            doc = (await http.get("/openapi.json")).json()
            admin = token("root", "admin")
            for n, (amount, day) in enumerate([(100, str(soon)), (50, str(later)), (30, None)]):
                granted = await http.post(
                    "/v1/admin/credits",
                    json={"player": me, "asset": "LEETCOIN", "amount": amount, "expires_on": day},
                    headers=admin | {"Idempotency-Key": f"g{n}"},
                )
                assert granted.status_code == 201, granted.text
                conforms(doc, granted)
            bad = await http.post(
                "/v1/admin/credits",
                json={"player": me, "asset": "LEETCOIN", "amount": 5, "expires_on": str(today)},
                headers=admin | {"Idempotency-Key": "g9"},
            )
            assert (bad.status_code, bad.json()["code"]) == (422, "bad_expiry")
            wallet = await http.get("/v1/wallet", headers=token(me))
            conforms(doc, wallet)
            [coins] = wallet.json()["credits"]
            assert (coins["asset"], coins["total"]) == ("LEETCOIN", "180")
            assert coins["expires"] == [
                {"on": str(soon), "amount": "100"},
                {"on": str(later), "amount": "50"},
            ]
            used = await http.post(
                "/v1/credits/use",
                json={"asset": "LEETCOIN", "amount": "120"},
                headers=token(me) | {"Idempotency-Key": "u1"},
            )
            assert used.status_code == 201 and used.json()["left"] == "60", used.text
            too_much = await http.post(
                "/v1/credits/use",
                json={"asset": "LEETCOIN", "amount": "61"},
                headers=token(me) | {"Idempotency-Key": "u2"},
            )
            assert (too_much.status_code, too_much.json()["code"]) == (409, "insufficient_credits")
            [coins] = (await http.get("/v1/wallet", headers=token(me))).json()["credits"]
            assert coins["expires"] == [{"on": str(later), "amount": "30"}]

            credits = state.credits
            assert await credits.expire_due() == 0  # nothing has expired yet
            credits.clock_s = lambda: time.time() + 11 * 86400
            assert await credits.expire_due() >= 1
            assert await credits.expire_due() == 0  # once
            [coins] = (await http.get("/v1/wallet", headers=token(me))).json()["credits"]
            assert (coins["total"], coins["expires"]) == ("30", [])
            history = (
                await http.get(
                    "/v1/transactions", params={"kind": "credit_expiry"}, headers=token(me)
                )
            ).json()["transactions"]
            assert [(r["amount"], r["asset"]) for r in history] == [("-30", "LEETCOIN")]
            assert (await reconcile(state.ledger.store)).ok
