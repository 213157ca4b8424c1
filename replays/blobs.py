"""Blob storage: a port with a local-folder adapter (embedded) and an S3-compatible one.

Objects are written from an async stream of chunks, checked as they arrive: a size limit, a
check of the first bytes, and the SHA-256 of the whole, so nothing is held in memory whole;
an object that fails a check is not kept. Reads take a byte range.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

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


# S3-compatible -------------------------------------------------------------------------------

PART_BYTES: Final = 8 * 1024 * 1024  # a multipart upload's parts (S3's minimum is 5 MiB)
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


def sigv4_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    payload_sha256: str,
    access_key: str,
    secret_key: str,
    region: str,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """``headers`` plus the AWS Signature Version 4 ``Authorization`` (and the
    ``x-amz-date`` and ``x-amz-content-sha256`` it signs) for one request."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {k.lower(): v.strip() for k, v in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_sha256
    names = sorted(signed)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query),
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for step in (day, region, service, "aws4_request"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in headers.items()}
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_sha256
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


class S3BlobStore:
    """Objects in an S3-compatible bucket (path-style ``<endpoint>/<bucket>/<key>``), written
    by multipart upload a part at a time (one part in memory at most), read by range."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base = f"{endpoint.rstrip('/')}/{bucket}"
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.client = client or httpx.AsyncClient(timeout=60)
        self.clock = clock

    async def _send(
        self,
        method: str,
        key: str,
        query: str = "",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        url = f"{self.base}/{quote(check_key(key), safe='/-_.~')}" + (f"?{query}" if query else "")
        signed = sigv4_headers(
            method,
            url,
            headers or {},
            hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256,
            self.access_key,
            self.secret_key,
            self.region,
            self.clock(),
        )
        request = self.client.build_request(method, url, content=body or None, headers=signed)
        return await self.client.send(request, stream=stream)

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        limit_bytes: int,
        check_head: Callable[[bytes], bool] | None = None,
        head_bytes: int = 0,
    ) -> Stored:
        checked = _Checked(limit_bytes, check_head, head_bytes)
        buffer = bytearray()
        upload: str | None = None
        parts: list[str] = []
        try:
            async for chunk in chunks:
                checked.take(chunk)
                buffer += chunk
                if len(buffer) >= PART_BYTES:
                    if upload is None:
                        upload = await self._start(key)
                    parts.append(await self._part(key, upload, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            checked.done()
            if upload is None:  # small: one PUT
                answer = await self._send("PUT", key, body=bytes(buffer))
                _expect(answer, "PUT")
            else:
                if buffer:
                    parts.append(await self._part(key, upload, len(parts) + 1, bytes(buffer)))
                listed = "".join(
                    f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
                    for n, etag in enumerate(parts, 1)
                )
                body = f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode()
                answer = await self._send("POST", key, f"uploadId={quote(upload)}", body)
                _expect(answer, "CompleteMultipartUpload")
                if b"<Error>" in answer.content:
                    raise OSError("S3 CompleteMultipartUpload failed")
        except BaseException:
            if upload is not None:
                with contextlib.suppress(Exception):
                    await self._send("DELETE", key, f"uploadId={quote(upload)}")
            raise
        return Stored(key, checked.size, checked.digest.hexdigest())

    async def _start(self, key: str) -> str:
        answer = await self._send("POST", key, "uploads=")
        _expect(answer, "CreateMultipartUpload")
        found = re.search(rb"<UploadId>([^<]+)</UploadId>", answer.content)
        if found is None:
            raise OSError("S3 CreateMultipartUpload answered no UploadId")
        return found.group(1).decode()

    async def _part(self, key: str, upload: str, number: int, data: bytes) -> str:
        answer = await self._send("PUT", key, f"partNumber={number}&uploadId={quote(upload)}", data)
        _expect(answer, "UploadPart")
        return answer.headers["etag"]

    async def size(self, key: str) -> int | None:
        answer = await self._send("HEAD", key)
        if answer.status_code == 404:
            return None
        _expect(answer, "HEAD")
        return int(answer.headers["content-length"])

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        wanted = f"bytes={start}-" + ("" if end is None else str(end - 1))
        answer = await self._send("GET", key, headers={"Range": wanted}, stream=True)
        try:
            _expect(answer, "GET")
            async for chunk in answer.aiter_bytes(READ_CHUNK_BYTES):
                yield chunk
        finally:
            await answer.aclose()

    async def delete(self, key: str) -> None:
        answer = await self._send("DELETE", key)
        if answer.status_code not in (200, 204, 404):
            _expect(answer, "DELETE")


def _expect(answer: httpx.Response, what: str) -> None:
    if answer.status_code >= 300:
        raise OSError(f"S3 {what} answered HTTP {answer.status_code}")
