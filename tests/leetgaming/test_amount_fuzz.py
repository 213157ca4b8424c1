"""Amount fuzzing of the REST API (security review, item 6): the real app under a real uvicorn
server, on a PostgreSQL database of this file's own and Redis, with localstripe for cards.

Every endpoint that takes an amount (``POST /v1/conversions``, ``/v1/credits/use``,
``/v1/admin/credits``, ``/v1/deposits``, ``/v1/withdrawals`` and the ``entry_fee`` of
``/v1/admin/tournaments``) is sent a fixed list of hostile amounts (signs, fractions, exponents,
NaN and the infinities as raw JSON literals, -0, booleans, null, 2^63, 2^64, 10^30, 2^128,
empty, containers, huge and padded strings, non-ASCII digits, wrong scales), then amounts drawn
by Hypothesis (derandomized, bounded examples), then wrong asset codes with a valid amount. It
proves that:

- every answer is 2xx or 4xx, within the client's 15 s timeout (never a 5xx, never a hang), a
  4xx is ``application/problem+json`` with a ``code``, and on a documented path the answer is
  one the OpenAPI document declares (the tournaments' paths are not in it);
- an amount is accepted exactly when it is a whole number of the smallest unit, 1..2^128 - 1, as
  a JSON integer or a string of ASCII digits (JSON integers above 2^64 - 1, which the parser
  does not read as integers, are refused): anything else is refused, never coerced, and an
  accepted amount is the one that was sent;
- a refused request changes nothing: after the run the ledger reconciles and every player's
  balances are what the accepted requests alone explain;
- an entry fee the ledger cannot hold (past 2^128 - 1, an unknown asset) never reaches a
  player as a 5xx, and a grant past what the issuing account can record is a clean 4xx.

Without Stripe configured, a valid card deposit is the documented 503 ``payments_unavailable``
and an invalid one still a 422 ``bad_amount``. The server runs in a thread of its own (its
event loop there), so that Hypothesis drives it with a plain synchronous client from ``@given``
functions inside the tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Transfer, derive_id, reconcile
from leetgaming.tokens import issue_access_token
from wallet import accounts
from wallet.credits import GRANT_AMOUNT_MAX

from .openapi_check import conforms, template_of
from .test_deposits import SK, WHSEC, pay, send_webhooks, state_of
from .test_play import SECRET, serving_play
from .test_wallet_api import QUEUES

T = TypeVar("T")

AMOUNT_MAX = (1 << 128) - 1
JSON_INT_MAX = (1 << 64) - 1  # larger JSON integers are not read as integers: send strings
REQUEST_TIMEOUT_S = 15.0
REFUSED_AS: frozenset[str] = frozenset({"bad_amount", "bad_json", "body_too_large"})
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Raw JSON text of each amount, so that NaN, Infinity and -0 go on the wire as written.
HOSTILE_AMOUNTS: list[str] = [
    "-1",
    "0",
    "-0",
    "-0.0",
    "0.0",
    "0.001",
    "0.01",
    "1.5",
    "10.0",
    "1e3",
    "1E3",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[10]",
    '{"amount": 10}',
    str(2**63 - 1),
    str(2**63),
    str(JSON_INT_MAX),
    str(JSON_INT_MAX + 1),
    str(10**30),
    str(-(2**63)),
    json.dumps("10"),
    json.dumps("0010"),
    json.dumps(" 10"),
    json.dumps("10 "),
    json.dumps("10\n"),
    json.dumps("+10"),
    json.dumps("-10"),
    json.dumps("10.0"),
    json.dumps("0.01"),
    json.dumps("1.5"),
    json.dumps("1e3"),
    json.dumps("1_000"),
    json.dumps("0x10"),
    json.dumps("NaN"),
    json.dumps("Infinity"),
    json.dumps(""),
    json.dumps("0"),
    json.dumps("00"),
    json.dumps("\u0661\u0660"),  # Arabic-Indic digits: isdigit(), int() reads 10
    json.dumps("\uff11\uff10"),  # fullwidth digits
    json.dumps("²"),  # isdigit(), but int() cannot read it
    '"\\ud800"',  # a lone surrogate: not UTF-8 text
    json.dumps(str(AMOUNT_MAX)),
    json.dumps(str(AMOUNT_MAX + 1)),
    json.dumps("9" * 40),
    json.dumps("9" * 41),
    json.dumps("1" * 5_000),  # past int()'s 4300-digit limit, under the body limit
    json.dumps("1" * 20_000),  # past the body limit
]

# Asset codes that are not the one the endpoint needs (plus junk): each must be refused.
WRONG_ASSETS: list[str] = [
    '"usd"',
    '"USD "',
    '" USD"',
    '"US"',
    '"DOGE"',
    '""',
    '"USDUSDUSDUSDUSDUSDUSDUSDUSDUSDUSDUSD"',
    '"\uff35\uff33\uff24"',  # fullwidth
    '"USD\\u0000"',
    "null",
    "5",
    "true",
    "[]",
    '{"code": "USD"}',
]


def whole(raw: str) -> int | None:
    """The amount ``raw`` (JSON text) is when it is a valid one, else None (the oracle)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if type(value) is int:
        return value if 1 <= value <= JSON_INT_MAX else None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,40}", value):
        amount = int(value)
        return amount if 1 <= amount <= AMOUNT_MAX else None
    return None


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=50),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )


