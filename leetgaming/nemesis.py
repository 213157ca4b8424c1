"""The bank nemesis: players move money through the real REST API of a cluster while a seeded
fault schedule hurts the machines under it; afterwards the ledger must say exactly what the
players were told.

The cluster: ``processes`` ``leetgaming serve`` processes on a fresh PostgreSQL database
(production settings: every connection with ``synchronous_commit = on``, as served) and a Redis
server of the nemesis's own (a throwaway ``redis-server`` on a free port, so that killing it
hurts nobody else), each process its own port.

The players. Each player has 10,000 USD cents deposited before the faults start (straight into
the ledger, as a settled card deposit would be) and then, one operation after another, asks:

- an admin to grant it 1,000 LEETCOIN (``POST /v1/admin/credits``, idempotency key),
- to spend 1 LEETCOIN (``POST /v1/credits/use``, idempotency key; refused without credits),
- to enter the paid tournament (``POST /v1/tournaments/{id}/registration``: a 100-cent entry
  fee held in escrow) or to leave it (``DELETE``: the hold released).

Alongside them, ``queuers`` players queue, accept and are rated over their websockets, and
``hosts`` game servers play the matches and report signed results
(:mod:`leetgaming.nemesis_matches`, which also checks them: no player in two matches, no
acknowledged result lost, each match rated once, every client back in a finished match after
the last fault).

An operation is sent to a random live process. An answer lost to a fault (a refused or reset
connection, a timeout, a 5xx) is not an answer: the same request, with the same key, is sent
again (to any process) until the server answers it, as a client would. An operation is
*acknowledged* when a 2xx answered it (or, for a registration retried, "already registered";
for a withdrawal retried, "not registered": the first try took effect). A 4xx refusal means
it took no effect.

The faults (one every ``fault_every_s`` on average, drawn from ``random.Random(seed)``):
SIGKILL a serve process (restarted a second later), SIGSTOP one for 1-3 s (then SIGCONT),
SIGKILL Redis (restarted empty a second later), and terminate every PostgreSQL backend of
the database (``pg_terminate_backend``).

The checks, once the faults stop and every process is back:

- every acknowledged grant and spend is in the ledger under its deterministic id (else lost);
- each player's LEETCOIN balance is what its acknowledged operations make it, and its USD
  available is 10,000 less one fee if (and only if) the tournament says it is registered: a
  surplus is an operation applied twice, a shortfall one lost;
- the tournament's registrations are exactly the players whose last acknowledged operation
  entered them;
- the ledger reconciles: every asset sums to zero and every account's counters match its
  transfers (:func:`ledger.reconcile`).

Pure parts (the fault schedule, the expected state) are functions of their inputs; the rest
is the harness around real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx

from ledger import Ledger, Transfer, derive_id, open_store, reconcile
from leetgaming import nemesis_matches as nm
from leetgaming.tokens import issue_access_token
from wallet import accounts

FUNDED_CENTS: Final = 10_000
ENTRY_FEE_CENTS: Final = 100
GRANT_COINS: Final = 1_000
SPEND_COINS: Final = 1
COIN: Final = "LEETCOIN"
ADMIN: Final = "nemesis-admin"
REQUEST_TIMEOUT_S: Final = 5.0
RETRY_PAUSE_S: Final = 0.2
SETTLE_TIMEOUT_S: Final = 120.0  # after the faults: every process back, every answer in
START_TIMEOUT_S: Final = 60.0
RESYNC_TIMEOUT_S: Final = 60.0  # after the faults: every queuer finishes a match within
RESTARTS_MAX: Final = 5
FAULT_KINDS: Final = ("kill_server", "pause_server", "kill_redis", "kill_pg_backends")


class NemesisError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # from the start of the run
    kind: str
    target: int  # which serve process (kill_server, pause_server)
    length_s: float  # how long it stays stopped or down


def fault_schedule(seed: int, duration_s: float, every_s: float, processes: int) -> list[Fault]:
    """The faults of a run: a pure function of its seed (none when ``every_s`` is 0: the
    fault-free reference run)."""
    if every_s <= 0:
        return []
    rng = random.Random(seed)
    faults, at = [], rng.uniform(0.5, every_s)
    while at < duration_s:
        faults.append(
            Fault(at, rng.choice(FAULT_KINDS), rng.randrange(processes), rng.uniform(1.0, 3.0))
        )
        at += rng.uniform(0.5 * every_s, 1.5 * every_s)
    return faults


@dataclass
class Player:
    """What one player was told, and so what the ledger must hold for it."""

    name: str
    coins: int = 0  # LEETCOIN its acknowledged grants and spends leave it
    registered: bool = False
    grants: list[str] = field(default_factory=list)  # acknowledged grant keys
    spends: list[str] = field(default_factory=list)  # acknowledged spend keys
    operations: int = 0


@dataclass
class Outcome:
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    operations_acknowledged: int = 0
    operations_refused: int = 0
    refused_by_code: dict[str, int] = field(default_factory=dict)  # "409 insufficient_credits"
    operations_retried: int = 0
    operations_lost: int = 0
    operations_applied_twice: int = 0
    reconciliation_clean: bool = False
    problems: list[str] = field(default_factory=list)
    restarts_failed: int = 0  # serve starts that failed and were tried again
    problems_seen: list[str] = field(default_factory=list)  # why (not a check's failure)
    seconds: float = 0.0
    matches: nm.MatchOutcome = field(default_factory=nm.MatchOutcome)

    def to_json(self) -> dict[str, Any]:
        return {
            "faults_injected": self.faults_injected,
            "faults_by_kind": dict(sorted(self.faults_by_kind.items())),
            "operations_acknowledged": self.operations_acknowledged,
            "operations_refused": self.operations_refused,
            "refused_by_code": dict(sorted(self.refused_by_code.items())),
            "operations_retried": self.operations_retried,
            "operations_lost": self.operations_lost,
            "operations_applied_twice": self.operations_applied_twice,
            "reconciliation_clean": self.reconciliation_clean,
            "problems": self.problems[:20],
            "restarts_failed": self.restarts_failed,
            "restart_failures": self.problems_seen[:3],
            "matchmaking": self.matches.to_json(),
            "seconds": round(self.seconds, 1),
        }

    @property
    def ok(self) -> bool:
        return (
            self.operations_lost == 0
            and self.operations_applied_twice == 0
            and self.reconciliation_clean
            and not self.problems
            and self.matches.ok
        )


@dataclass(frozen=True, slots=True)
class Options:
    minutes: float
    seed: int
    postgres_url: str  # a database to connect to for CREATE DATABASE (it is not touched)
    redis_server: str = "redis-server"
    processes: int = 2
    players: int = 12
    queuers: int = 8  # players who queue and play over the websocket
    hosts: int = 2  # game servers
    fault_every_s: float = 3.0
    workdir: Path | None = None


# --- the cluster ------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Cluster:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.secret = secrets.token_urlsafe(32)
        self.prefix = f"lgnemesis:{secrets.token_hex(4)}:"
        self.database = f"lgnemesis_{secrets.token_hex(4)}"
        self.database_url = options.postgres_url.rsplit("/", 1)[0] + f"/{self.database}"
        self.redis_port = _free_port()
        self.ports = [_free_port() for _ in range(options.processes)]
        self.servers: list[asyncio.subprocess.Process | None] = [None] * options.processes
        self.paused: set[int] = set()
        self.redis: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    async def start_redis(self) -> None:
        log = (self.workdir / "redis.log").open("a")
        self.redis = await asyncio.create_subprocess_exec(
            self.options.redis_server,
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
        log.close()
        await _until_listening(
            self.redis_port, self.redis, "redis-server", self.workdir / "redis.log"
        )

    async def kill_redis(self) -> None:
        if self.redis is not None and self.redis.returncode is None:
            self.redis.kill()
            await self.redis.wait()

    async def start_server(self, n: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")} | {
            "LEETGAMING_PORT": str(self.ports[n]),
            "LEETGAMING_DATABASE_URL": self.database_url,
            "LEETGAMING_REDIS_URL": self.redis_url,
            "LEETGAMING_REDIS_PREFIX": self.prefix,
            "LEETGAMING_SECRET_KEY": self.secret,
            "LEETGAMING_REST_REQUESTS_PER_MIN": "10000000",  # every player is 127.0.0.1
            # a retry of an operation whose server was killed mid-way runs it again after 10 s,
            # not 60: shorter settling, and a harder test of the ledger's ids
            "LEETGAMING_IDEMPOTENCY_CLAIM_TTL_S": "10",
            "LEETGAMING_BLOB_DIR": str(self.workdir / "blobs"),
            "LEETGAMING_MAIL_DIR": str(self.workdir / "mail"),
            "LEETGAMING_QUEUES_FILE": str(self.workdir / "queues.toml"),
            # the serve processes run the code the harness runs, wherever it was imported from
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        log = (self.workdir / f"serve{n}.log").open("a")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "leetgaming",
            "serve",
            cwd=self.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.servers[n] = process
        self.starts += 1
        await _until_listening(
            self.ports[n], process, f"serve process {n}", self.workdir / f"serve{n}.log"
        )

    async def kill_server(self, n: int) -> None:
        process = self.servers[n]
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                if n in self.paused:
                    process.send_signal(signal.SIGCONT)
                process.kill()
            await process.wait()
        self.paused.discard(n)

    def live_ports(self) -> list[int]:
        return [
            port
            for n, (port, p) in enumerate(zip(self.ports, self.servers, strict=True))
            if p is not None and p.returncode is None and n not in self.paused
        ] or self.ports

    async def stop(self) -> None:
        for n, process in enumerate(self.servers):
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                if n in self.paused:
                    process.send_signal(signal.SIGCONT)
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await self.kill_redis()


async def _until_listening(
    port: int, process: asyncio.subprocess.Process, name: str, log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if process.returncode is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise NemesisError(
                    f"{name} did not start (exit {process.returncode}): {tail}"
                ) from None
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def cluster(options: Options) -> AsyncIterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="lgnemesis-", dir=options.workdir))
    c = Cluster(options, workdir)
    (workdir / "queues.toml").write_text(nm.QUEUES_TOML)
    admin = await asyncpg.connect(options.postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{c.database}"')  # nosemgrep: sql-built-from-strings
        await c.start_redis()
        for n in range(options.processes):  # one after the other: the first one migrates
            await c.start_server(n)
        yield c
    finally:
        await c.stop()
        await admin.execute(  # nosemgrep: sql-built-from-strings
            f'DROP DATABASE IF EXISTS "{c.database}" WITH (FORCE)'
        )
        await admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --- the faults -------------------------------------------------------------------------------


async def inject(c: Cluster, fault: Fault, outcome: Outcome) -> None:
    outcome.faults_injected += 1
    outcome.faults_by_kind[fault.kind] = outcome.faults_by_kind.get(fault.kind, 0) + 1
    if fault.kind == "kill_server":
        await c.kill_server(fault.target)
        await asyncio.sleep(fault.length_s / 3)
        await restart(c, fault.target, outcome)
    elif fault.kind == "pause_server":
        process = c.servers[fault.target]
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGSTOP)
        c.paused.add(fault.target)
        await asyncio.sleep(fault.length_s)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
        c.paused.discard(fault.target)
    elif fault.kind == "kill_redis":
        await c.kill_redis()
        await asyncio.sleep(fault.length_s / 3)
        await c.start_redis()
    elif fault.kind == "kill_pg_backends":
        conn = await asyncpg.connect(c.options.postgres_url)
        try:
            await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                c.database,
            )
        finally:
            await conn.close()


async def restart(c: Cluster, n: int, outcome: Outcome) -> None:
    """Start serve process ``n`` again, as a supervisor would: a start that fails (its
    database or Redis away at that moment) is tried again, a few times."""
    for attempt in range(RESTARTS_MAX):
        try:
            await c.start_server(n)
            return
        except NemesisError as failed:
            outcome.restarts_failed += 1
            if attempt == RESTARTS_MAX - 1:
                raise
            outcome.problems_seen.append(str(failed)[:300])
            await asyncio.sleep(1.0)


async def run_faults(c: Cluster, faults: list[Fault], started: float, outcome: Outcome) -> None:
    loop = asyncio.get_running_loop()
    for fault in faults:
        await asyncio.sleep(max(0.0, started + fault.at_s - loop.time()))
        await inject(c, fault, outcome)


# --- the players ------------------------------------------------------------------------------


def _token(c: Cluster, subject: str, role: str) -> str:
    return issue_access_token(c.secret, subject, role, "nemesis", int(time.time()), mfa=True)


async def request(
    c: Cluster,
    http: httpx.AsyncClient,
    rng: random.Random,
    method: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any] | None,
    deadline: float,
    outcome: Outcome,
) -> httpx.Response:
    """Send until the server answers (anything but a lost connection, a timeout or a 5xx)."""
    tries = 0
    while True:
        port = rng.choice(c.live_ports())
        try:
            answer = await http.request(
                method,
                f"http://127.0.0.1:{port}{path}",
                headers=headers,
                json=body,
                timeout=REQUEST_TIMEOUT_S,
            )
            busy = answer.status_code == 409 and _code(answer) == "idempotency_in_progress"
            if answer.status_code < 500 and answer.status_code != 429 and not busy:
                if tries:
                    outcome.operations_retried += 1
                return answer
        except httpx.TransportError:
            pass
        tries += 1
        if time.monotonic() > deadline:
            raise NemesisError(f"{method} {path}: no answer before the deadline")
        await asyncio.sleep(RETRY_PAUSE_S)


async def play(
    c: Cluster,
    http: httpx.AsyncClient,
    player: Player,
    tournament: str,
    rng: random.Random,
    until: Callable[[], bool],
    deadline: float,
    outcome: Outcome,
) -> None:
    while not until():
        # tokens minted afresh for each operation, as a client refreshes its own: an access
        # token lives 5 minutes
        player_auth = {"Authorization": f"Bearer {_token(c, player.name, 'player')}"}
        admin_auth = {"Authorization": f"Bearer {_token(c, ADMIN, 'admin')}"}
        player.operations += 1
        key = f"{player.name}-{player.operations}"
        kind = rng.choice(("grant", "spend", "spend", "entry"))
        if kind == "grant":
            answer = await request(
                c,
                http,
                rng,
                "POST",
                "/v1/admin/credits",
                admin_auth | {"Idempotency-Key": key},
                {"player": player.name, "asset": COIN, "amount": GRANT_COINS},
                deadline,
                outcome,
            )
            if answer.status_code == 201:
                player.coins += GRANT_COINS
                player.grants.append(key)
        elif kind == "spend":
            answer = await request(
                c,
                http,
                rng,
                "POST",
                "/v1/credits/use",
                player_auth | {"Idempotency-Key": key},
                {"asset": COIN, "amount": SPEND_COINS},
                deadline,
                outcome,
            )
            if answer.status_code == 201:
                player.coins -= SPEND_COINS
                player.spends.append(key)
            elif player.coins >= SPEND_COINS:
                outcome.problems.append(f"{player.name}: a covered spend refused: {answer.text}")
        else:
            path = f"/v1/tournaments/{tournament}/registration"
            method = "DELETE" if player.registered else "POST"
            answer = await request(c, http, rng, method, path, player_auth, {}, deadline, outcome)
            code = _code(answer)
            if answer.is_success or code in _ALREADY:
                # a retry's "already" means the lost first try took effect
                player.registered = method == "POST"
            else:
                outcome.problems.append(f"{player.name}: {method} registration: {answer.text}")
        if answer.is_success or _code(answer) in _ALREADY:
            outcome.operations_acknowledged += 1
        else:
            outcome.operations_refused += 1
            refusal = f"{answer.status_code} {_code(answer)}"
            outcome.refused_by_code[refusal] = outcome.refused_by_code.get(refusal, 0) + 1
            if refusal not in _EXPECTED_REFUSALS:
                outcome.problems.append(f"{player.name}: {kind} refused: {answer.text[:300]}")


# the only refusal the workload meets: a spend when the player has no credits left
_EXPECTED_REFUSALS: Final = ("409 insufficient_credits",)
# a retried registration's or withdrawal's answer when its lost first try took effect (a solo
# player's team is named after them: "team_taken")
_ALREADY: Final = ("already_registered", "team_taken", "not_registered")


def _code(answer: httpx.Response) -> str | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


# --- the run ----------------------------------------------------------------------------------


async def fund(database_url: str, players: list[Player]) -> None:
    """Each player's deposit, settled before the faults start."""
    store = await open_store(database_url)
    try:
        async with Ledger(store) as ledger:
            source = accounts.settlement("USD")
            await ledger.create_accounts([source, *(accounts.user(p.name, "USD") for p in players)])
            outcomes = await ledger.create_transfers(
                [
                    Transfer(
                        derive_id("nemesis.deposit", p.name),
                        source.id,
                        accounts.user(p.name, "USD").id,
                        FUNDED_CENTS,
                        "USD",
                        accounts.Code.DEPOSIT,
                    )
                    for p in players
                ]
            )
            if not all(o.result.succeeded for o in outcomes):
                raise NemesisError(f"funding failed: {outcomes[:3]}")
    finally:
        await store.close()


