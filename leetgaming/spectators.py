"""The spectator delay: live match channels seen now by referees, later by everyone else.

A live match has two audiences. Referees and admins follow ``referee:<match>`` and see each
event as it happens. Everyone else, players included, follows ``match:<match>`` and sees the
same events ``delay_s`` later: the delay is fixed when the match goes live
(``max(spectator_delay_min_s, tv_delay + 30)``: the GOTV delay plus a margin, so the public
feed is never ahead of GOTV) and never lowered during it. A player on a call with a friend
watching the public feed learns nothing they could not have seen on GOTV.

Delayed bodies go through ``spectator_feed``, written in the transaction that produced them
where there is one (a CS2 event's), so a body acknowledged is a body published later even
across a crash; one process (the sweeper's) publishes the due rows in order. The public
channel's offsets, history and recovery therefore are the delayed view's, and
:meth:`SpectatorFeed.snapshot` answers the latest body the public has seen.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import orjson

from leetgaming.db import Conn, Database, one_of

log = logging.getLogger("leetgaming.spectators")

DELAY_MIN_S: Final = 120.0
TV_MARGIN_S: Final = 30.0
DUE_PER_PUMP_MAX: Final = 2000
PUBLISHED_PER_TRIP_MAX: Final = 200  # bodies per broker round trip (and per UPDATE)
KEPT_S: Final = 86_400.0  # published rows are kept a day (snapshots read the latest)

MIGRATIONS_SQLITE: Final = [
    """
    CREATE TABLE spectator_feed (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        due_s DOUBLE PRECISION NOT NULL,
        body TEXT,
        snapshot TEXT,
        published_s DOUBLE PRECISION
    );
    CREATE INDEX spectator_feed_due ON spectator_feed (published_s, due_s);
    CREATE INDEX spectator_feed_channel ON spectator_feed (channel, id)
    """
]
MIGRATIONS_POSTGRES: Final = [
    MIGRATIONS_SQLITE[0].replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
]

_INSERT: Final = "INSERT INTO spectator_feed (channel, due_s, body, snapshot) VALUES (?, ?, ?, ?)"

Publish = Callable[[str, object], Awaitable[int]]
PublishMany = Callable[[Sequence[tuple[str, object]]], Awaitable[object]]


def delay_for(tv_delay_s: float, delay_min_s: float = DELAY_MIN_S) -> float:
    """The delay a match's public feed keeps: at least ``delay_min_s``, and GOTV's plus
    ``TV_MARGIN_S``."""
    return max(delay_min_s, tv_delay_s + TV_MARGIN_S)


def referee_channel(match_id: str) -> str:
    return f"referee:{match_id}"


class SpectatorFeed:
    def __init__(
        self,
        db: Database,
        publish: Publish,
        clock: Callable[[], float],
        publish_many: PublishMany | None = None,
    ) -> None:
        self.db = db
        self.publish = publish
        self.publish_many = publish_many
        self.clock = clock

    async def start(self) -> None:
        pg = self.db.dialect == "postgresql"
        await self.db.migrate("spectators", MIGRATIONS_POSTGRES if pg else MIGRATIONS_SQLITE)

    async def delayed(
        self,
        match_id: str,
        bodies: Sequence[dict[str, Any]],
        delay_s: float,
        conn: Conn | None = None,
    ) -> None:
        """``bodies`` for ``match:<match_id>`` in ``delay_s`` (written in ``conn``'s
        transaction when given); the referees get them now, from :meth:`now`."""
        await self.later(f"match:{match_id}", bodies, delay_s, conn)

    async def delayed_many(
        self,
        items: Sequence[tuple[str, Sequence[dict[str, Any]], float, dict[str, Any] | None]],
        conn: Conn | None = None,
    ) -> None:
        """:meth:`delayed` for each (match, bodies, delay_s, snapshot), in one statement; a
        snapshot given is what :meth:`public_snapshot` answers once its bodies are out."""
        now = self.clock()
        rows: list[tuple[str, float, str, str | None]] = []
        for match_id, bodies, delay_s, snapshot in items:
            rows += [
                (f"match:{match_id}", now + delay_s, orjson.dumps(b).decode(), None) for b in bodies
            ]
            if snapshot is not None and bodies:
                rows[-1] = (*rows[-1][:3], orjson.dumps(snapshot).decode())
        if rows:
            await (conn or self.db).executemany(_INSERT, rows)

    async def later(
        self,
        channel: str,
        bodies: Sequence[dict[str, Any]],
        delay_s: float,
        conn: Conn | None = None,
        snapshot: dict[str, Any] | None = None,
        baseline: dict[str, Any] | None = None,
    ) -> None:
        """``bodies`` for ``channel`` in ``delay_s``; with ``snapshot``, what the public's
        snapshot becomes once they are out, and ``baseline``, what it is until then when the
        channel has had nothing delayed yet."""
        db = conn or self.db
        now = self.clock()
        if baseline is not None:
            known = await db.fetchone("SELECT 1 FROM spectator_feed WHERE channel = ?", channel)
            if known is None:
                await db.execute(
                    "INSERT INTO spectator_feed (channel, due_s, snapshot, published_s) "
                    "VALUES (?, ?, ?, ?)",
                    channel,
                    now,
                    orjson.dumps(baseline).decode(),
                    now,
                )
        rows: list[tuple[str, float, str, str | None]] = [
            (channel, now + delay_s, orjson.dumps(b).decode(), None) for b in bodies
        ]
        if snapshot is not None and rows:
            rows[-1] = (*rows[-1][:3], orjson.dumps(snapshot).decode())
        await db.executemany(_INSERT, rows)

    async def public_snapshot(self, channel: str) -> dict[str, Any] | None:
        """The snapshot the public of ``channel`` holds now (None: nothing delayed yet)."""
        row = await self.db.fetchone(
            "SELECT snapshot FROM spectator_feed WHERE channel = ? AND published_s IS NOT NULL "
            "AND snapshot IS NOT NULL ORDER BY id DESC LIMIT 1",
            channel,
        )
        return None if row is None else dict(orjson.loads(row[0]))

    async def now(self, match_id: str, bodies: Sequence[dict[str, Any]]) -> None:
        await self.now_many([(match_id, bodies)])

    async def now_many(self, items: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> None:
        """Each (match, bodies) to its referees, in order (one round trip when the hub can)."""
        await self._publish(
            [(referee_channel(match_id), body) for match_id, bodies in items for body in bodies]
        )

    async def _publish(self, items: Sequence[tuple[str, object]]) -> None:
        if not items:
            return
        if self.publish_many is not None:
            await self.publish_many(items)
            return
        for channel, body in items:
            await self.publish(channel, body)

    async def pump(self) -> int:
        """Publish what is due, oldest first; how many bodies. Run by one process at a time
        (a crash between a publication and its mark publishes it again: at least once)."""
        now = self.clock()
        rows = await self.db.fetch(
            "SELECT id, channel, body FROM spectator_feed WHERE published_s IS NULL "
            "AND due_s <= ? ORDER BY id LIMIT ?",
            now,
            DUE_PER_PUMP_MAX,
        )
        for start in range(0, len(rows), PUBLISHED_PER_TRIP_MAX):
            chunk = rows[start : start + PUBLISHED_PER_TRIP_MAX]
            await self._publish([(str(channel), orjson.loads(body)) for _, channel, body in chunk])
            among, ids = one_of(self.db.dialect, [row[0] for row in chunk])
            await self.db.execute(
                f"UPDATE spectator_feed SET published_s = ? WHERE id {among}",  # nosec B608
                now,
                *ids,
            )
        if rows:
            await self.db.execute(
                "DELETE FROM spectator_feed WHERE published_s IS NOT NULL AND published_s < ?",
                now - KEPT_S,
            )
        return len(rows)

    async def snapshot(self, match_id: str) -> dict[str, Any] | None:
        """The latest body the public feed of ``match_id`` has published."""
        row = await self.db.fetchone(
            "SELECT body FROM spectator_feed WHERE channel = ? AND published_s IS NOT NULL "
            "AND body IS NOT NULL ORDER BY id DESC LIMIT 1",
            f"match:{match_id}",
        )
        return None if row is None else dict(orjson.loads(row[0]))