def amounts() -> st.SearchStrategy[str]:
    """Raw JSON text of amounts: numbers, digit strings (valid and not), text, any JSON."""
    return st.one_of(
        st.sampled_from(HOSTILE_AMOUNTS),
        st.integers().map(str),
        st.integers(min_value=1, max_value=10**8).map(str),
        st.integers(min_value=0, max_value=10**42).map(lambda n: json.dumps(str(n))),
        st.integers(min_value=1, max_value=10**8).map(lambda n: json.dumps(str(n))),
        st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
        st.text(max_size=60).map(json.dumps),
        st.from_regex(r"\A[ +\-]?[0-9]{0,12}([.,_eE][0-9]{0,4})?[ ]?\Z").map(json.dumps),
        json_values().map(json.dumps),
    )


def token(subject: str, role: str = "player") -> dict[str, str]:
    issued = issue_access_token(SECRET, subject, role, "s", int(time.time()), mfa=role == "admin")
    return {"Authorization": f"Bearer {issued}"}


@dataclass
class Served:
    """The app running in a thread of its own: its state, its URL, and a way to run a
    coroutine on its event loop."""

    loop: asyncio.AbstractEventLoop
    state: Any
    base: str

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)


@contextmanager
def running(tmp_path: Path, backends: dict[str, str], **options: str) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[Served] = concurrent.futures.Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        try:
            async with serving_play(
                tmp_path, backends, QUEUES, None, rest_requests_per_min="1000000", **options
            ) as (ws_url, state):
                base = ws_url.replace("ws://", "http://").removesuffix("/ws")
                started.set_result(Served(loop, state, base))
                await stop[0].wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield started.result(60)
    finally:
        if stop:
            loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)
        assert not thread.is_alive(), "the server did not stop"
        loop.close()


# this file's tests run on a PostgreSQL database of their own (the fuzzing grants huge amounts,
# which must not reach other tests' platform accounts) and Redis under the test's prefix
ON_POSTGRESQL = pytest.mark.parametrize("own_backends", ["distributed"], indirect=True)


def stripe_options(localstripe: str) -> dict[str, str]:
    return {
        "stripe_secret_key": SK,
        "stripe_webhook_secret": WHSEC,
        "stripe_api_base": localstripe,
    }


async def fund(ledger: Any, player: str, asset: str, amount: int) -> None:
    """A deposit written straight into the ledger (setup, not under test)."""
    source, wallet = accounts.settlement(asset), accounts.user(player, asset)
    await ledger.create_accounts([source, wallet])
    [ok] = await ledger.create_transfers(
        [
            Transfer(
                derive_id("fuzz.deposit", player, asset),
                source.id,
                wallet.id,
                amount,
                asset,
                accounts.Code.DEPOSIT,
            )
        ]
    )
    assert ok.result == "ok", ok


