"""``leetgaming simulate``: bot players and bot game servers on a running server, through its
real websocket protocol and REST API.

Players (each with a hidden true skill, :mod:`leetgaming.sim_model`) deposit by card, queue,
accept their ready checks (a few decline), and enter the tournaments an admin bot creates;
game servers host the matches they are assigned, send the live score round by round and
report results signed with their key, drawn from the players' true skills. At the end: the
matches, the queue waits, how far the ratings are from the true skills, the tournaments
completed, the prizes paid and the ledger's reconciliation.

The accounts are made through the server's own database (the operator's path, as
``leetgaming admin create``): sign-up by mail is limited per address, and a simulation's
players all come from one. Everything after that goes over HTTP and the websocket: the bots
refresh their tokens, the admin enrols TOTP and signs in with it. Card payments go to the
Stripe-compatible API the server uses (``LEETGAMING_STRIPE_API_BASE``: localstripe in the
demo), with Stripe's test card ``pm_card_visa``, as Stripe.js would in a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from leetgaming import sim_model as model
from leetgaming.identity import Identity, Session
from leetgaming.play import result_message
from leetgaming.totp import STEP_S, code_at

log = logging.getLogger("leetgaming.simulate")

PONG: Final = b'{"v":1,"type":"pong"}'
HTTP_TIMEOUT_S: Final = 30.0
RETRIES_429_MAX: Final = 8
RETRY_AFTER_MAX_S: Final = 30.0
RECONNECT_DELAY_S: Final = 1.0
CALL_TIMEOUT_S: Final = 30.0
TOKEN_MARGIN_S: Final = 60.0  # refresh this long before a token expires
TOURNAMENT_TIMEOUT_S: Final = 900.0
PAYMENT_TIMEOUT_S: Final = 60.0
TEST_CARD: Final = "pm_card_visa"  # Stripe's test card (localstripe knows it too)
SERVER_CAPACITY: Final = 16  # matches at once
BACK_OFF_S: Final = {"cooldown": 30.0, "rate_limited": 10.0}
REGISTRATION_S: Final = 10.0  # a tournament's registration stays open this long at most
CHAT_LINES: Final = ("gg", "gg wp", "close one", "nice shots", "rematch?", "glhf next", "ez")
FORMATS: Final = ("double_elimination", "single_elimination", "swiss")


@dataclass(frozen=True, slots=True)
class Options:
    base_url: str  # the server, http://host:port
    seed: int = 1
    players: int = 16
    servers: int = 2
    duration_s: float | None = 60.0  # None: until stopped
    queue: str = "cs2:1v1:eu"
    rest_s: float = 3.0  # a bot's mean pause between matches
    round_s: float = 0.3  # a simulated round's length
    decline_rate: float = 0.02  # of matchmade ready checks
    chat_rate: float = 0.2  # of matches after which a player says something in the lobby
    deposit_usd_cents: int = 2_000
    tournament_every_s: float = 60.0  # 0: no tournaments
    tournament_size: int = 8
    entry_fee_usd_cents: int = 500
    stripe_api_base: str | None = None  # None: no card deposits
    stripe_key: str = ""
    progress_s: float = 5.0  # 0: no progress lines
    run: str = ""  # names this run's accounts; random when empty

    @property
    def region(self) -> str:
        return self.queue.rsplit(":", 1)[-1]

    @property
    def mode(self) -> str:
        return self.queue.rsplit(":", 1)[0]


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# REST ------------------------------------------------------------------------------------


class Rest:
    """The server's REST API; a 429 waits its ``Retry-After`` and tries again."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S)
        self.calls = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        for _ in range(RETRIES_429_MAX):
            self.calls += 1
            try:
                answer = await self.http.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as failed:
                raise ConnectionError(f"{method} {path}: {failed}") from failed
            if answer.status_code != 429:
                break
            await asyncio.sleep(min(float(answer.headers.get("Retry-After", 1)), RETRY_AFTER_MAX_S))
        if answer.status_code == 204:
            return {}
        try:
            payload: dict[str, Any] = answer.json()
        except ValueError:
            raise ConnectionError(f"{method} {path}: {answer.status_code}, not JSON") from None
        if answer.status_code >= 400:
            raise Refused(str(payload.get("code", answer.status_code)), str(payload.get("detail")))
        return payload


# Websocket -------------------------------------------------------------------------------


Handler = Callable[[str, dict[str, Any]], None]


