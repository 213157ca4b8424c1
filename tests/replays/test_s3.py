"""The S3-compatible blob store: its request signing against AWS's published example, and
the store against moto's S3 server (the S3 wire protocol, over HTTP on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from replays.blobs import PART_BYTES, BlobRefused, S3BlobStore, sigv4_headers
from replays.demo import MAGIC, is_cs2_demo

KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_the_signature_matches_awss_published_example() -> None:
    signed = sigv4_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9"},
        hashlib.sha256(b"").hexdigest(),
        KEY_ID,
        SECRET,
        "us-east-1",
        datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def signed(method: str, url: str) -> dict[str, str]:
    """The headers of a bodiless request to the test server, signed."""
    empty = hashlib.sha256(b"").hexdigest()
    return sigv4_headers(method, url, {}, empty, KEY_ID, SECRET, "us-east-1", datetime.now(UTC))


async def bucket(endpoint: str, client: httpx.AsyncClient) -> str:
    name = f"lgtest-{os.urandom(4).hex()}"
    url = f"{endpoint}/{name}"
    made = await client.put(url, headers=signed("PUT", url))
    assert made.status_code == 200, made.text
    return name


async def chunks(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_objects_go_up_in_parts_and_come_down_by_range(s3_endpoint: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        store = S3BlobStore(
            s3_endpoint, await bucket(s3_endpoint, client), KEY_ID, SECRET, client=client
        )
        small = MAGIC + os.urandom(1000)
        stored = await store.put("demos/a/small.dem", chunks(small), 10**9, is_cs2_demo, 8)
        assert stored.sha256 == hashlib.sha256(small).hexdigest()
        big = MAGIC + os.urandom(2 * PART_BYTES + 12345)  # three parts
        stored = await store.put("demos/a/big.dem", chunks(big), 10**9, is_cs2_demo, 8)
        assert (stored.size_bytes, stored.sha256) == (len(big), hashlib.sha256(big).hexdigest())
        assert await store.size("demos/a/big.dem") == len(big)
        whole = b"".join([c async for c in store.read("demos/a/big.dem")])
        assert whole == big
        middle = b"".join(
            [c async for c in store.read("demos/a/big.dem", PART_BYTES - 5, PART_BYTES + 5)]
        )
        assert middle == big[PART_BYTES - 5 : PART_BYTES + 5]
        await store.delete("demos/a/big.dem")
        assert await store.size("demos/a/big.dem") is None
        assert await store.size("demos/a/small.dem") == len(small)


async def test_a_refused_stream_leaves_no_object_and_no_upload(s3_endpoint: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        name = await bucket(s3_endpoint, client)
        store = S3BlobStore(s3_endpoint, name, KEY_ID, SECRET, client=client)
        data = MAGIC + os.urandom(PART_BYTES + 100)
        with pytest.raises(BlobRefused) as refused:
            await store.put("demos/x.dem", chunks(data), PART_BYTES + 50, is_cs2_demo, 8)
        assert refused.value.code == "too_large"
        assert await store.size("demos/x.dem") is None
        url = f"{s3_endpoint}/{name}?uploads="
        listed = await client.get(url, headers=signed("GET", url))
        assert listed.status_code == 200 and b"<Upload>" not in listed.content
