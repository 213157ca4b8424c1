"""The ``leetgaming`` command: ``serve``, ``migrate``, ``reconcile``, ``admin create``, and what
later issues add.

Invariants:

- Settings are read once, from ``os.environ``, before any subcommand runs; invalid settings
  print every problem to stderr and exit 2 (the usage-error code, as argparse uses).
- ``serve`` prints the URL to open on stdout once the socket is listening (with several
  workers: once it is bound, before they start), and exits 0 after a graceful shutdown on
  SIGTERM or SIGINT.

To add a subcommand: write ``_add_NAME(subparsers)`` that registers a parser with
``handler=...`` (a function ``(args, settings) -> int``) and append it to ``_SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import gc
import getpass
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from uvicorn._subprocess import get_subprocess
from uvicorn.config import STARTUP_FAILURE

from ledger import open_store, reconcile
from leetgaming.app import create_app
from leetgaming.db import open_database
from leetgaming.demo import (
    DEMO_REFUSES,
    DemoUnavailable,
    deliver_webhooks,
    demo_options,
    demo_settings,
    localstripe,
    quiet_clients,
)
from leetgaming.httpguard import GuardedHttpToolsProtocol
from leetgaming.identity import Identity, IdentityError
from leetgaming.logs import configure_logging
from leetgaming.settings import Settings, SettingsError, env_name, redact_url
from leetgaming.simulate import Options, Simulation, summary_text
from leetgaming.tokens import TOKEN_TTL_MAX_S
from realtime.envelope import FRAME_BYTES_MAX, protocol_schema

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace, Settings], int]


def describe(settings: Settings) -> str:
    """One line telling a person where the server is and what it runs on (no secrets)."""
    if settings.sqlite_path is not None:
        database = f"sqlite {settings.sqlite_path}"
    else:
        database = f"postgresql {_url_location(settings.database_url)}"
    if settings.redis_url is None:
        broker = "in-process"
    else:
        broker = f"redis {_url_location(settings.redis_url)}"
    return f"LeetGaming is running at {settings.base_url} (database: {database}, broker: {broker})"


def _url_location(url: str) -> str:
    """``host:port/path`` of a URL, without user, password or query string."""
    rest = redact_url(url).split("://", 1)[-1].split("?", 1)[0]
    return rest.rsplit("@", 1)[-1]


def _ensure_sqlite_directory(settings: Settings) -> None:
    if settings.sqlite_path is not None:
        Path(settings.sqlite_path).parent.mkdir(parents=True, exist_ok=True)


DRAIN_TIMEOUT_S = 5.0
FACTORY = "leetgaming.app:create_app_from_environ"  # what each worker process imports
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# uvicorn's defaults accept 16 MiB websocket messages and turn permessage-deflate on (a small
# compressed frame can inflate to megabytes; 45 KB instead of 13 KB per connection). Ours: the
# protocol's frame limit, no compression, the sans-I/O implementation (about twice as fast).
WEBSOCKET_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_max_size": FRAME_BYTES_MAX,
    "ws_per_message_deflate": False,
}


def _hub_of(config: uvicorn.Config) -> Any:
    """The app's hub (``app.state.hub``), through any middleware uvicorn wrapped around it."""
    app: Any = getattr(config, "loaded_app", None) or config.app
    for _ in range(8):
        hub = getattr(getattr(app, "state", None), "hub", None)
        if hub is not None:
            return hub
        app = getattr(app, "app", None)
    return None


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints the URL to open once it is listening, and drains the
    websocket hub before uvicorn closes the connections."""

    def __init__(self, config: uvicorn.Config, banner: str = "") -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What start-up built (modules, the app, pools) lives as long as the process: keep
        # the cyclic collector from walking it again on every full collection.
        gc.collect()
        gc.freeze()
        if self.started and self.banner:
            print(self.banner, flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn closes every socket at once: tell websocket clients to reconnect
        # elsewhere and recover, and give them a bounded time to go.
        hub = _hub_of(self.config)
        if hub is not None:
            await hub.drain(DRAIN_TIMEOUT_S)
        await super().shutdown(sockets)


def _uvicorn_config(
    app: Starlette | str, settings: Settings, args: argparse.Namespace
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,  # httptools, with a deadline for request headers
        log_config=None,  # ours is in place; uvicorn's would replace it
        access_log=False,  # it logs query strings; RequestObserver logs the path only
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=args.graceful_shutdown_s,
        **WEBSOCKET_OPTIONS,
    )


def _worker(server: _AnnouncingServer, sockets: list[socket.socket]) -> None:
    """One worker process: it ends with its parent (even a SIGKILLed one), then serves."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before prctl took effect
            return
    server.run(sockets)


