from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leetgaming.app import create_app, sweep_if_leased
from leetgaming.health import PostgresProbe, Probe, RedisProbe, SqliteProbe
from leetgaming.settings import Settings
from matchmaking.redis_tickets import RedisTicketStore

from ..ws import unused_port


def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'lg.sqlite3'}")


def client_for(app: Starlette, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


class FailingProbe:
    async def check(self) -> None:
        raise ConnectionRefusedError("cannot reach postgresql://lg:dbpass@10.1.2.3:5432/lg")


class HangingProbe:
    async def check(self) -> None:
        await asyncio.sleep(60)


class CountingProbe:
    def __init__(self) -> None:
        self.calls = 0

    async def check(self) -> None:
        self.calls += 1


def test_probes_satisfy_the_protocol() -> None:
    for probe in (
        SqliteProbe("x"),
        PostgresProbe("postgresql://x"),
        RedisProbe("redis://x"),
        CountingProbe(),
    ):
        assert isinstance(probe, Probe)


async def test_healthz_is_ok(tmp_path: Path) -> None:
    async with client_for(create_app(sqlite_settings(tmp_path))) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_does_not_depend_on_the_database(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path), database=FailingProbe())
    async with client_for(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503


async def test_readyz_with_sqlite_opens_the_file(tmp_path: Path) -> None:
    async with client_for(create_app(sqlite_settings(tmp_path))) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert (tmp_path / "lg.sqlite3").exists()


async def test_readyz_fails_when_the_sqlite_directory_is_missing(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'missing' / 'lg.sqlite3'}")
    async with client_for(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed: OperationalError"},
    }


@pytest.mark.postgres
@pytest.mark.redis
async def test_readyz_with_real_postgres_and_redis(postgres_url: str, redis_url: str) -> None:
    settings = Settings(database_url=postgres_url, redis_url=redis_url)
    async with client_for(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.postgres
async def test_readyz_fails_when_redis_does_not_answer(postgres_url: str) -> None:
    port = unused_port()
    settings = Settings(database_url=postgres_url, redis_url=f"redis://:sekret@127.0.0.1:{port}/0")
    async with client_for(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "failed: ConnectionError"},
    }
    assert "sekret" not in response.text
    assert str(port) not in response.text


async def test_readyz_fails_when_postgres_does_not_answer(tmp_path: Path) -> None:
    port = unused_port()
    settings = Settings(database_url=f"postgresql://lg:dbpass@127.0.0.1:{port}/lg")
    async with client_for(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed: ConnectionRefusedError"},
    }
    assert "dbpass" not in response.text


@pytest.mark.postgres
async def test_readyz_fails_when_the_postgres_database_does_not_exist(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/lgtest_does_not_exist"
    async with client_for(create_app(Settings(database_url=missing))) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "failed: InvalidCatalogNameError"}


async def test_readyz_reports_a_probe_that_hangs_as_timeout(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path), redis=HangingProbe(), probe_timeout_s=0.05)
    async with client_for(app) as client:
        response = await asyncio.wait_for(client.get("/readyz"), 5)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "timeout"},
    }


async def test_readyz_uses_the_injected_database_probe(tmp_path: Path) -> None:
    probe = CountingProbe()
    app = create_app(sqlite_settings(tmp_path), database=probe)
    async with client_for(app) as client:
        response = await client.get("/readyz")
        await client.get("/readyz")
    assert response.status_code == 200
    assert probe.calls == 2
    assert not (tmp_path / "lg.sqlite3").exists()  # the default SQLite probe never ran


async def test_a_failed_check_is_logged_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leetgaming.app")
    app = create_app(sqlite_settings(tmp_path), database=FailingProbe())
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.json()["checks"] == {"database": "failed: ConnectionRefusedError"}
    (record,) = [r for r in caplog.records if r.msg == "readiness check failed"]
    assert record.__dict__["probe"] == "FailingProbe"
    assert "ConnectionRefusedError" in record.__dict__["error"]