async def create_tournament(c: Cluster, http: httpx.AsyncClient, players: int) -> str:
    admin = {"Authorization": f"Bearer {_token(c, ADMIN, 'admin')}"}
    base = f"http://127.0.0.1:{c.ports[0]}"
    created = await http.post(
        f"{base}/v1/admin/tournaments",
        json={
            "name": "nemesis cup",
            "queue": "cs2:1v1:eu",
            "team_size": 1,
            "format": {"kind": "single_elimination"},
            "entry_fee": {"asset": "USD", "amount": str(ENTRY_FEE_CENTS)},
            "prize_asset": "USD",
            "payout_bps": [10000],
            "participants_min": 2,
            "participants_max": players,
            "rake_bps": 1000,
        },
        headers=admin,
    )
    if created.status_code != 201:
        raise NemesisError(f"the tournament was not created: {created.text}")
    tid: str = created.json()["id"]
    opened = await http.post(f"{base}/v1/admin/tournaments/{tid}/open-registration", headers=admin)
    if not opened.is_success:
        raise NemesisError(f"registration did not open: {opened.text}")
    return tid


async def check(
    c: Cluster, http: httpx.AsyncClient, players: list[Player], tid: str, outcome: Outcome
) -> None:
    detail = await request(
        c,
        http,
        random.Random(0),
        "GET",
        f"/v1/tournaments/{tid}",
        {},
        None,
        time.monotonic() + SETTLE_TIMEOUT_S,
        outcome,
    )
    registered = _registered_players(detail.json())
    store = await open_store(c.database_url)
    try:
        for p in players:
            if (p.name in registered) != p.registered:
                outcome.problems.append(
                    f"{p.name}: told registered={p.registered}, the tournament says "
                    f"{p.name in registered}"
                )
            grant_ids = [derive_id("credit.grant", f"{ADMIN}:{k}") for k in p.grants]
            spend_ids = [derive_id("credit.spend", f"{p.name}:{k}", 0) for k in p.spends]
            found = {t.id for t in await store.lookup_transfers(grant_ids + spend_ids)}
            outcome.operations_lost += sum(1 for i in grant_ids + spend_ids if i not in found)
            coin_id, usd_id = accounts.user(p.name, COIN).id, accounts.user(p.name, "USD").id
            states = {a.id: a.balance for a in await store.lookup_accounts([coin_id, usd_id])}
            coin, usd = states.get(coin_id), states[usd_id]
            coins = 0 if coin is None else coin.credits_posted - coin.debits_posted
            if coins != p.coins:
                surplus = coins - p.coins
                if surplus > 0:
                    outcome.operations_applied_twice += 1
                outcome.problems.append(f"{p.name}: {coins} {COIN}, told {p.coins}")
            available = usd.credits_posted - usd.debits_posted - usd.debits_pending
            expected = FUNDED_CENTS - (ENTRY_FEE_CENTS if p.name in registered else 0)
            if available != expected:
                if available < expected:
                    outcome.operations_applied_twice += 1
                else:
                    outcome.operations_lost += 1
                outcome.problems.append(
                    f"{p.name}: {available} USD cents available, {expected} due"
                )
        report = await reconcile(store)
        outcome.reconciliation_clean = report.ok
        if not report.ok:
            outcome.problems += [f"reconciliation: {p.kind}: {p.detail}" for p in report.problems]
    finally:
        await store.close()