class Socket:
    """One websocket connection that authenticates, subscribes, answers pings, correlates
    ``rpc`` answers, and after a cut reconnects and recovers its channels from the last
    offset it saw (the protocol's recovery), as the portal does."""

    def __init__(
        self,
        ws_url: str,
        token: Callable[[], str | None],
        on_pub: Handler,
        hello: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.token = token
        self.on_pub = on_pub
        self.hello = hello  # an rpc made after every auth, before subscribing (a server's register)
        self.channels: dict[str, tuple[int, str] | None] = {}  # channel -> (offset, epoch)
        self.ws: ClientConnection | None = None
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ready = asyncio.Event()
        self.ids = 0
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    async def start(self, channels: list[str]) -> None:
        for ch in channels:
            self.channels.setdefault(ch, None)
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), CALL_TIMEOUT_S)

    async def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def _next_id(self) -> str:
        self.ids += 1
        return str(self.ids)

    async def _run(self) -> None:
        while not self.stopping:
            try:
                async with connect(
                    self.ws_url, open_timeout=CALL_TIMEOUT_S, origin=_origin_of(self.ws_url)
                ) as ws:
                    self.ws = ws
                    await self._open(ws)
                    self.ready.set()
                    async for raw in ws:
                        frame = orjson.loads(raw)
                        if frame.get("type") == "ping":
                            await ws.send(PONG)
                        else:
                            self._dispatch(frame)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code is not None and 4500 <= code <= 4999:  # the protocol: do not reconnect
                    log.warning("the server closed a bot's socket for good (%s)", code)
                    self.stopping = True
            except (OSError, TimeoutError, Refused) as cut:
                log.debug("socket cut: %s", cut)
            finally:
                self.ready.clear()
                self.ws = None
                for fut in self.pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("the connection was cut"))
                self.pending.clear()
            if not self.stopping:
                await asyncio.sleep(RECONNECT_DELAY_S)

    async def _request(self, ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
        await ws.send(orjson.dumps(frame))
        while True:
            answer: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), CALL_TIMEOUT_S))
            if answer.get("type") == "ping":
                await ws.send(PONG)
            elif answer.get("type") == "pub":
                self._dispatch(answer)
            elif (
                answer.get("id") == frame["id"] or answer.get("data", {}).get("ref") == frame["id"]
            ):
                return answer

    async def _open(self, ws: ClientConnection) -> None:
        token = self.token()
        auth: dict[str, Any] = {"v": 1, "type": "auth", "id": self._next_id()}
        if token is not None:
            auth["data"] = {"token": token}
        answer = await self._request(ws, auth)
        if answer["type"] != "auth_ok":
            raise Refused("auth", str(answer.get("data")))
        if self.hello is not None:
            method, params = self.hello
            call = {"v": 1, "type": "rpc", "id": self._next_id()}
            call["data"] = {"method": method, "params": params}
            answer = await self._request(ws, call)
            if answer["type"] != "rpc_result":
                raise Refused(method, str(answer.get("data")))
        for ch, since in list(self.channels.items()):
            frame: dict[str, Any] = {"v": 1, "type": "subscribe", "id": self._next_id(), "ch": ch}
            if since is not None:
                frame["data"] = {"since_offset": since[0], "since_epoch": since[1]}
            answer = await self._request(ws, frame)
            if answer["type"] != "subscribed":
                raise Refused("subscribe", str(answer.get("data")))
            data = answer["data"]
            for pub in data["publications"]:
                self._dispatch(pub)
            if not data["recovered"] or since is None:
                self.channels[ch] = (data["offset"], data["epoch"])

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "pub":
            ch, data = frame["ch"], frame["data"]
            seen = self.channels.get(ch)
            if seen is not None and data["epoch"] == seen[1] and data["offset"] <= seen[0]:
                return  # already handled (a recovery overlapping what came live)
            self.channels[ch] = (data["offset"], data["epoch"])
            try:
                self.on_pub(ch, data["body"])
            except Exception:  # one odd publication must not end the connection's loop
                log.exception("a bot could not handle a publication on %s", ch)
        elif kind == "disconnect":
            pass  # the close follows; the loop reconnects
        else:
            ref = frame.get("id") or frame.get("data", {}).get("ref")
            fut = self.pending.pop(str(ref), None) if ref is not None else None
            if fut is not None and not fut.done():
                fut.set_result(frame)

    async def send(self, frame_type: str, ch: str | None = None, **data: Any) -> dict[str, Any]:
        """Send a frame and wait for its answer; :class:`Refused` with the server's code, or
        :class:`ConnectionError` when the socket is not there or was cut meanwhile."""
        await asyncio.wait_for(self.ready.wait(), CALL_TIMEOUT_S)
        ws = self.ws
        if ws is None:
            raise ConnectionError("not connected")
        ref = self._next_id()
        frame: dict[str, Any] = {"v": 1, "type": frame_type, "id": ref, "data": data}
        if ch is not None:
            frame["ch"] = ch
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ref] = fut
        try:
            await ws.send(orjson.dumps(frame))
        except ConnectionClosed as cut:
            self.pending.pop(ref, None)
            raise ConnectionError("the connection was cut") from cut
        answer = await asyncio.wait_for(fut, CALL_TIMEOUT_S)
        if answer["type"] == "error":
            raise Refused(answer["data"]["code"], answer["data"]["message"])
        return answer

    async def rpc(self, method: str, **params: Any) -> dict[str, Any]:
        answer = await self.send("rpc", method=method, params=params)
        result: dict[str, Any] = answer["data"]["result"]
        return result