async def test_unknown_path_is_a_problem_document(tmp_path: Path) -> None:
    async with client_for(create_app(sqlite_settings(tmp_path))) as client:
        response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "instance": "/no/such/thing",
    }


async def test_wrong_method_is_a_problem_document_with_allow(tmp_path: Path) -> None:
    async with client_for(create_app(sqlite_settings(tmp_path))) as client:
        response = await client.post("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert response.json()["title"] == "Method Not Allowed"


async def test_an_unhandled_error_is_a_500_problem_without_details(tmp_path: Path) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("secret internals: postgresql://lg:dbpass@db/lg")

    app = create_app(sqlite_settings(tmp_path))
    app.router.routes.insert(0, Route("/boom/{n:int}", boom))  # before the portal at /
    async with client_for(app, raise_app_exceptions=False) as client:
        response = await client.get("/boom/7")
        metrics = await client.get("/metrics")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "instance": "/boom/7",
    }
    assert "dbpass" not in response.text
    assert "internals" not in response.text
    line = 'leetgaming_http_requests_total{method="GET",route="/boom/{n:int}",status="500"} 1.0'
    assert line in metrics.text


async def test_metrics_count_requests_by_route_template(tmp_path: Path) -> None:
    async with client_for(create_app(sqlite_settings(tmp_path))) as client:
        await client.get("/healthz")
        await client.get("/healthz?token=abc")
        await client.get("/players/123")
        await client.get("/players/456")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert 'leetgaming_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert (
        'leetgaming_http_requests_total{method="GET",route="<unmatched>",status="404"} 2.0' in text
    )
    assert "/players/123" not in text
    assert "token" not in text
    assert (
        'leetgaming_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 2.0'
        in text
    )


async def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    first = create_app(sqlite_settings(tmp_path))
    second = create_app(sqlite_settings(tmp_path))
    async with client_for(first) as client:
        await client.get("/healthz")
    async with client_for(second) as client:
        text = (await client.get("/metrics")).text
    assert 'route="/healthz"' not in text


async def test_requests_are_logged_without_the_query_string(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="leetgaming.http")
    async with client_for(create_app(sqlite_settings(tmp_path))) as client:
        await client.get("/healthz?access_token=tok-123")
        await client.get("/nowhere?token=tok-456")
    records = [r for r in caplog.records if r.name == "leetgaming.http"]
    assert [(r.__dict__["path"], r.__dict__["status"], r.levelno) for r in records] == [
        ("/healthz", 200, logging.DEBUG),
        ("/nowhere", 404, logging.INFO),
    ]
    assert records[0].__dict__["route"] == "/healthz"
    assert records[0].__dict__["method"] == "GET"
    assert records[0].__dict__["duration_ms"] >= 0
    assert "tok-" not in caplog.text


class _CountingPlay:
    def __init__(self) -> None:
        self.sweeps = 0

    async def sweep(self) -> int:
        self.sweeps += 1
        return 0


async def test_one_process_at_a_time_sweeps_and_another_takes_over(
    redis_url: str, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = RedisTicketStore(client, redis_prefix)
    a, b = _CountingPlay(), _CountingPlay()
    try:
        for _ in range(3):
            assert await sweep_if_leased(store, "node-a", a, ttl_s=0.5)  # type: ignore[arg-type]
            assert not await sweep_if_leased(store, "node-b", b, ttl_s=0.5)  # type: ignore[arg-type]
        # node-a stops (dies): its lease runs out and node-b sweeps from then on.
        await asyncio.sleep(0.7)
        assert await sweep_if_leased(store, "node-b", b, ttl_s=0.5)  # type: ignore[arg-type]
        assert not await sweep_if_leased(store, "node-a", a, ttl_s=0.5)  # type: ignore[arg-type]
        assert (a.sweeps, b.sweeps) == (3, 1)
    finally:
        await client.aclose()