class Api:
    """A synchronous client that checks every answer against the properties above."""

    def __init__(self, served: Served) -> None:
        self.served = served
        # a fresh connection per request: after a 500 the server drops the connection, which
        # must not fail the next request
        self.http = httpx.Client(
            base_url=served.base,
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.doc: dict[str, Any] = self.http.get("/openapi.json").json()

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: str, headers: dict[str, str]) -> httpx.Response:
        """POST the raw JSON ``body`` with a fresh Idempotency-Key (a hang fails the test:
        httpx raises on its timeout)."""
        return self.http.post(
            path,
            content=body.encode(),
            headers=headers
            | {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(12)},
        )

    def wrong(self, response: httpx.Response, sent: str) -> str | None:
        """What is wrong with ``response`` as an answer at all (None: nothing)."""
        status = response.status_code
        said = (
            f"{response.request.method} {response.request.url.path} {sent[:120]} -> {status} "
            f"{response.headers.get('content-type')} {response.text[:300]}"
        )
        if not (200 <= status < 300 or 400 <= status < 500):
            return f"neither 2xx nor 4xx: {said}"
        if status >= 400:
            if response.headers.get("content-type") != "application/problem+json":
                return f"a refusal that is not problem+json: {said}"
            code = response.json().get("code")
            if not isinstance(code, str) or not code:
                return f"a refusal without a code: {said}"
        try:
            template_of(self.doc, response.request.url.path)
        except AssertionError:
            return None  # an undocumented path (the tournaments'): nothing to hold it to
        try:
            conforms(self.doc, response)
        except (AssertionError, jsonschema.ValidationError) as exc:
            return f"not as documented ({str(exc).splitlines()[0]}): {said}"
        return None

    def judge(
        self,
        response: httpx.Response,
        sent: str,
        amount: int | None,
        refused_as: frozenset[str],
    ) -> str | None:
        """What is wrong with ``response`` to a request whose amount is ``amount`` (None: not
        a valid one, which must be refused with one of ``refused_as``)."""
        if (wrong := self.wrong(response, sent)) is not None:
            return wrong
        said = (
            f"{response.request.url.path} {sent[:120]} -> {response.status_code} "
            f"{response.text[:300]}"
        )
        code = response.json().get("code") if response.status_code >= 400 else None
        if amount is None and code not in refused_as:
            return f"an invalid amount was not refused as {sorted(refused_as)}: {said}"
        if amount is not None and code in {"bad_amount", "bad_json"}:
            return f"a valid amount was refused as {code}: {said}"
        return None

    def holdings(self, player: str) -> dict[str, tuple[int, int, int]]:
        """``player``'s (available, held, total) per asset, money and credits, that are not
        all zero."""
        wallet = self.http.get("/v1/wallet", headers=token(player))
        assert wallet.status_code == 200, wallet.text
        rows = wallet.json()["balances"] + wallet.json()["credits"]
        found = {r["asset"]: (int(r["available"]), int(r["held"]), int(r["total"])) for r in rows}
        return {a: v for a, v in found.items() if v != (0, 0, 0)}

    def reconciles(self) -> None:
        report = self.served.run(reconcile(self.served.state.ledger.store))
        assert report.ok, report.to_json()


@contextmanager
def api_on(served: Served) -> Iterator[Api]:
    api = Api(served)
    try:
        yield api
    finally:
        api.close()


