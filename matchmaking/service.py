"""The matchmaker's shell: a loop per process that works the queues it holds the lease of.

Every ``tick_s`` (1 s by default), for each configured queue: take or renew the queue's lease
(only one process works a queue at a time; any number may run), drop expired tickets, read the
waiting ones, run the pure :func:`~matchmaking.matcher.tick`, and claim its proposals with the
lease's fencing token. Each claimed match and each expired ticket is handed to ``on_event`` (the
composition root publishes them and starts the ready check). The loop reads the clock; the
core does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .matcher import QueueRules, tick
from .rating import RatingModel
from .tickets import ClaimedMatch, TicketStore, Waiting

log = logging.getLogger("leetgaming.matchmaker")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str  # "cs2:5v5:eu": game, mode, region
    rules: QueueRules
    model: RatingModel
    ticket_ttl_s: float = 600.0
    ready_check_s: float = 20.0  # matched players accept within this
    disconnect_grace_s: float = 30.0  # a player who reconnects within it keeps the ticket
    decline_cooldown_s: float = 60.0  # who declines (or lets the check lapse) waits this long


@dataclass(frozen=True, slots=True)
class Matched:
    match: ClaimedMatch
    waited_s: dict[str, float]  # per ticket


@dataclass(frozen=True, slots=True)
class Expired:
    waiting: Waiting


Event = Matched | Expired


class Matchmaker:
    def __init__(
        self,
        store: TicketStore,
        queues: Mapping[str, QueueConfig],
        owner: str,
        on_event: Callable[[Event], Awaitable[None]],
        *,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.queues = dict(queues)
        self.owner = owner
        self.on_event = on_event
        self.tick_s = tick_s
        self.clock = clock
        self.lease_ttl_s = max(3 * tick_s, 2.0)
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    async def run_once(self) -> list[Event]:
        """One tick over every queue; the events it produced (also given to ``on_event``)."""
        events: list[Event] = []
        for config in self.queues.values():
            token = await self.store.acquire(config.name, self.owner, self.lease_ttl_s)
            if token is None:
                continue  # another process works this queue
            now = self.clock()
            events.extend(Expired(w) for w in await self.store.expire(config.name, now))
            waiting = await self.store.waiting(config.name)
            proposals = tick([w.ticket for w in waiting], now, config.rules, config.model)
            claimed = await self.store.claim(config.name, token, proposals)
            for match in claimed:
                if match is not None:
                    waited = {t.id: now - t.waiting_since_s for team in match.teams for t in team}
                    events.append(Matched(match, waited))
        self.ticks += 1
        for event in events:
            await self.on_event(event)
        return events

    async def _loop(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.run_once()
            except Exception:  # Redis away: try again next tick, never die
                log.exception("matchmaker tick failed")
            await asyncio.sleep(max(0.0, self.tick_s - (self.clock() - started)))

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for name in self.queues:
            with contextlib.suppress(Exception):
                await self.store.release(name, self.owner)