def _resynced(q: nm.Queuer, faults_over_at: list[float]) -> bool:
    """A queuer is done once a match of its finished after the last fault."""
    return any(at >= faults_over_at[0] for _, at in q.finished)


def _registered_players(detail: dict[str, Any]) -> set[str]:
    """The players entered, their fees held (a hold still being made counts as entered: the
    check waits for none, and the USD check then shows it)."""
    entries = detail.get("entries")
    if not isinstance(entries, dict):
        raise NemesisError(f"no entries in the tournament: {sorted(detail)}")
    return {
        player
        for entry in entries.values()
        if entry.get("hold") != "failed"
        for player in entry.get("roster", [])
    }


async def run(options: Options, say: Callable[[str], None] = lambda _: None) -> Outcome:
    outcome = Outcome()
    duration_s = options.minutes * 60
    faults = fault_schedule(options.seed, duration_s, options.fault_every_s, options.processes)
    rng = random.Random(options.seed ^ 0x5EED)
    started_wall = time.monotonic()
    async with cluster(options) as c, httpx.AsyncClient() as http:
        players = [Player(f"nem{options.seed}-{n}") for n in range(options.players)]
        await fund(c.database_url, players)
        tid = await create_tournament(c, http, options.players)
        hosts = await nm.start_hosts(
            c.secret, _token(c, ADMIN, "admin"), c.ports, options.hosts, http
        )
        queuers = await nm.start_queuers(
            c.secret, c.ports, [f"mm{options.seed}-{n}" for n in range(options.queuers)]
        )
        say(
            f"cluster up at {time.monotonic() - started_wall:.1f} s: {options.processes} serve "
            f"processes, {len(faults)} faults scheduled: "
            + ", ".join(f"{f.kind}@{f.at_s:.0f}s" for f in faults)
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop_at = started + duration_s
        deadline = time.monotonic() + duration_s + SETTLE_TIMEOUT_S
        faulting = asyncio.create_task(run_faults(c, faults, started, outcome))
        faults_over_at = [float("inf")]
        queueing = [
            asyncio.create_task(nm.queue_loop(q, functools.partial(_resynced, q, faults_over_at)))
            for q in queuers
        ]
        bots = [
            asyncio.create_task(
                play(
                    c,
                    http,
                    p,
                    tid,
                    random.Random(rng.random()),
                    lambda: loop.time() >= stop_at,
                    deadline,
                    outcome,
                )
            )
            for p in players
        ]
        try:
            await faulting
            faults_over_at[0] = time.monotonic()
            await asyncio.gather(*bots)
            say(f"operations over at {time.monotonic() - started_wall:.1f} s; queuers resyncing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*queueing), RESYNC_TIMEOUT_S)
        finally:
            for task in (faulting, *bots, *queueing):
                task.cancel()
            await asyncio.gather(faulting, *bots, *queueing, return_exceptions=True)
            for q in queuers:
                if not _resynced(q, faults_over_at):
                    q.last_word = await nm.where(q)
            await nm.stop_all(queuers, hosts)
        say(f"queuers done at {time.monotonic() - started_wall:.1f} s")
        for n, process in enumerate(c.servers):  # every process back before the checks
            if process is None or process.returncode is not None:
                await restart(c, n, outcome)
        say(f"checking the ledger at {time.monotonic() - started_wall:.1f} s")
        await check(c, http, players, tid, outcome)
        await nm.check(c.database_url, queuers, hosts, faults_over_at[0], outcome.matches)
    outcome.seconds = time.monotonic() - started_wall
    return outcome