def fuzz(
    api: Api,
    send: Callable[[str], tuple[httpx.Response, int | None]],
    refused_as: frozenset[str],
    accepted: Callable[[httpx.Response, int], str | None],
) -> list[str]:
    """Send every hostile amount, then Hypothesis' amounts, through ``send`` (the response
    and the valid amount it carried, or None); ``accepted`` checks and books a 2xx. What was
    wrong (every hostile amount's, and Hypothesis' shrunk first failure)."""

    def one(raw: str) -> str | None:
        response, amount = send(raw)
        if (wrong := api.judge(response, raw, amount, refused_as)) is not None:
            return wrong
        if 200 <= response.status_code < 300:
            assert amount is not None
            return accepted(response, amount)
        return None

    found = [w for raw in HOSTILE_AMOUNTS if (w := one(raw)) is not None]

    @FUZZ
    @given(amounts())
    def generated(raw: str) -> None:
        wrong = one(raw)
        assert wrong is None, wrong

    try:
        generated()
    except AssertionError as failed:
        found.append(f"Hypothesis: {failed}")
    return found


def wrong_assets(api: Api, path: str, bodies: list[str], headers: dict[str, str]) -> list[str]:
    """POST each body (a wrong asset code, a valid amount): each must be a clean refusal."""
    found = []
    for body in bodies:
        response = api.post(path, body, headers)
        wrong = api.wrong(response, body)
        if wrong is None and response.status_code < 400:
            wrong = f"a wrong asset was accepted: {path} {body} -> {response.text[:300]}"
        if wrong is not None:
            found.append(wrong)
    return found


def settle(found: list[str], holdings: object, expected: object) -> None:
    """Fail with everything found, and the balances when they are not what the accepted
    requests alone explain."""
    if holdings != expected:
        found.append(f"balances {holdings}, but the accepted requests explain {expected}")
    assert not found, "\n".join(found)


@ON_POSTGRESQL
def test_conversion_amounts(tmp_path: Path, own_backends: dict[str, str]) -> None:
    me = f"fc{secrets.token_hex(4)}"
    funded = 1_000_000  # $10,000
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        served.run(fund(served.state.ledger, me, "USD", funded))
        priced = api.http.put(
            "/v1/admin/prices/ETH", json={"price_usd": "2000"}, headers=token("root", "admin")
        )
        assert priced.status_code == 200, priced.text
        spent, received = [0], [0]

        def send(raw: str) -> tuple[httpx.Response, int | None]:
            body = f'{{"from_asset": "USD", "to_asset": "ETH", "amount": {raw}}}'
            return api.post("/v1/conversions", body, token(me)), whole(raw)

        def accepted(response: httpx.Response, amount: int) -> str | None:
            body = response.json()
            if (body["from_asset"], body["to_asset"], body["amount"]) != (
                "USD",
                "ETH",
                str(amount),
            ):
                return f"converted {body} for an amount of {amount}"
            spent[0] += amount
            received[0] += int(body["received"])
            return None

        found = fuzz(api, send, REFUSED_AS, accepted)
        found += wrong_assets(
            api,
            "/v1/conversions",
            [f'{{"from_asset": {c}, "to_asset": "ETH", "amount": "100"}}' for c in WRONG_ASSETS]
            + [f'{{"from_asset": "USD", "to_asset": {c}, "amount": "100"}}' for c in WRONG_ASSETS],
            token(me),
        )
        assert spent[0] > 0  # some conversions went through: the booking was exercised
        api.reconciles()
        left = funded - spent[0]
        expected = {"ETH": (received[0], 0, received[0])} | (
            {"USD": (left, 0, left)} if left else {}
        )
        settle(found, api.holdings(me), expected)


