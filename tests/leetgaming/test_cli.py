from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from leetgaming.cli import describe, main
from leetgaming.settings import Settings

from ..ws import call, connect, until, unused_port

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
SECRET_KEY = "do-not-print-me-" + "0123456789abcdef" * 2


def location(url: str) -> str:
    """``host:port/path`` of a URL (what the banner shows), without scheme or credentials."""
    return url.split("://", 1)[-1].rsplit("@", 1)[-1].split("?", 1)[0]


def environment_without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEETGAMING_")}


@dataclass
class Server:
    process: subprocess.Popen[str]
    banner: str
    stderr_path: Path
    stdout_lines: list[str]

    def stderr_lines(self) -> list[str]:
        return self.stderr_path.read_text().splitlines()


@contextmanager
def running_server(cwd: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> Iterator[Server]:
    """Start ``python -m leetgaming serve ARGS``; yield once it printed its URL; never leave it
    running."""
    stderr_path = cwd / "stderr.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "leetgaming", "serve", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()
    stdout_lines: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        banner = None
        while banner is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"no URL printed within {STARTUP_TIMEOUT_S}s: {stderr_path.read_text()}"
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(
                    f"serve exited with {process.wait()} before printing its URL:\n"
                    f"{stderr_path.read_text()}"
                )
            stdout_lines.append(line)
            if line.startswith("LeetGaming is running at "):
                banner = line
        yield Server(process, banner, stderr_path, stdout_lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        assert process.stdout is not None
        process.stdout.close()
        while not lines.empty():
            line = lines.get()
            if line is not None:
                stdout_lines.append(line)


def stop(server: Server) -> int:
    """SIGTERM the server; its exit code, which must come within SHUTDOWN_TIMEOUT_S."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM")


@pytest.mark.slow
def test_serve_runs_on_the_embedded_defaults(tmp_path: Path) -> None:
    port = unused_port()
    # Only the port is set, so that the test does not depend on 8000 being free; everything
    # else is the embedded default: SQLite under ./var/ of the working directory, no broker.
    env = environment_without_settings() | {"LEETGAMING_PORT": str(port)}
    with running_server(tmp_path, env) as server:
        assert server.banner == (
            f"LeetGaming is running at http://127.0.0.1:{port}/ "
            "(database: sqlite ./var/leetgaming.sqlite3, broker: in-process)"
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            healthz = client.get("/healthz")
            readyz = client.get("/readyz")
            metrics = client.get("/metrics")
        assert healthz.status_code == 200
        assert healthz.json() == {"status": "ok"}
        assert readyz.status_code == 200
        assert readyz.json() == {"status": "ready", "checks": {"database": "ok"}}
        assert 'route="/healthz",status="200"} 1.0' in metrics.text
        assert "leetgaming_ledger_transfers_written_total 0.0" in metrics.text
        assert (tmp_path / "var" / "leetgaming.sqlite3").is_file()

        started = time.monotonic()
        assert stop(server) == 0
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT_S

    logged = [orjson.loads(line) for line in server.stderr_lines()]
    assert logged, "serve logged nothing"
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in logged)
    messages = [entry["msg"] for entry in logged]
    assert "starting" in messages
    assert "stopped" in messages  # the app's lifespan ran to its end: a graceful shutdown
    assert server.stdout_lines == [server.banner]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_serve_on_postgres_and_redis_never_prints_secrets(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    port = unused_port()
    env = environment_without_settings() | {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_DATABASE_URL": postgres_url,
        "LEETGAMING_REDIS_URL": redis_url,
        "LEETGAMING_REDIS_PREFIX": redis_prefix,  # its keys are the test's, and go with it
        "LEETGAMING_SECRET_KEY": SECRET_KEY,
        "LEETGAMING_LOG_LEVEL": "debug",
    }
    with running_server(tmp_path, env) as server:
        assert server.banner == (
            f"LeetGaming is running at http://127.0.0.1:{port}/ "
            f"(database: postgresql {location(postgres_url)}, broker: redis {location(redis_url)})"
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            readyz = client.get("/readyz?token=query-secret")
        assert readyz.status_code == 200, readyz.text
        assert readyz.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
        assert stop(server) == 0
    output = "\n".join(server.stdout_lines) + server.stderr_path.read_text()
    assert SECRET_KEY not in output
    assert "query-secret" not in output
    assert not (tmp_path / "var").exists()  # nothing of the embedded defaults was used


def test_bad_settings_exit_2_with_the_precise_message(tmp_path: Path) -> None:
    env = environment_without_settings() | {
        "LEETGAMING_PORT": "abc",
        "LEETGAMING_LOG_LEVEL": "loud",
    }
    result = subprocess.run(
        [sys.executable, "-m", "leetgaming", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "LEETGAMING_PORT: expected an integer 1..65535, got 'abc'" in result.stderr
    assert (
        "LEETGAMING_LOG_LEVEL: expected one of debug, info, warning, error, got 'loud'"
        in result.stderr
    )
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("command", ["serve", "migrate", "reconcile"])
def test_a_typo_in_a_variable_stops_every_command(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEETGAMING_REDIS_ULR", "redis://127.0.0.1:6379/0")
    assert main([command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "LEETGAMING_REDIS_ULR: unknown setting" in captured.err


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "migrate", "reconcile"):
        assert command in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "leetgaming"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: leetgaming" in result.stdout


def test_describe_names_the_backends_without_credentials() -> None:
    settings = Settings(
        host="0.0.0.0",
        port=9000,
        database_url="postgresql://lg:dbpass@db.internal:5432/leetgaming?sslmode=require",
        redis_url="redis://:redispass@cache.internal:6379/2",
    )
    assert describe(settings) == (
        "LeetGaming is running at http://127.0.0.1:9000/ "
        "(database: postgresql db.internal:5432/leetgaming, broker: redis cache.internal:6379/2)"
    )


def two_workers(port: int, postgres_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return environment_without_settings() | {
        "LEETGAMING_PORT": str(port),
        "LEETGAMING_DATABASE_URL": postgres_url,
        "LEETGAMING_REDIS_URL": redis_url,
        "LEETGAMING_REDIS_PREFIX": redis_prefix,
        "LEETGAMING_WORKERS": "2",
    }


@pytest.mark.slow
def test_several_workers_drain_every_websocket_on_sigterm(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    port = unused_port()
    env = two_workers(port, postgres_url, redis_url, redis_prefix)

    async def clients_drained(server: Server) -> list[tuple[int, int | None]]:
        url = f"ws://127.0.0.1:{port}/ws"
        sockets = [await connect(url) for _ in range(12)]
        for ws in sockets:
            await call(ws, type="auth", id="a")
            await call(ws, type="subscribe", id="s", ch="tournament:final")
        server.process.send_signal(signal.SIGTERM)
        outcomes = []
        for ws in sockets:
            frame = await until(ws, "disconnect")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            outcomes.append((frame["data"]["code"], ws.close_code))
        return outcomes

    with running_server(tmp_path, env) as server:
        outcomes = asyncio.run(clients_drained(server))
        assert outcomes == [(4000, 4000)] * 12
        assert server.process.wait(timeout=SHUTDOWN_TIMEOUT_S) == 0


@pytest.mark.slow
def test_workers_end_with_a_killed_parent(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    port = unused_port()
    env = two_workers(port, postgres_url, redis_url, redis_prefix)
    with running_server(tmp_path, env) as server, httpx.Client(timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        server.process.kill()
        server.process.wait()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                client.get(f"http://127.0.0.1:{port}/healthz")
            except httpx.TransportError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the workers outlived their parent")


def test_the_demo_refuses_to_run_next_to_real_money(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("LEETGAMING_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEETGAMING_DATABASE_URL", "postgresql://lg@db.internal/leetgaming")
    monkeypatch.setenv("LEETGAMING_STRIPE_SECRET_KEY", "sk_live_" + "x" * 24)
    monkeypatch.setenv("LEETGAMING_STRIPE_WEBHOOK_SECRET", "whsec_" + "x" * 24)
    assert main(["serve", "--demo"]) == 2
    err = capsys.readouterr().err
    assert "play money" in err and "LEETGAMING_DATABASE_URL" in err
    assert "LEETGAMING_STRIPE_SECRET_KEY" in err and "sk_live" not in err