# The world ---------------------------------------------------------------------------------


@dataclass
class Figures:
    deposits: int = 0
    deposited_usd_cents: int = 0  # credited, after the fee
    joins: int = 0
    waits_s: list[float] = field(default_factory=list)  # queue.join answered -> match.found
    declined: int = 0
    matches_finished: int = 0  # results the game servers had accepted
    tournament_matches: int = 0
    tournaments_created: int = 0
    tournaments_completed: int = 0
    prizes_paid_usd_cents: int = 0
    refusals: Counter[str] = field(default_factory=Counter)


@dataclass
class Player:
    index: int
    subject: str
    email: str
    skill: float
    session: Session
    expires_at: float = 0.0
    socket: Socket | None = None
    state: str = "idle"  # idle, queued, tournament
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    funded: bool = False
    credited: set[str] = field(default_factory=set)  # deposits seen credited
    deposits: int = 0  # asked for

    @property
    def token(self) -> str:
        return self.session.access_token


@dataclass
class Server:
    id: str
    key: str
    token: str = ""
    expires_at: float = 0.0
    socket: Socket | None = None
    live: set[str] = field(default_factory=set)


_PASSWORDS: dict[str, str] = {}


def password_of(run: str) -> str:
    """The run's accounts' password: random, kept in this process only (never derived from
    anything an account shows)."""
    return _PASSWORDS.setdefault(run, secrets.token_urlsafe(24))


def _origin_of(ws_url: str) -> Origin:
    """The Origin of the server's own pages (it refuses websockets from other origins)."""
    scheme, rest = ws_url.split("://", 1)
    return Origin(("https" if scheme == "wss" else "http") + "://" + rest.split("/", 1)[0])


def _ws_url(base_url: str) -> str:
    return base_url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/ws"


def sign(key: str, match: str, ranks: list[int]) -> str:
    """The result's signature: HMAC-SHA256 of the canonical message, keyed with the hex
    SHA-256 of the server's key (docs/PROTOCOL.md)."""
    secret = hashlib.sha256(key.encode()).hexdigest()
    return hmac.new(secret.encode(), result_message(match, ranks), hashlib.sha256).hexdigest()


async def provision(identity: Identity, options: Options, run: str) -> tuple[Session, list[Any]]:
    """The run's admin (signed in with its password only) and players' sessions, made through
    the server's database: ``[(index, email, session)]``."""
    admin_email = f"sim-{run}-admin@simulation.example"
    password = password_of(run)
    await identity.create_account(admin_email, password, "admin")
    admin = await identity.login(admin_email, password)

    async def player(i: int) -> tuple[int, str, Session]:
        email = f"sim-{run}-{i}@simulation.example"
        await identity.create_account(email, password, "player")
        return i, email, await identity.login(email, password)

    made = await asyncio.gather(*(player(i) for i in range(options.players)))
    return admin, list(made)