@ON_POSTGRESQL
def test_credit_use_amounts(tmp_path: Path, own_backends: dict[str, str]) -> None:
    me = f"fu{secrets.token_hex(4)}"
    granted = 1_000_000
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        first = api.post(
            "/v1/admin/credits",
            f'{{"player": "{me}", "asset": "LEETCOIN", "amount": "{granted}"}}',
            token("root", "admin"),
        )
        assert first.status_code == 201, first.text
        used = [0]

        def send(raw: str) -> tuple[httpx.Response, int | None]:
            body = f'{{"asset": "LEETCOIN", "amount": {raw}}}'
            return api.post("/v1/credits/use", body, token(me)), whole(raw)

        def accepted(response: httpx.Response, amount: int) -> str | None:
            if response.json()["used"] != str(amount):
                return f"used {response.json()} for an amount of {amount}"
            used[0] += amount
            return None

        found = fuzz(api, send, REFUSED_AS, accepted)
        found += wrong_assets(
            api,
            "/v1/credits/use",
            [f'{{"asset": {c}, "amount": "1"}}' for c in [*WRONG_ASSETS, '"USD"', '"ETH"']],
            token(me),
        )
        assert used[0] > 0
        api.reconciles()
        left = granted - used[0]
        settle(found, api.holdings(me), {"LEETCOIN": (left, 0, left)} if left else {})


@ON_POSTGRESQL
def test_credit_grant_amounts(tmp_path: Path, own_backends: dict[str, str]) -> None:
    player = f"fg{secrets.token_hex(4)}"
    admin = token("root", "admin")
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        granted = [0]

        def send(raw: str) -> tuple[httpx.Response, int | None]:
            body = f'{{"player": "{player}", "asset": "LEETCOIN", "amount": {raw}}}'
            amount = whole(raw)  # and a grant is at most GRANT_AMOUNT_MAX
            valid = amount if amount is not None and amount <= GRANT_AMOUNT_MAX else None
            return api.post("/v1/admin/credits", body, admin), valid

        def accepted(response: httpx.Response, amount: int) -> str | None:
            if response.json()["amount"] != str(amount):
                return f"granted {response.json()} for an amount of {amount}"
            granted[0] += amount
            return None

        found = fuzz(api, send, REFUSED_AS, accepted)
        found += wrong_assets(
            api,
            "/v1/admin/credits",
            [
                f'{{"player": "{player}", "asset": {c}, "amount": "1"}}'
                for c in [*WRONG_ASSETS, '"USD"', '"ETH"']
            ],
            admin,
        )
        assert granted[0] > 0
        api.reconciles()
        settle(found, api.holdings(player), {"LEETCOIN": (granted[0], 0, granted[0])})


