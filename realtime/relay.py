"""Which Redis pub/sub channels a node listens to.

A node takes from Redis only the publications of channels it has subscribers for: one
``SUBSCRIBE pub:<ch>`` when a channel gets its first local subscriber, ``UNSUBSCRIBE`` when it
loses its last. (Listening to ``pub:*`` made every node receive and parse every publication of
the cluster, most of them for nobody it serves.)

A subscription counts from Redis's confirmation, not from sending the command: a client's
``subscribe`` is answered only after it, and the channel's history is read only after it, so
a publication is either in that history or delivered live (or both, and the hub drops the copy).

Confirmations for one channel come back in the order the commands were sent, on the one pub/sub
connection; each ``SUBSCRIBE`` sent queues a future that the next confirmation for that channel
resolves, so a quick subscribe, unsubscribe, subscribe resolves each waiter by its own command.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

SUBSCRIBE_TIMEOUT_S = 5.0


class RelaySubscriptionError(Exception):
    """Redis did not confirm a subscription in time."""


class RelayChannels:
    """The pub/sub channels (full Redis names) this node is subscribed to, or subscribing."""

    def __init__(self, pubsub: Any, *, timeout_s: float = SUBSCRIBE_TIMEOUT_S) -> None:
        self._pubsub = pubsub
        self._timeout_s = timeout_s
        self._on: dict[bytes, asyncio.Future[None]] = {}  # wanted: confirmed once done
        self._unconfirmed: dict[bytes, deque[asyncio.Future[None]]] = {}

    def __contains__(self, name: bytes) -> bool:
        return name in self._on

    def __len__(self) -> int:
        return len(self._on)

    async def want(self, name: bytes) -> None:
        """Be subscribed to ``name``: returns once Redis has confirmed it."""
        confirmed = self._on.get(name)
        if confirmed is None:
            confirmed = asyncio.get_running_loop().create_future()
            self._on[name] = confirmed
            waiting = self._unconfirmed.setdefault(name, deque())
            waiting.append(confirmed)
            try:
                await self._pubsub.subscribe(name)
            except BaseException:
                self._on.pop(name, None)
                waiting.remove(confirmed)
                if not waiting:
                    del self._unconfirmed[name]
                raise
        if confirmed.done():
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.shield(confirmed)
        except TimeoutError as late:
            raise RelaySubscriptionError(f"no confirmation for {name!r}") from late

    async def drop(self, name: bytes) -> None:
        """Stop listening to ``name`` (its confirmation, if still due, is left to arrive)."""
        if self._on.pop(name, None) is not None:
            await self._pubsub.unsubscribe(name)

    def wanted(self) -> list[bytes]:
        """The channels wanted now (subscribed or subscribing)."""
        return list(self._on)

    async def rebind(self, pubsub: Any) -> None:
        """Go on with a new pub/sub connection (the last one failed): subscribe it to every
        channel wanted. Their confirmations arrive with nobody waiting, and change nothing."""
        self._pubsub = pubsub
        names = self.wanted()
        if names:
            await pubsub.subscribe(*names)

    def confirmed(self, name: bytes) -> None:
        """Redis confirmed a ``SUBSCRIBE`` of ``name`` (from the listening loop). A
        confirmation nobody waits for (a resubscription after a reconnect) changes nothing."""
        waiting = self._unconfirmed.get(name)
        if not waiting:
            return
        future = waiting.popleft()
        if not waiting:
            del self._unconfirmed[name]
        if not future.done():
            future.set_result(None)
