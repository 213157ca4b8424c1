"""Match demos: uploaded by the CS2 plugins (or an admin), stored, parsed, compared.

- An upload is streamed into blob storage (:mod:`replays.blobs`) chunk by chunk, never held
  whole: at most ``demo_bytes_max``, a CS2 demo's magic bytes first, its SHA-256 computed on
  the way. The same file uploaded again for the match is the same demo.
- Each demo is parsed in a separate process (:mod:`replays.worker`), one at a time per
  server process: a demo only partly readable keeps what could be read and says what could
  not (``partial``); a parser that fails or runs out of time marks it ``failed``.
- Its stats sit next to the plugin's for the same map, with the differences listed.
- Demos older than ``demo_retention_days`` are deleted from storage (their rows stay,
  ``expired``). A demo left unparsed by a crash is parsed again by the sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from leetgaming.db import Database, is_unique_violation
from replays.blobs import BlobRefused, BlobStore, LocalBlobStore
from replays.demo import MAGIC, differences, is_cs2_demo, stats_of
from replays.worker import ParseFailed, parse_demo

log = logging.getLogger("leetgaming.demos")

DEMO_BYTES_MAX: Final = 1024 * 1024 * 1024
BACKUP_BYTES_MAX: Final = 4 * 1024 * 1024
RETENTION_DAYS: Final = 30
STALE_PARSE_S: Final = 600.0  # a demo "parsing" this long was left by a crash
FILENAME_CHARS_MAX: Final = 128
_FILENAME: Final = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

MIGRATIONS: Final = [
    """
    CREATE TABLE demos (
        id TEXT PRIMARY KEY,
        match TEXT NOT NULL,
        map_number INTEGER,
        filename TEXT NOT NULL,
        source TEXT NOT NULL,
        blob_key TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        uploaded_s DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        stats TEXT,
        error TEXT,
        parsed_s DOUBLE PRECISION,
        expired_s DOUBLE PRECISION
    );
    CREATE UNIQUE INDEX demos_file ON demos (match, sha256);
    CREATE INDEX demos_by_match ON demos (match, uploaded_s);
    CREATE INDEX demos_by_state ON demos (state, uploaded_s)
    """,
    # the CS2 plugins' round backups (get5_remote_backup_url): what a restore needs
    """
    CREATE TABLE match_backups (
        match TEXT NOT NULL,
        filename TEXT NOT NULL,
        map_number INTEGER,
        round_number INTEGER,
        blob_key TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        received_s DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (match, filename)
    )
    """,
]

# Plugin-stats lookup: (match, map number) -> (map name, {steamid: figures}) or None
PluginStats = Callable[
    [str, int], Awaitable[tuple[str | None, Mapping[str, Mapping[str, int]]] | None]
]


class DemoRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _row(row: Any) -> dict[str, object]:
    keys = (
        "id",
        "match",
        "map_number",
        "filename",
        "source",
        "size_bytes",
        "sha256",
        "uploaded_s",
        "state",
        "stats",
        "error",
    )
    doc = dict(zip(keys, row, strict=True))
    doc["stats"] = None if doc["stats"] is None else json.loads(str(doc["stats"]))
    return doc


_COLUMNS: Final = (
    "id, match, map_number, filename, source, size_bytes, sha256, uploaded_s, state, stats, error"
)


class Demos:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Callable[[], float],
        plugin_stats: PluginStats,
        bytes_max: int = DEMO_BYTES_MAX,
        retention_days: int = RETENTION_DAYS,
        parse: Callable[[str], Awaitable[dict[str, Any]]] = parse_demo,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.plugin_stats = plugin_stats
        self.bytes_max = bytes_max
        self.retention_days = retention_days
        self.parse = parse
        self._parsing = asyncio.Semaphore(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.db.migrate("demos", MIGRATIONS)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def upload(
        self,
        match_id: str,
        chunks: AsyncIterator[bytes],
        filename: str | None,
        map_number: int | None,
        source: str,
    ) -> tuple[dict[str, object], bool]:
        """Store a demo from ``chunks``; the demo and whether it is new (an upload of a file
        stored for the match already is that demo)."""
        name = filename or "match.dem"
        if not _FILENAME.match(name) or not name.endswith(".dem"):
            raise DemoRefused(
                422, "bad_filename", "a demo's file name is letters, digits, . _ - and ends .dem"
            )
        if map_number is not None and not 0 <= map_number < 16:
            raise DemoRefused(422, "bad_map_number", "map numbers are 0..15")
        key = (
            f"demos/{hashlib.sha256(match_id.encode()).hexdigest()[:24]}/{os.urandom(8).hex()}.dem"
        )
        try:
            stored = await self.blobs.put(key, chunks, self.bytes_max, is_cs2_demo, len(MAGIC))
        except BlobRefused as refused:
            if refused.code == "too_large":
                raise DemoRefused(
                    413, "too_large", f"demos are at most {self.bytes_max} bytes"
                ) from None
            raise DemoRefused(415, "not_a_demo", "this is not a CS2 demo (PBDEMS2)") from None
        demo_id = "d" + hashlib.sha256(f"{match_id}:{stored.sha256}".encode()).hexdigest()[:24]
        try:
            await self.db.execute(
                "INSERT INTO demos (id, match, map_number, filename, source, blob_key, "
                "size_bytes, sha256, uploaded_s, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                demo_id,
                match_id,
                map_number,
                name,
                source,
                stored.key,
                stored.size_bytes,
                stored.sha256,
                self.clock(),
                "stored",
            )
        except Exception as exc:
            if not is_unique_violation(exc):
                await self.blobs.delete(stored.key)
                raise
            await self.blobs.delete(stored.key)  # the same file again: the demo stored first
            existing = await self._by_sha(match_id, stored.sha256)
            assert existing is not None
            return existing, False
        demo = await self._by_sha(match_id, stored.sha256)
        assert demo is not None
        self._parse_later(str(demo["id"]))
        return demo, True

    async def _by_sha(self, match_id: str, sha256: str) -> dict[str, object] | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM demos WHERE match = ? AND sha256 = ?",  # nosec B608
            match_id,
            sha256,
        )
        return None if row is None else _row(row)

    async def get(self, match_id: str, demo_id: str) -> dict[str, object] | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM demos WHERE match = ? AND id = ?",  # nosec B608
            match_id,
            demo_id,
        )
        return None if row is None else _row(row)

    async def of_match(self, match_id: str) -> list[dict[str, object]]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM demos WHERE match = ? ORDER BY uploaded_s, id",  # nosec B608
            match_id,
        )
        return [_row(r) for r in rows]

    async def blob_of(self, match_id: str, demo_id: str) -> tuple[str, int, str] | None:
        """(blob key, size, file name) of a demo still stored."""
        row = await self.db.fetchone(
            "SELECT blob_key, size_bytes, filename FROM demos WHERE match = ? AND id = ? "
            "AND state <> ?",
            match_id,
            demo_id,
            "expired",
        )
        return None if row is None else (str(row[0]), int(row[1]), str(row[2]))

    async def backup(
        self,
        match_id: str,
        chunks: AsyncIterator[bytes],
        filename: str | None,
        map_number: int | None,
        round_number: int | None,
    ) -> tuple[dict[str, object], bool]:
        """Keep a plugin's round backup (at most ``BACKUP_BYTES_MAX``); the same file name
        again for the match is the backup stored first."""
        name = filename or ""
        if not _FILENAME.match(name):
            raise DemoRefused(422, "bad_filename", "a backup's file name is letters, digits, . _ -")
        for number in (map_number, round_number):
            if number is not None and not 0 <= number < 1000:
                raise DemoRefused(422, "bad_number", "map and round numbers are 0..999")
        known = await self._backup(match_id, name)
        if known is not None:
            return known, False
        digest = hashlib.sha256(match_id.encode()).hexdigest()[:24]
        key = f"backups/{digest}/{os.urandom(8).hex()}.cfg"
        try:
            stored = await self.blobs.put(key, chunks, BACKUP_BYTES_MAX)
        except BlobRefused:
            raise DemoRefused(
                413, "too_large", f"backups are at most {BACKUP_BYTES_MAX} bytes"
            ) from None
        inserted = await self.db.execute(
            "INSERT INTO match_backups (match, filename, map_number, round_number, blob_key, "
            "size_bytes, sha256, received_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (match, filename) DO NOTHING",
            match_id,
            name,
            map_number,
            round_number,
            stored.key,
            stored.size_bytes,
            stored.sha256,
            self.clock(),
        )
        if not inserted:
            await self.blobs.delete(stored.key)
        found = await self._backup(match_id, name)
        assert found is not None
        return found, bool(inserted)

    async def _backup(self, match_id: str, filename: str) -> dict[str, object] | None:
        row = await self.db.fetchone(
            "SELECT filename, map_number, round_number, size_bytes, sha256, received_s "
            "FROM match_backups WHERE match = ? AND filename = ?",
            match_id,
            filename,
        )
        keys = ("filename", "map_number", "round_number", "size_bytes", "sha256", "received_s")
        return None if row is None else dict(zip(keys, row, strict=True))

    async def backups(self, match_id: str) -> list[dict[str, object]]:
        rows = await self.db.fetch(
            "SELECT filename, map_number, round_number, size_bytes, sha256, received_s "
            "FROM match_backups WHERE match = ? ORDER BY received_s, filename",
            match_id,
        )
        keys = ("filename", "map_number", "round_number", "size_bytes", "sha256", "received_s")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # Parsing ----------------------------------------------------------------------------

    def _parse_later(self, demo_id: str) -> None:
        task = asyncio.create_task(self.parse_one(demo_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def parse_one(self, demo_id: str) -> str | None:
        """Parse a stored demo (one at a time in this process); its new state."""
        async with self._parsing:
            claimed = await self.db.execute(
                "UPDATE demos SET state = ?, parsed_s = ? WHERE id = ? AND state IN (?, ?)",
                "parsing",
                self.clock(),
                demo_id,
                "stored",
                "stale",
            )
            if not claimed:
                return None
            row = await self.db.fetchone(
                "SELECT match, map_number, blob_key FROM demos WHERE id = ?", demo_id
            )
            assert row is not None
            match_id, map_number, key = str(row[0]), row[1], str(row[2])
            try:
                async with self._local_copy(key) as path:
                    parsed = await self.parse(str(path))
            except ParseFailed as failed:
                await self._finish(demo_id, "failed", None, str(failed))
                return "failed"
            stats = stats_of(parsed)
            report: dict[str, Any] = {"demo": stats.as_json(), "plugin": None, "differences": []}
            if map_number is not None:
                plugin = await self.plugin_stats(match_id, int(map_number))
                if plugin is not None:
                    plugin_map, figures = plugin
                    report["plugin"] = {"map_name": plugin_map, "players": figures}
                    report["differences"] = differences(stats, figures, plugin_map)
            state = "parsed" if stats.complete else "partial"
            await self._finish(demo_id, state, report, None)
            return state

    async def _finish(
        self, demo_id: str, state: str, report: dict[str, Any] | None, error: str | None
    ) -> None:
        await self.db.execute(
            "UPDATE demos SET state = ?, stats = ?, error = ?, parsed_s = ? WHERE id = ?",
            state,
            None if report is None else json.dumps(report),
            error,
            self.clock(),
            demo_id,
        )

    @contextlib.asynccontextmanager
    async def _local_copy(self, key: str) -> AsyncIterator[Path]:
        """A local file with the blob's bytes: the file itself for a local store, else a
        temporary copy streamed down (deleted afterwards)."""
        if isinstance(self.blobs, LocalBlobStore):
            yield self.blobs.root / key
            return
        handle, name = tempfile.mkstemp(suffix=".dem")
        try:
            with os.fdopen(handle, "wb") as out:
                async for chunk in self.blobs.read(key):
                    out.write(chunk)
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    # Upkeep -----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Demos past retention deleted from storage; demos a crash left unparsed queued
        again. How many demos changed."""
        now = self.clock()
        changed = 0
        old = await self.db.fetch(
            "SELECT id, blob_key FROM demos WHERE state <> ? AND uploaded_s < ?",
            "expired",
            now - self.retention_days * 86_400,
        )
        for demo_id, key in old:
            await self.blobs.delete(str(key))
            changed += await self.db.execute(
                "UPDATE demos SET state = ?, expired_s = ? WHERE id = ?", "expired", now, demo_id
            )
        stale = await self.db.fetch(
            "SELECT id FROM demos WHERE (state = ? AND parsed_s < ?) OR (state = ? AND uploaded_s < ?)",
            "parsing",
            now - STALE_PARSE_S,
            "stored",
            now - STALE_PARSE_S,
        )
        for (demo_id,) in stale:
            changed += await self.db.execute(
                "UPDATE demos SET state = ? WHERE id = ? AND state IN (?, ?)",
                "stale",
                demo_id,
                "parsing",
                "stored",
            )
            self._parse_later(str(demo_id))
        return changed