class Simulation:
    def __init__(self, options: Options, out: TextIO = sys.stderr) -> None:
        self.o = options
        self.out = out
        self.rng = random.Random(options.seed)
        self.rest = Rest(options.base_url)
        self.ws_url = _ws_url(options.base_url)
        self.figures = Figures()
        self.players: list[Player] = []
        self.servers: list[Server] = []
        self.skills: dict[str, float] = {}
        self.admin: Session | None = None
        self.admin_expires_at = 0.0
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopping = asyncio.Event()
        self.started_at = 0.0
        self.tournaments_open: set[int] = set()
        self.running: dict[int, str] = {}  # tournament number -> id, until it ends

    # Setting up ----------------------------------------------------------------------------

    async def setup(self, identity: Identity) -> None:
        run = self.o.run or secrets.token_hex(4)
        admin, made = await provision(identity, self.o, run)
        await self._admin_with_totp(admin, password_of(run))
        for i, email, session in made:
            skill = model.true_skill(self.rng)
            p = Player(
                i, session.subject, email, skill, session, time.monotonic() + session.expires_in_s
            )
            self.players.append(p)
            self.skills[p.subject] = skill
        for i in range(self.o.servers):
            issued = await self.rest.call(
                "POST", "/v1/admin/game-servers", self._admin_token(), {"name": f"sim-{run}-gs{i}"}
            )
            self.servers.append(Server(issued["id"], issued["key"]))

    async def _admin_with_totp(self, session: Session, password: str) -> None:
        """Enrol TOTP over REST (an admin must), then sign in again with a code."""
        enrolled = await self.rest.call("POST", "/v1/me/totp", session.access_token)
        secret = enrolled["secret"]
        await self.rest.call(
            "POST",
            "/v1/me/totp/confirm",
            session.access_token,
            {"code": code_at(secret, time.time())},
        )
        me = await self.rest.call("GET", "/v1/me", session.access_token)
        # The next step's code: the one just used may not be used again (within the drift)
        signed = await self.rest.call(
            "POST",
            "/v1/auth/login",
            body={
                "email": me["email"],
                "password": password,
                "totp": code_at(secret, time.time() + STEP_S),
            },
        )
        self.admin = Session(
            signed["subject"],
            signed["role"],
            signed["access_token"],
            int(signed["expires_in"]),
            signed["refresh_token"],
        )
        self.admin_expires_at = time.monotonic() + self.admin.expires_in_s

    def _admin_token(self) -> str:
        assert self.admin is not None
        return self.admin.access_token

    async def _refreshed(self, session: Session) -> tuple[Session, float]:
        body = await self.rest.call(
            "POST", "/v1/auth/refresh", body={"refresh_token": session.refresh_token}
        )
        renewed = Session(
            body["subject"],
            body["role"],
            body["access_token"],
            int(body["expires_in"]),
            body["refresh_token"],
        )
        return renewed, time.monotonic() + renewed.expires_in_s

    # Running ---------------------------------------------------------------------------------

    async def run(self, identity: Identity) -> dict[str, Any]:
        """Set up, run for the duration (or until :meth:`stop`), and sum up."""
        try:
            await self.setup(identity)
            self.started_at = time.monotonic()
            for s in self.servers:
                await self._start_server(s)
            await asyncio.gather(*(self._start_player(p) for p in self.players))
            self.tasks += [asyncio.create_task(self._player_loop(p)) for p in self.players]
            self.tasks.append(asyncio.create_task(self._tokens_loop()))
            if self.o.tournament_every_s > 0:
                self.tasks.append(asyncio.create_task(self._tournaments_loop()))
            if self.o.progress_s > 0:
                self.tasks.append(asyncio.create_task(self._progress_loop()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.o.duration_s)
            self.stopping.set()
            return await self._finish()
        finally:
            # the sockets first (nothing new is heard), then every task, until none is left
            for sock in [p.socket for p in self.players] + [s.socket for s in self.servers]:
                if sock is not None:
                    await sock.stop()
            while self.tasks:
                pending = list(self.tasks)
                self.tasks.clear()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            await self.rest.close()

    def stop(self) -> None:
        self.stopping.set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a simulation task failed", exc_info=task.exception())

    def _elapsed(self) -> float:
        return time.monotonic() - self.started_at

    async def _tokens_loop(self) -> None:
        """Every token is renewed a minute before it expires, and given to its sockets; a
        renewal that fails is tried again on the next round."""
        while True:
            await asyncio.sleep(5)
            try:
                await self._renew_tokens()
            except (Refused, ConnectionError, TimeoutError) as failed:
                log.warning("a token could not be renewed yet: %s", failed)

    async def _renew_tokens(self) -> None:
        now = time.monotonic()
        if self.admin is not None and self.admin_expires_at - now < TOKEN_MARGIN_S:
            self.admin, self.admin_expires_at = await self._refreshed(self.admin)
        for p in self.players:
            if p.expires_at - now < TOKEN_MARGIN_S:
                p.session, p.expires_at = await self._refreshed(p.session)
                if p.socket is not None:
                    await p.socket.send("refresh", token=p.token)
        for s in self.servers:
            if s.expires_at - now < TOKEN_MARGIN_S:
                await self._server_token(s)
                if s.socket is not None:
                    await s.socket.send("refresh", token=s.token)

    # Players ---------------------------------------------------------------------------------

    async def _start_player(self, p: Player) -> None:
        def on_pub(ch: str, body: dict[str, Any]) -> None:
            if ch.startswith("user:"):  # the lobby's chat is only spoken in
                self._on_player_event(p, body)

        p.socket = Socket(self.ws_url, lambda: p.token, on_pub)
        await p.socket.start([f"user:{p.subject}", f"lobby:{self.o.region}"])
        if self.o.stripe_api_base is not None:
            await self._deposit(p)

    def _on_player_event(self, p: Player, body: dict[str, Any]) -> None:
        kind = body.get("kind")
        if kind == "match.found":
            match = str(body["match"])
            tournament = match.startswith("t.")
            decline = not tournament and self.rng.random() < self.o.decline_rate
            self._spawn(self._answer(p, match, decline))
        elif kind == "wallet.deposit" and body["deposit"]["state"] == "succeeded":
            if body["deposit"]["id"] in p.credited:
                return  # a notice seen again (a recovery)
            p.credited.add(body["deposit"]["id"])
            p.funded = True
            self.figures.deposits += 1
            self.figures.deposited_usd_cents += int(body["deposit"]["net"])
        p.events.put_nowait(body)

    async def _answer(self, p: Player, match: str, decline: bool) -> None:
        assert p.socket is not None
        try:
            await p.socket.rpc("match.decline" if decline else "match.accept", match=match)
            if decline:
                self.figures.declined += 1
        except (Refused, ConnectionError, TimeoutError) as refused:
            self.figures.refusals[f"match.accept:{getattr(refused, 'code', 'cut')}"] += 1

    async def _deposit(self, p: Player) -> None:
        """A card deposit: the intent from us, the card to Stripe, the credit by webhook."""
        assert self.o.stripe_api_base is not None
        p.deposits += 1
        created = await self.rest.call(
            "POST",
            "/v1/deposits",
            p.token,
            {"method": "card", "asset": "USD", "amount": str(self.o.deposit_usd_cents)},
            key=f"sim-deposit-{p.subject}-{p.deposits}",
        )
        intent = created["payment_intent"]
        stripe = {"Authorization": f"Bearer {self.o.stripe_key}"}
        async with httpx.AsyncClient(base_url=self.o.stripe_api_base, timeout=HTTP_TIMEOUT_S) as s:
            updated = await s.post(
                f"/v1/payment_intents/{intent}", data={"payment_method": TEST_CARD}, headers=stripe
            )
            confirmed = await s.post(f"/v1/payment_intents/{intent}/confirm", headers=stripe)
        if updated.status_code != 200 or confirmed.status_code != 200:
            self.figures.refusals["stripe"] += 1
            failed = confirmed if confirmed.status_code != 200 else updated
            error = failed.json().get("error", {}) if failed.content else {}
            log.warning(  # the code and message only: Stripe's bodies carry the client secret
                "the card payment was refused: %s %s", error.get("code"), error.get("message")
            )

    async def _player_loop(self, p: Player) -> None:
        """Pause, queue, wait for a match (accepted by the event handler) to end; again."""
        assert p.socket is not None
        while True:
            await asyncio.sleep(self.rng.expovariate(1 / self.o.rest_s))
            if p.state != "idle" or self.stopping.is_set():
                continue
            p.state = "queued"
            try:
                await self._queue_once(p)
            except (Refused, ConnectionError, TimeoutError) as failed:
                log.debug("a bot's turn in the queue failed: %s", failed)
            finally:
                if p.state == "queued":
                    p.state = "idle"

    async def _queue_once(self, p: Player) -> None:
        assert p.socket is not None
        while not p.events.empty():
            p.events.get_nowait()
        try:
            await p.socket.rpc("queue.join", queue=self.o.queue)
        except (Refused, ConnectionError, TimeoutError) as refused:
            code = getattr(refused, "code", "cut")
            self.figures.refusals[f"queue.join:{code}"] += 1
            # a decliner's cooldown, or joining too often: wait before trying again
            await asyncio.sleep(BACK_OFF_S.get(code, 0.0))
            return
        self.figures.joins += 1
        joined, found = time.monotonic(), False
        while True:
            try:
                body = await asyncio.wait_for(p.events.get(), 120)
            except TimeoutError:
                with contextlib.suppress(Refused, ConnectionError, TimeoutError):
                    await p.socket.rpc("queue.leave")
                return
            kind = body.get("kind")
            if kind == "match.found" and not found and not str(body["match"]).startswith("t."):
                found = True
                self.figures.waits_s.append(time.monotonic() - joined)
            elif kind == "match.settled":
                if self.rng.random() < self.o.chat_rate:
                    with contextlib.suppress(Refused, ConnectionError, TimeoutError):
                        line = self.rng.choice(CHAT_LINES)
                        await p.socket.send(
                            "publish", ch=f"lobby:{self.o.region}", body={"text": line}
                        )
                return
            elif kind in ("match.aborted", "match.cancelled"):
                if p.subject not in body.get("requeued", []):
                    return
                found = False  # back at the front of the queue
                joined = time.monotonic()
            elif kind in ("queue.expired", "queue.left"):
                return

    # Game servers ----------------------------------------------------------------------------

    async def _server_token(self, s: Server) -> None:
        body = await self.rest.call("POST", "/v1/auth/game-server", body={"key": s.key})
        s.token, s.expires_at = body["access_token"], time.monotonic() + int(body["expires_in"])

    async def _start_server(self, s: Server) -> None:
        await self._server_token(s)

        def on_pub(ch: str, body: dict[str, Any]) -> None:
            if body.get("kind") == "match.assigned" and body["match"] not in s.live:
                s.live.add(body["match"])
                self._spawn(self._host(s, body))

        register = {
            "region": self.o.region,
            "capacity": SERVER_CAPACITY,
            "address": f"127.0.0.1:{27015 + self.servers.index(s)}",
        }
        s.socket = Socket(self.ws_url, lambda: s.token, on_pub, ("server.register", register))
        await s.socket.start([f"gameserver:{s.id}"])

    async def _host(self, s: Server, assigned: dict[str, Any]) -> None:
        """Play the match out round by round, then report the result (again after a cut)."""
        assert s.socket is not None
        match = str(assigned["match"])
        teams = [[self.skills.get(p, model.SKILL_MEAN) for p in team] for team in assigned["teams"]]
        ranks = model.draw_ranks(self.rng, teams)
        try:
            for n, (a, b) in enumerate(model.rounds(self.rng, ranks), start=1):
                if self.stopping.is_set():
                    break  # the run ends: finish at once
                await asyncio.sleep(self.o.round_s)
                with contextlib.suppress(Refused, ConnectionError, TimeoutError):
                    await s.socket.rpc(
                        "match.update", match=match, live={"round": n, "score": [a, b]}
                    )
            for _ in range(5):
                try:
                    answer = await s.socket.rpc(
                        "match.result",
                        match=match,
                        ranks=ranks,
                        signature=sign(s.key, match, ranks),
                    )
                except (ConnectionError, TimeoutError):
                    await asyncio.sleep(RECONNECT_DELAY_S)
                    continue
                if not answer.get("repeat"):
                    self.figures.matches_finished += 1
                    if match.startswith("t."):
                        self.figures.tournament_matches += 1
                break
        except Refused as refused:
            self.figures.refusals[f"match.result:{refused.code}"] += 1
        finally:
            s.live.discard(match)

    # Tournaments -----------------------------------------------------------------------------

    async def _tournaments_loop(self) -> None:
        """One tournament at a time, started at most every ``tournament_every_s``."""
        n, last = 0, -math.inf
        while not self.stopping.is_set():
            due = time.monotonic() - last >= self.o.tournament_every_s
            if due and not self.tournaments_open:
                self.tournaments_open.add(n)
                self._spawn(self._tournament(n))
                n, last = n + 1, time.monotonic()
            await asyncio.sleep(0.5)

    async def _tournament(self, n: int) -> None:
        kind = FORMATS[n % len(FORMATS)]
        config = {
            "name": f"Simulated {kind.replace('_', ' ')} #{n + 1}",
            "queue": self.o.queue,
            "team_size": 1,
            "format": {"kind": kind},
            "entry_fee": {"asset": "USD", "amount": str(self.o.entry_fee_usd_cents)},
            "prize_asset": "USD",
            "payout_bps": [7000, 3000],
            "participants_min": 2,
            "participants_max": self.o.tournament_size,
            "rake_bps": 1000,
        }
        tid = ""
        chosen: list[Player] = []
        try:
            t = await self.rest.call("POST", "/v1/admin/tournaments", self._admin_token(), config)
            tid = self.running[n] = t["id"]
            self.figures.tournaments_created += 1
            await self.rest.call(
                "POST", f"/v1/admin/tournaments/{tid}/open-registration", self._admin_token()
            )
            await self._registrations(tid, chosen)
            if len(chosen) < 2:
                await self.rest.call(
                    "POST",
                    f"/v1/admin/tournaments/{tid}/cancel",
                    self._admin_token(),
                    {"reason": "too few entries"},
                )
                return
            # Watch as a spectator from before the start: the payouts come on its channel
            done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

            def on_pub(ch: str, body: dict[str, Any]) -> None:
                if body.get("kind") == "tournament.payouts" and not done.done():
                    done.set_result(body)

            watcher = Socket(self.ws_url, lambda: None, on_pub)
            try:
                await watcher.start([f"tournament:{tid}"])
                await self.rest.call(
                    "POST", f"/v1/admin/tournaments/{tid}/seed", self._admin_token(), {}
                )
                await self.rest.call(
                    "POST", f"/v1/admin/tournaments/{tid}/start", self._admin_token()
                )
                payouts = await asyncio.wait_for(done, TOURNAMENT_TIMEOUT_S)
            finally:
                await watcher.stop()
            self.figures.tournaments_completed += 1
            if payouts["asset"] == "USD":
                self.figures.prizes_paid_usd_cents += sum(
                    int(x["amount"]) for x in payouts["payouts"]
                )
        except (Refused, TimeoutError, ConnectionError) as failed:
            self.figures.refusals[f"tournament:{getattr(failed, 'code', 'timeout')}"] += 1
            log.warning("tournament %s did not complete: %s", tid or n, failed)
        finally:
            self.tournaments_open.discard(n)
            self.running.pop(n, None)
            for p in chosen:
                if p.state == "tournament":
                    p.state = "idle"

    async def _registrations(self, tid: str, chosen: list[Player]) -> None:
        """Registration stays open for a while: funded players enter as they come out of
        their matches (a registered player stays out of the queue until the end)."""
        deadline = time.monotonic() + REGISTRATION_S
        while len(chosen) < self.o.tournament_size and time.monotonic() < deadline:
            idle = [p for p in self.players if p.state == "idle" and p.funded and p not in chosen]
            self.rng.shuffle(idle)
            for p in idle[: self.o.tournament_size - len(chosen)]:
                p.state = "tournament"
                try:
                    await self.rest.call("POST", f"/v1/tournaments/{tid}/registration", p.token)
                except Refused as refused:
                    self.figures.refusals[f"registration:{refused.code}"] += 1
                    p.state = "idle"
                    if refused.code == "insufficient_funds":
                        p.funded = False
                        self._spawn(self._deposit(p))  # back to the card
                    continue
                chosen.append(p)
            await asyncio.sleep(0.5)

    # Progress and summary --------------------------------------------------------------------

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(self.o.progress_s)
            print(self.progress_line(), file=self.out, flush=True)

    def progress_line(self) -> str:
        f = self.figures
        queued = sum(p.state == "queued" for p in self.players)
        live = sum(len(s.live) for s in self.servers)
        wait = model.percentile(f.waits_s, 0.5)
        return (
            f"[{self._elapsed():6.0f} s] queued {queued:3d}  live matches {live:3d}  "
            f"matches {f.matches_finished:5d}  median wait "
            f"{'-' if wait is None else f'{wait:.1f} s'}  "
            f"tournaments {f.tournaments_completed}/{f.tournaments_created}  "
            f"prizes ${f.prizes_paid_usd_cents / 100:,.2f}  deposits {f.deposits}"
        )

    async def _finish(self) -> dict[str, Any]:
        # Live matches end at once (their servers report as the run stops); give them a moment
        deadline = time.monotonic() + 10
        while any(s.live for s in self.servers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for tid in list(self.running.values()):  # the run ends: so do its tournaments
            with contextlib.suppress(Refused, ConnectionError, TimeoutError):
                await self.rest.call(
                    "POST",
                    f"/v1/admin/tournaments/{tid}/cancel",
                    self._admin_token(),
                    {"reason": "the simulation ended"},
                )
        for p in self.players:
            if p.socket is not None and p.state == "queued":
                with contextlib.suppress(Refused, ConnectionError, TimeoutError):
                    await p.socket.rpc("queue.leave")
        await asyncio.sleep(0.5)  # the last settlements
        mus = await self._ratings()
        error = model.rating_error({p: self.skills[p] for p in mus}, mus)
        try:
            report = await self.rest.call("GET", "/v1/admin/reconciliation", self._admin_token())
        except (Refused, ConnectionError, TimeoutError) as failed:
            log.error("the reconciliation could not be read: %s", failed)
            self.figures.refusals[f"reconciliation:{getattr(failed, 'code', 'cut')}"] += 1
            report = {"ok": False}
        f = self.figures

        def rounded(x: float | None, digits: int = 3) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, digits)

        return {
            "duration_s": round(self._elapsed(), 1),
            "players": len(self.players),
            "game_servers": len(self.servers),
            "deposits": f.deposits,
            "deposited_usd_cents": f.deposited_usd_cents,
            "queue_joins": f.joins,
            "matches_finished": f.matches_finished,
            "tournament_matches": f.tournament_matches,
            "ready_checks_declined": f.declined,
            "wait_p50_s": rounded(model.percentile(f.waits_s, 0.5)),
            "wait_p95_s": rounded(model.percentile(f.waits_s, 0.95)),
            "wait_max_s": rounded(max(f.waits_s, default=None) if f.waits_s else None),
            "rating_rmse": rounded(error.rmse),
            "rating_rmse_before": rounded(error.rmse_before),
            "rating_rank_correlation": rounded(error.rank_correlation),
            "tournaments_created": f.tournaments_created,
            "tournaments_completed": f.tournaments_completed,
            "prizes_paid_usd_cents": f.prizes_paid_usd_cents,
            "reconciliation_ok": bool(report["ok"]),
            "refusals": dict(sorted(f.refusals.items())),
            "rest_calls": self.rest.calls,
        }

    async def _ratings(self) -> dict[str, float]:
        limit = asyncio.Semaphore(8)

        async def one(p: Player) -> tuple[str, float] | None:
            try:
                async with limit:
                    path = f"/v1/players/{p.subject}/ratings/{self.o.mode}"
                    body = await self.rest.call("GET", path)
            except (Refused, ConnectionError, TimeoutError) as failed:
                log.warning("a rating could not be read: %s", failed)
                self.figures.refusals[f"ratings:{getattr(failed, 'code', 'cut')}"] += 1
                return None  # left out of the rating error
            history = body["history"]
            return p.subject, float(history[-1]["mu"]) if history else model.SKILL_MEAN

        read = await asyncio.gather(*(one(p) for p in self.players))
        return dict(r for r in read if r is not None)


def summary_text(summary: Mapping[str, Any]) -> str:
    s = summary
    usd = s["prizes_paid_usd_cents"] / 100
    corr = s["rating_rank_correlation"]
    lines = [
        f"simulated {s['duration_s']} s: {s['players']} players, {s['game_servers']} game servers",
        f"deposits: {s['deposits']} (${s['deposited_usd_cents'] / 100:,.2f} credited)",
        f"matches: {s['matches_finished']} finished ({s['tournament_matches']} in tournaments); "
        f"{s['queue_joins']} queue joins, {s['ready_checks_declined']} ready checks declined",
        f"queue wait: median {s['wait_p50_s']} s, p95 {s['wait_p95_s']} s, max {s['wait_max_s']} s",
        f"rating error: RMSE {s['rating_rmse']} (at the start {s['rating_rmse_before']}), "
        f"rank correlation {'-' if corr is None else corr}",
        f"tournaments: {s['tournaments_completed']} completed of {s['tournaments_created']}; "
        f"prizes paid ${usd:,.2f}",
        f"reconciliation: {'clean' if s['reconciliation_ok'] else 'DIFFERENCES FOUND'}",
    ]
    if s["refusals"]:
        lines.append("refused: " + ", ".join(f"{k} x{v}" for k, v in s["refusals"].items()))
    return "\n".join(lines)


async def simulate(
    options: Options,
    identity: Identity,
    out: TextIO = sys.stderr,
    started: Callable[[Simulation], Awaitable[None] | None] | None = None,
) -> dict[str, Any]:
    sim = Simulation(options, out)
    if started is not None:
        maybe = started(sim)
        if maybe is not None:
            await maybe
    return await sim.run(identity)