def _run_workers(settings: Settings, args: argparse.Namespace) -> int:
    """Several worker processes on one socket, each a draining server (uvicorn's own
    supervisor would run plain uvicorn servers, which close websockets without draining).

    The parent binds the socket, starts the workers, replaces a worker that dies, and on
    SIGTERM or SIGINT passes SIGTERM on to each worker once and waits for them to drain.
    """
    config = _uvicorn_config(FACTORY, settings, args)
    sock = config.bind_socket()
    # Listening here, once: connections wait in the backlog while workers start or restart,
    # instead of being refused. Each worker's server listens on the same socket again.
    sock.listen(config.backlog)
    server = _AnnouncingServer(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())

    def spawn() -> SpawnProcess:
        process = get_subprocess(config, target=partial(_worker, server), sockets=[sock])
        process.start()
        return process

    workers = [spawn() for _ in range(settings.workers)]
    print(describe(settings), flush=True)
    failed = False
    while not stop.wait(0.5):
        for index, worker in enumerate(workers):
            if worker.is_alive():
                continue
            if worker.exitcode == STARTUP_FAILURE:  # it would fail the same way again
                print("leetgaming: a worker failed to start", file=sys.stderr)
                failed = True
                stop.set()
                break
            workers[index] = spawn()
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(args.graceful_shutdown_s + DRAIN_TIMEOUT_S + 10)
        if worker.is_alive():
            worker.kill()
            worker.join()
    sock.close()
    return EXIT_FAILURE if failed else EXIT_OK


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
    _ensure_sqlite_directory(settings)

    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with these
    # handlers in place that is a no-op, so a requested stop ends with exit code 0.
    def stop_requested(signum: int, frame: FrameType | None) -> None:
        pass

    previous = {sig: signal.signal(sig, stop_requested) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.demo:
            return _serve_demo(args, settings)
        if settings.workers == 1:
            config = _uvicorn_config(create_app(settings), settings, args)
            server = _AnnouncingServer(config, describe(settings))
            server.run()
            return EXIT_OK if server.started else EXIT_FAILURE
        # Several processes: each worker imports the factory and reads the same environment.
        return _run_workers(settings, args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen_url(settings: Settings) -> str:
    """Where this machine reaches the server (a wildcard address is reached on loopback)."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # nosec B104
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _serve_demo(args: argparse.Namespace, settings: Settings) -> int:
    if settings.workers != 1:
        print("leetgaming: the demo runs in one process (LEETGAMING_WORKERS=1)", file=sys.stderr)
        return EXIT_USAGE
    # Its card payments are play money (localstripe): never next to a real ledger or rail
    real = [env_name(f) for f in DEMO_REFUSES if env_name(f) in os.environ]
    if real:
        print(
            "leetgaming: the demo runs on its own embedded defaults, with play money; unset "
            + ", ".join(real),
            file=sys.stderr,
        )
        return EXIT_USAGE

    async def run() -> int:
        async with localstripe() as stripe_base:
            demo = demo_settings(settings, stripe_base)
            _ensure_sqlite_directory(demo)
            app = create_app(demo)
            banner = (
                f"{describe(demo)}\n"
                "demo: bot players and game servers are playing; open the URL above "
                f"(card payments go to localstripe at {stripe_base})"
            )
            server = _AnnouncingServer(_uvicorn_config(app, demo, args), banner)
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            if not server.started:
                await serving
                return EXIT_FAILURE
            listen = _listen_url(demo)
            await deliver_webhooks(stripe_base, demo, listen)
            sim = Simulation(demo_options(demo, listen, args.seed), sys.stdout)
            simulating = asyncio.create_task(sim.run(app.state.identity))
            while not serving.done():
                if server.should_exit and not simulating.done():
                    simulating.cancel()  # the server drains: the bots go first (once)
                    break
                await asyncio.wait([serving], timeout=0.2)
            simulating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await simulating
            await serving
        return EXIT_OK

    configure_logging(settings.log_level)
    quiet_clients()
    try:
        return asyncio.run(run())
    except DemoUnavailable as unavailable:
        print(f"leetgaming: {unavailable}", file=sys.stderr)
        return EXIT_FAILURE


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
    quiet_clients()
    stripe_base = None
    if settings.stripe_secret_key is not None:
        stripe_base = settings.stripe_api_base or "https://api.stripe.com"
    options = Options(
        base_url=(args.url or _listen_url(settings)).rstrip("/"),
        seed=args.seed,
        players=args.players,
        servers=args.servers,
        duration_s=args.duration_s,
        queue=args.queue,
        rest_s=args.rest_s,
        round_s=args.round_s,
        decline_rate=args.decline_rate,
        deposit_usd_cents=args.deposit_usd_cents,
        tournament_every_s=args.tournament_every_s,
        tournament_size=args.tournament_size,
        entry_fee_usd_cents=args.entry_fee_usd_cents,
        stripe_api_base=stripe_base,
        stripe_key=settings.stripe_secret_key or "",
        progress_s=args.progress_s,
    )

    async def run() -> dict[str, Any]:
        database = await open_database(settings.database_url)
        try:
            identity = Identity.for_settings(settings, database)
            await identity.start()
            return await Simulation(options, sys.stderr).run(identity)
        finally:
            await database.close()

    summary = asyncio.run(run())
    print(summary_text(summary))
    print(json.dumps(summary, sort_keys=True))
    return EXIT_OK if summary["reconciliation_ok"] else EXIT_FAILURE


def _add_simulate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="bot players and game servers playing on a running server",
        description="Bot players (hidden true skills) deposit, queue, accept ready checks and "
        "enter tournaments; bot game servers play the matches and report signed results. It "
        "reads the server's LEETGAMING_* settings: it makes its accounts through the same "
        "database, and pays by card through the same Stripe API. Prints progress on stderr, "
        "then a summary and, last, one JSON object of its figures. Exit 1 when the ledger "
        "does not reconcile afterwards.",
    )
    parser.add_argument("--url", help="the server (default: LEETGAMING_HOST and _PORT)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--players", type=_bounded_int(1, 1000), default=16)
    parser.add_argument("--servers", type=_bounded_int(1, 100), default=2)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--queue", default="cs2:1v1:eu", help="game:mode:region (1v1 modes)")
    parser.add_argument("--rest-s", type=float, default=3.0, help="mean pause between matches")
    parser.add_argument("--round-s", type=float, default=0.3, help="a simulated round's length")
    parser.add_argument("--decline-rate", type=float, default=0.02)
    parser.add_argument("--deposit-usd-cents", type=_bounded_int(100, 1_000_000), default=2_000)
    parser.add_argument("--tournament-every-s", type=float, default=60.0, help="0: no tournaments")
    parser.add_argument("--tournament-size", type=_bounded_int(2, 64), default=8)
    parser.add_argument("--entry-fee-usd-cents", type=_bounded_int(1, 100_000), default=500)
    parser.add_argument("--progress-s", type=float, default=5.0, help="0: no progress lines")
    parser.set_defaults(handler=_simulate)


def _nemesis(args: argparse.Namespace, settings: Settings) -> int:
    from leetgaming import nemesis

    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        print(
            "leetgaming: nemesis needs LEETGAMING_DATABASE_URL to name a PostgreSQL server "
            "(it creates and drops a database of its own there)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    options = nemesis.Options(
        minutes=args.minutes,
        seed=args.seed,
        postgres_url=settings.database_url,
        redis_server=args.redis_server,
        processes=args.processes,
        players=args.players,
        fault_every_s=args.fault_every_s,
    )
    outcome = asyncio.run(nemesis.run(options, lambda line: print(line, file=sys.stderr)))
    print(json.dumps(outcome.to_json(), sort_keys=True))
    return EXIT_OK if outcome.ok else EXIT_FAILURE


def _add_nemesis(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nemesis",
        help="move money through a cluster of its own while faults hit it; check the ledger",
        description="Starts serve processes on a database it creates on the PostgreSQL server "
        "of LEETGAMING_DATABASE_URL and on a Redis server of its own, has players grant, "
        "spend and pay entry fees through the REST API while a seeded schedule SIGKILLs and "
        "SIGSTOPs the processes, kills Redis and terminates PostgreSQL backends, then checks "
        "that no acknowledged operation was lost or applied twice and that the ledger "
        "reconciles. Prints one JSON object; exit 1 when a check fails.",
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=_bounded_int(1, 8), default=2)
    parser.add_argument("--players", type=_bounded_int(1, 500), default=12)
    parser.add_argument("--fault-every-s", type=float, default=3.0)
    parser.add_argument("--redis-server", default="redis-server", help="the binary to run")
    parser.set_defaults(handler=_nemesis)


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{low}..{high}")
        return value

    return parse


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
    _ensure_sqlite_directory(settings)

    async def run() -> None:
        store = await open_store(settings.database_url)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(run())
    print("migrated")
    return EXIT_OK


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level)
    _ensure_sqlite_directory(settings)

    async def run() -> tuple[bool, str]:
        store = await open_store(settings.database_url)
        try:
            report = await reconcile(store)
        finally:
            await store.close()
        if args.json:
            return report.ok, json.dumps(report.to_json(), indent=2, sort_keys=True)
        return report.ok, report.to_text()

    ok, text = asyncio.run(run())
    print(text)
    return EXIT_OK if ok else EXIT_FAILURE


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise IdentityError("mismatch", "the passwords differ")
    return first


T = TypeVar("T")


def _on_identity(settings: Settings, work: Callable[[Identity], Awaitable[T]]) -> T:
    """``work`` done by the identity service on the configured database (operator commands);
    :class:`IdentityError` comes out as is."""
    configure_logging(settings.log_level)
    _ensure_sqlite_directory(settings)

    async def run() -> T:
        database = await open_database(settings.database_url)
        try:
            identity = Identity.for_settings(settings, database)
            await identity.start()
            return await work(identity)
        finally:
            await database.close()

    return asyncio.run(run())


def _admin_create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        password = _read_password(args)
        user_id = _on_identity(settings, lambda i: i.create_admin(args.email, password))
    except IdentityError as exc:
        print(f"leetgaming: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"admin {user_id} created")
    return EXIT_OK


def _add_admin(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("admin", help="manage admin accounts (never over HTTP)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create an admin account",
        description="Create an admin account. The password is asked twice on the terminal, or "
        "read from the first line of standard input with --password-stdin.",
    )
    create.add_argument("--email", required=True)
    create.add_argument("--password-stdin", action="store_true")
    create.set_defaults(handler=_admin_create)


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        kid, start = _on_identity(settings, Identity.rotate_signing_key)
    except IdentityError as exc:
        print(f"leetgaming: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    when = datetime.datetime.fromtimestamp(start, datetime.UTC).isoformat()
    print(
        f"signing key {kid} signs new tokens from {when}; the one it replaces verifies its "
        f"tokens for {TOKEN_TTL_MAX_S // 60} minutes more"
    )
    return EXIT_OK


def _add_keys(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("keys", help="rotate the access tokens' signing key")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate",
        help="schedule a new signing key",
        description="Schedule a new signing key for access tokens. Every server process signs "
        "with it 30 s from now; tokens signed by the key it replaces stay valid for their "
        "lifetime. Keys are derived from LEETGAMING_SECRET_KEY, which this does not change.",
    )
    rotate.set_defaults(handler=_keys_rotate)


def _add_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP and websocket server",
        description="Run the server. With no LEETGAMING_* variables it runs on the embedded "
        "defaults: a SQLite file under ./var/ and the in-process broker.",
    )
    parser.add_argument(
        "--graceful-shutdown-s",
        type=float,
        default=30.0,
        help="seconds to let open requests finish after SIGTERM (default: %(default)s)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a simulation inside: bot players and game servers, card payments through "
        "localstripe (play money), on its own SQLite file (./var/demo.sqlite3); refused "
        "next to a real database, broker or payment rail",
    )
    parser.add_argument("--seed", type=int, default=1, help="the demo's seed")
    parser.set_defaults(handler=_serve)


def _add_migrate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "migrate", help="create or upgrade the database schema (LEETGAMING_DATABASE_URL)"
    )
    parser.set_defaults(handler=_migrate)


def _add_reconcile(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="recompute every ledger balance from its entries; exit 1 on any difference",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_reconcile)


def _protocol_schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(protocol_schema(), indent=1, sort_keys=True))
    return EXIT_OK


def _add_protocol_schema(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "protocol-schema",
        help="print the realtime protocol's JSON Schema (frontend/protocol.schema.json)",
    )
    parser.set_defaults(handler=_protocol_schema)


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_serve,
    _add_migrate,
    _add_reconcile,
    _add_admin,
    _add_keys,
    _add_protocol_schema,
    _add_simulate,
    _add_nemesis,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leetgaming",
        description="LeetGaming: real-time tournament and matchmaking server. Settings come "
        "from LEETGAMING_* environment variables (see README.md).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"leetgaming: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler: Handler = args.handler
    return handler(args, settings)
