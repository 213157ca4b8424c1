"""``leetgaming serve --demo``: the server on the embedded defaults with a simulation inside.

Card payments go to localstripe (a Stripe-compatible server, the ``demo`` extra), run in the
same event loop on a free local port and kept in memory; it signs its webhooks with a secret
made for this run and delivers them to our ``/v1/webhooks/stripe``, as Stripe would. The
simulation (:mod:`leetgaming.simulate`) then plays on the server over its own websocket and
REST API: bots deposit, queue, play and enter tournaments, so a newcomer who opens the portal
sees live queues, brackets filling up and prizes paid.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import httpx

from leetgaming.settings import Settings
from leetgaming.simulate import Options

DEMO_DATABASE_URL: Final = "sqlite:///./var/demo.sqlite3"
DEMO_STRIPE_KEY: Final = "sk_test_demo"
DEMO_REST_REQUESTS_PER_MIN: Final = 100_000  # every bot comes from 127.0.0.1


class DemoUnavailable(Exception):
    pass


def quiet_clients() -> None:
    """The bots' HTTP client and localstripe log every request at info: not worth a line."""
    for name in ("httpx", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


@asynccontextmanager
async def localstripe() -> AsyncIterator[str]:
    """localstripe listening on 127.0.0.1 in this event loop, from an empty store that is
    never written to disk: its base URL."""
    try:
        from aiohttp import web
        from localstripe import resources, server
    except ImportError as missing:
        raise DemoUnavailable(
            "the demo needs localstripe: pip install -e '.[demo]' (./scripts/serve does)"
        ) from missing
    # It would pickle its whole store to /tmp on every write (shared with any other instance)
    resources.Store.dump_to_disk = lambda self: None
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# Settings the demo refuses to run with: its card money is play money, so it must never share
# a database, a broker or a real payment rail with a real deployment
DEMO_REFUSES: Final = (
    "database_url",
    "redis_url",
    "stripe_secret_key",
    "stripe_webhook_secret",
    "stripe_api_base",
    "stripe_publishable_key",
    "chains_file",
    "chain_address_seed",
    "chain_hot_wallet_key",
)


def demo_settings(settings: Settings, stripe_base: str) -> Settings:
    """The demo's settings: its own SQLite file, card payments through localstripe, and a REST
    rate that lets the bots (all on one address) through."""
    return dataclasses.replace(
        settings,
        database_url=DEMO_DATABASE_URL,
        stripe_secret_key=DEMO_STRIPE_KEY,
        stripe_webhook_secret="whsec_" + secrets.token_hex(16),
        stripe_api_base=stripe_base,
        rest_requests_per_min=max(settings.rest_requests_per_min, DEMO_REST_REQUESTS_PER_MIN),
    )


async def deliver_webhooks(stripe_base: str, settings: Settings, listen_url: str) -> None:
    """Have localstripe sign its events with our webhook secret and post them to us."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{stripe_base}/_config/webhooks/leetgaming",
            data={
                "url": f"{listen_url}/v1/webhooks/stripe",
                "secret": str(settings.stripe_webhook_secret),
            },
        )
        answer.raise_for_status()


def demo_options(settings: Settings, listen_url: str, seed: int) -> Options:
    return Options(
        base_url=listen_url,
        seed=seed,
        players=16,
        servers=2,
        duration_s=None,
        rest_s=6.0,
        round_s=0.2,
        tournament_every_s=20.0,
        tournament_size=8,
        stripe_api_base=settings.stripe_api_base,
        stripe_key=str(settings.stripe_secret_key),
        progress_s=30.0,
    )
