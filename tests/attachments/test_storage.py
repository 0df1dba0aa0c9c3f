"""The storage interface on local files and on a real S3-protocol server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from enque.core.storage import Storage, StorageNotFound, open_storage
from tests.support.api import unique
from tests.support.s3 import S3Server


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage(f"file://{tmp_path / 'files'}")
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = unique("b").lower().replace("_", "-")
    server.create_bucket(bucket)
    return open_storage(server.storage_url(bucket))


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_streamed_put_get_range_delete(storage: Storage) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)  # spans three multipart parts
    key = "ws/2026/11/object-1"
    await storage.put(key, chunks_of(data), content_type="application/octet-stream")

    assert await storage.size(key) == len(data)
    whole = await storage.open(key)
    got = b"".join([c async for c in whole.chunks])
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert (whole.start, whole.end, whole.size) == (0, len(data), len(data))

    part = await storage.open(key, 1000, 5000)
    assert b"".join([c async for c in part.chunks]) == data[1000:5000]
    assert (part.start, part.end, part.size) == (1000, 5000, len(data))
    tail = await storage.open(key, len(data) - 10)
    assert b"".join([c async for c in tail.chunks]) == data[-10:]

    await storage.delete(key)
    assert not await storage.exists(key)
    with pytest.raises(StorageNotFound):
        await storage.open(key)
    await storage.delete(key)  # missing is fine


async def test_failing_stream_leaves_nothing(storage: Storage) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(6 * 1024 * 1024)
        raise ValueError("client went away")

    with pytest.raises(ValueError):
        await storage.put("ws/broken", broken())
    assert not await storage.exists("ws/broken")


async def test_ping(storage: Storage) -> None:
    await storage.ping()


async def test_signed_url_serves_the_object_on_s3(s3_server: S3Server) -> None:
    bucket = unique("b").lower().replace("_", "-")
    s3_server.create_bucket(bucket)
    storage = open_storage(s3_server.storage_url(bucket))
    await storage.put_bytes("ws/a", b"hello signed", content_type="text/plain")
    url = await storage.signed_url("ws/a")
    assert "X-Amz-Signature" in url and "X-Amz-Expires=300" in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        assert response.status_code == 200
        assert response.content == b"hello signed"


def test_local_storage_has_no_signed_urls(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}")
    assert not storage.signs_urls


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError):
        open_storage("ftp://x")
    with pytest.raises(ValueError):
        open_storage("s3://bucket?colour=blue")