@ON_POSTGRESQL
def test_a_grant_past_the_grant_limit_is_refused_cleanly(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    """A grant over GRANT_AMOUNT_MAX (2^128 - 1 once used up the issuing account, shared by
    every grant of an asset, so that every later grant failed with a 500) is a clean 422, and
    grants after it still work; nothing moves."""
    admin = token("root", "admin")
    rich, other = f"fr{secrets.token_hex(4)}", f"fo{secrets.token_hex(4)}"
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        for amount in (AMOUNT_MAX, GRANT_AMOUNT_MAX + 1):
            body = f'{{"player": "{rich}", "asset": "XP_BOOST", "amount": "{amount}"}}'
            refused = api.post("/v1/admin/credits", body, admin)
            assert (refused.status_code, refused.json()["code"]) == (422, "bad_amount")
        body = f'{{"player": "{other}", "asset": "XP_BOOST", "amount": "{GRANT_AMOUNT_MAX}"}}'
        granted = api.post("/v1/admin/credits", body, admin)
        assert granted.status_code == 201, granted.text
        assert api.holdings(rich) == {}
        assert api.holdings(other) == {"XP_BOOST": (GRANT_AMOUNT_MAX, 0, GRANT_AMOUNT_MAX)}
        api.reconciles()


@ON_POSTGRESQL
def test_card_deposit_amounts(
    tmp_path: Path, own_backends: dict[str, str], localstripe: str
) -> None:
    me = f"fd{secrets.token_hex(4)}"
    with (
        running(tmp_path, own_backends, **stripe_options(localstripe)) as served,
        api_on(served) as api,
    ):
        made: list[str] = []

        def send(raw: str) -> tuple[httpx.Response, int | None]:
            body = f'{{"method": "card", "asset": "USD", "amount": {raw}}}'
            return api.post("/v1/deposits", body, token(me)), whole(raw)

        def accepted(response: httpx.Response, amount: int) -> str | None:
            body = response.json()
            if body["amount"] != str(amount) or not 100 <= amount <= 1_000_000:
                return f"a deposit {body} for an amount of {amount}"
            made.append(body["id"])
            return None

        found = fuzz(api, send, REFUSED_AS, accepted)
        found += wrong_assets(
            api,
            "/v1/deposits",
            [
                f'{{"method": "card", "asset": {c}, "amount": "1000"}}'
                for c in [*WRONG_ASSETS, '"ETH"', '"LEETCOIN"']
            ],
            token(me),
        )
        assert made  # some were accepted: they wait for the card, nothing is in the wallet
        api.reconciles()
        settle(found, api.holdings(me), {})


@ON_POSTGRESQL
def test_card_deposit_amounts_without_stripe(tmp_path: Path, own_backends: dict[str, str]) -> None:
    """Without Stripe, an invalid amount is still a 422 bad_amount; a valid one is the
    documented 503 payments_unavailable (the one 5xx allowed here), and nothing moves."""
    me = f"fn{secrets.token_hex(4)}"
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        found = []
        for raw in [*HOSTILE_AMOUNTS, '"100"', "100", '"1000000"']:
            body = f'{{"method": "card", "asset": "USD", "amount": {raw}}}'
            response = api.post("/v1/deposits", body, token(me))
            if whole(raw) is None:
                wrong = api.judge(response, raw, None, REFUSED_AS)
            elif (
                response.status_code,
                response.headers.get("content-type"),
                response.json().get("code"),
            ) != (503, "application/problem+json", "payments_unavailable"):
                wrong = f"{raw} -> {response.status_code} {response.text[:300]}"
            else:
                try:
                    conforms(api.doc, response)
                    wrong = None
                except (AssertionError, jsonschema.ValidationError) as exc:
                    wrong = f"{raw}: an undocumented 503 ({exc})"
            if wrong is not None:
                found.append(wrong)
        api.reconciles()
        settle(found, api.holdings(me), {})


@ON_POSTGRESQL
def test_withdrawal_amounts(tmp_path: Path, own_backends: dict[str, str], localstripe: str) -> None:
    me = f"fw{secrets.token_hex(4)}"
    sdk = stripe.StripeClient(SK, base_addresses={"api": localstripe})
    with (
        running(tmp_path, own_backends, **stripe_options(localstripe)) as served,
        api_on(served) as api,
    ):

        async def deposit() -> dict[str, Any]:
            async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
                await send_webhooks(http, localstripe, served.base)
                made = await http.post(
                    "/v1/deposits",
                    json={"method": "card", "asset": "USD", "amount": "1000000"},
                    headers=token(me) | {"Idempotency-Key": secrets.token_hex(8)},
                )
                assert made.status_code == 201, made.text
                await pay(sdk, made.json()["payment_intent"], "4242424242424242")
                return await state_of(http, me, made.json()["id"], "succeeded")

        # a real card deposit to refund to (this thread's loop; the server's serves it)
        card = asyncio.run(deposit())
        [(available, held, total)] = api.holdings(me).values()
        assert held == 0 and available == total > 0
        withdrawn = [0]

        def send(raw: str) -> tuple[httpx.Response, int | None]:
            body = (
                f'{{"asset": "USD", "amount": {raw}, "rail": "card_refund", '
                f'"destination": "{card["id"]}"}}'
            )
            return api.post("/v1/withdrawals", body, token(me)), whole(raw)

        def accepted(response: httpx.Response, amount: int) -> str | None:
            body = response.json()
            if body["amount"] != str(amount) or body["state"] in {"failed", "rejected"}:
                return f"a withdrawal {body} for an amount of {amount}"
            withdrawn[0] += amount
            return None

        found = fuzz(api, send, REFUSED_AS, accepted)
        found += wrong_assets(
            api,
            "/v1/withdrawals",
            [
                f'{{"asset": {c}, "amount": "1000", "rail": "card_refund", '
                f'"destination": "{card["id"]}"}}'
                for c in [*WRONG_ASSETS, '"ETH"', '"LEETCOIN"']
            ],
            token(me),
        )
        assert withdrawn[0] > 0
        api.reconciles()
        # an accepted withdrawal holds (or has paid out) its amount: no longer available
        seen = {a: v[0] for a, v in api.holdings(me).items()}
        settle(found, seen, {"USD": available - withdrawn[0]})


def tournament(fee_asset: str, fee_amount: str, prize_asset: str = '"USD"') -> str:
    return (
        '{"name": "fuzz", "queue": "cs2:1v1:eu", "team_size": 1, '
        '"format": {"kind": "single_elimination"}, '
        f'"entry_fee": {{"asset": {fee_asset}, "amount": {fee_amount}}}, '
        f'"prize_asset": {prize_asset}, "payout_bps": [10000], "participants_min": 2, '
        '"participants_max": 8}'
    )


@ON_POSTGRESQL
def test_tournament_entry_fee_amounts(tmp_path: Path, own_backends: dict[str, str]) -> None:
    admin = token("root", "admin")
    watched = f"ft{secrets.token_hex(4)}"
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        served.run(fund(served.state.ledger, watched, "USD", 5_000))
        valid = api.post("/v1/admin/tournaments", tournament('"USD"', '"500"'), admin)
        assert valid.status_code == 201, valid.text
        assert valid.json()["entry_fee"] == {"asset": "USD", "amount": "500"}, valid.text

        def send(raw: str) -> tuple[httpx.Response, int | None]:
            return api.post("/v1/admin/tournaments", tournament('"USD"', raw), admin), whole(raw)

        def accepted(response: httpx.Response, amount: int) -> str | None:
            fee = response.json()["entry_fee"]
            if fee != {"asset": "USD", "amount": str(amount)}:
                return f"the entry fee {fee} for an amount of {amount}"
            return None

        found = fuzz(api, send, frozenset({"bad_config", "bad_json", "body_too_large"}), accepted)
        found += wrong_assets(
            api,
            "/v1/admin/tournaments",
            [tournament(c, '"500"', c) for c in WRONG_ASSETS]
            + [tournament('"USD"', '"500"', c) for c in WRONG_ASSETS],
            admin,
        )
        api.reconciles()
        settle(found, api.holdings(watched), {"USD": (5_000, 0, 5_000)})


@ON_POSTGRESQL
def test_a_fee_the_ledger_cannot_hold_is_refused_before_a_player_pays(
    tmp_path: Path, own_backends: dict[str, str]
) -> None:
    """A tournament whose entry fee is past 2^128 - 1 or in an asset that does not exist must
    be refused when it is created, or else a player's registration must be a clean 4xx; either
    way no money moves."""
    admin = token("root", "admin")
    with running(tmp_path, own_backends) as served, api_on(served) as api:
        found = []
        for asset, amount in [('"USD"', json.dumps("9" * 40)), ('"DOGE"', '"500"')]:
            created = api.post("/v1/admin/tournaments", tournament(asset, amount, asset), admin)
            if (wrong := api.wrong(created, created.request.content.decode())) is not None:
                found.append(wrong)
                continue
            if created.status_code >= 400:
                continue  # refused at once: what is asked
            tid = created.json()["id"]
            opened = api.post(f"/v1/admin/tournaments/{tid}/open-registration", "{}", admin)
            assert opened.status_code == 200, opened.text
            player = f"fp{secrets.token_hex(4)}"
            served.run(fund(served.state.ledger, player, "USD", 10_000))
            registered = api.post(f"/v1/tournaments/{tid}/registration", "{}", token(player))
            if (wrong := api.wrong(registered, f"fee {asset} {amount}")) is not None:
                found.append(f"created, then {wrong}")
            if (seen := api.holdings(player)) != {"USD": (10_000, 0, 10_000)}:
                found.append(f"fee {asset} {amount}: the player's balances became {seen}")
        api.reconciles()
        assert not found, "\n".join(found)
