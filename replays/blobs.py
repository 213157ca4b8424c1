"""Blob storage: a port with a local-folder adapter (embedded) and an S3-compatible one.

Objects are written from an async stream of chunks, checked as they arrive: a size limit, a
check of the first bytes, and the SHA-256 of the whole, so nothing is held in memory whole;
an object that fails a check is not kept. Reads take a byte range.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

READ_CHUNK_BYTES: Final = 256 * 1024
_KEY: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")


class BlobRefused(Exception):
    """A stream that did not pass a check (the code says which: ``too_large``,
    ``bad_content``); nothing was kept."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Stored:
    key: str
    size_bytes: int
    sha256: str


class BlobStore(Protocol):
    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        limit_bytes: int,
        check_head: Callable[[bytes], bool] | None = None,
        head_bytes: int = 0,
    ) -> Stored: ...

    async def size(self, key: str) -> int | None: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...

    async def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"not a blob key: {key!r}")
    return key


class _Checked:
    """The checks of :meth:`BlobStore.put`, as chunks go through."""

    def __init__(
        self, limit_bytes: int, check_head: Callable[[bytes], bool] | None, head_bytes: int
    ) -> None:
        self.limit_bytes = limit_bytes
        self.check_head = check_head
        self.head_bytes = head_bytes
        self.head = b""
        self.size = 0
        self.digest = hashlib.sha256()

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit_bytes:
            raise BlobRefused("too_large", f"at most {self.limit_bytes} bytes")
        if self.check_head is not None and len(self.head) < self.head_bytes:
            self.head += chunk[: self.head_bytes - len(self.head)]
            if len(self.head) >= self.head_bytes and not self.check_head(self.head):
                raise BlobRefused("bad_content", "the content is not of the expected kind")
        self.digest.update(chunk)

    def done(self) -> None:
        if self.check_head is not None and len(self.head) < self.head_bytes:
            raise BlobRefused("bad_content", "too short to be of the expected kind")


class LocalBlobStore:
    """Objects as files under ``root`` (written to a temporary name, renamed when complete:
    a reader never sees half an object)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)  # made with the first object

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        limit_bytes: int,
        check_head: Callable[[bytes], bool] | None = None,
        head_bytes: int = 0,
    ) -> Stored:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        checked = _Checked(limit_bytes, check_head, head_bytes)
        try:
            with partial.open("wb") as out:
                async for chunk in chunks:
                    checked.take(chunk)
                    out.write(chunk)
                checked.done()
                out.flush()
                os.fsync(out.fileno())
            partial.replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        return Stored(key, checked.size, checked.digest.hexdigest())

    async def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive; None: to the end)."""
        with self._path(key).open("rb") as source:
            source.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = source.read(
                    READ_CHUNK_BYTES if left is None else min(left, READ_CHUNK_BYTES)
                )
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
