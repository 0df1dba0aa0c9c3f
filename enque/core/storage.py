"""File storage behind one interface, chosen by `STORAGE_URL` (on the `obstore` library).

- `file://./data/files` (default): a folder on local disk.
- `s3://bucket?endpoint=…&region=…`: S3-compatible object storage (AWS S3, Cloudflare R2,
  MinIO). Credentials come from the usual `AWS_*` environment variables, or
  `access_key_id` / `secret_access_key` in the query.

Every operation streams: uploads are written part by part (a few MB in memory at most),
downloads are read in chunks, ranges are fetched as ranges.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, S3Store

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config

PART_SIZE = 5 * 1024 * 1024  # the smallest part S3 accepts
READ_CHUNK = 256 * 1024
_S3_OPTIONS = {
    "region",
    "endpoint",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "virtual_hosted_style_request",
}


_PARTIAL = re.compile(r"#\d+$")  # obstore's temporary name for a local write in progress


class StorageNotFound(LookupError):
    """No object under that key."""


@dataclass(frozen=True)
class Download:
    """An open object: its total size, the byte range being sent (end exclusive) and the bytes."""

    size: int
    start: int
    end: int
    chunks: AsyncIterator[bytes]


class Storage:
    """One bucket or folder. `kind` is `file` or `s3`."""

    def __init__(self, store: Any, kind: str, description: str) -> None:
        self.store = store
        self.kind = kind
        self.description = description

    @property
    def signs_urls(self) -> bool:
        return self.kind == "s3"

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        content_disposition: str | None = None,
    ) -> None:
        """Write the object from a stream of chunks. If the stream raises, nothing is left."""
        attributes: dict[str, str] = {}
        if self.kind == "s3":
            if content_type:
                attributes["Content-Type"] = content_type
            if content_disposition:
                attributes["Content-Disposition"] = content_disposition
        try:
            await obstore.put_async(
                self.store,
                key,
                chunks,
                attributes=cast("Any", attributes) or None,
                use_multipart=True,
                chunk_size=PART_SIZE,
                max_concurrency=2,
            )
        except BaseException:
            await self.delete(key)
            raise

    async def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        content_disposition: str | None = None,
    ) -> None:
        """Write bytes already in memory, in parts of `PART_SIZE`."""

        async def parts() -> AsyncIterator[bytes]:
            view = memoryview(data)
            if not data:
                yield b""
            for start in range(0, len(data), PART_SIZE):
                yield bytes(view[start : start + PART_SIZE])

        await self.put(
            key, parts(), content_type=content_type, content_disposition=content_disposition
        )

    async def size(self, key: str) -> int:
        try:
            meta = await obstore.head_async(self.store, key)
        except (NotFoundError, FileNotFoundError) as exc:
            raise StorageNotFound(key) from exc
        return int(meta["size"])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except StorageNotFound:
            return False
        return True

    async def open(self, key: str, start: int | None = None, end: int | None = None) -> Download:
        """Stream the object, or bytes `start` to `end` (exclusive) of it."""
        options: dict[str, Any] = {}
        if start is not None:
            options["range"] = (start, end) if end is not None else {"offset": start}
        try:
            result = await obstore.get_async(self.store, key, options=cast("Any", options) or None)
        except (NotFoundError, FileNotFoundError) as exc:
            raise StorageNotFound(key) from exc
        first, last = result.range

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream(min_chunk_size=READ_CHUNK):
                yield bytes(chunk)

        return Download(size=int(result.meta["size"]), start=first, end=last, chunks=chunks())

    async def read(self, key: str) -> bytes:
        download = await self.open(key)
        return b"".join([chunk async for chunk in download.chunks])

    async def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""
        try:
            await obstore.delete_async(self.store, key)
        except (NotFoundError, FileNotFoundError):
            return

    async def signed_url(self, key: str, expires: timedelta = timedelta(minutes=5)) -> str:
        """A short-lived GET URL (S3 only)."""
        if self.kind != "s3":
            raise RuntimeError("local storage has no signed URLs")
        return await obstore.sign_async(self.store, "GET", key, expires)

    async def remove_partial_writes(self, older_than: float) -> int:
        """Local disk: remove what writes cut short left behind (a process killed mid-upload
        leaves the object's `<key>#<n>` temporary file), once older than `older_than` seconds.
        On S3 an unfinished multipart upload is the bucket's lifecycle rule's to abort."""
        if self.kind != "file":
            return 0
        root = Path(self.description.removeprefix("file://"))
        cutoff = time.time() - older_than

        def sweep() -> int:
            removed = 0
            for path in root.rglob("*#*"):
                partial = _PARTIAL.search(path.name) and path.is_file()
                if partial and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
            return removed

        return await asyncio.to_thread(sweep)

    async def ping(self) -> None:
        """Raise when the storage cannot be listed (wrong folder, bucket or credentials)."""
        async for _ in obstore.list(self.store, chunk_size=1):
            break


def open_storage(url: str) -> Storage:
    """The storage named by a `STORAGE_URL`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.parse.unquote(parts.netloc + parts.path)).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return Storage(LocalStore(path.resolve()), "file", f"file://{path}")
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("STORAGE_URL must be file://folder or s3://bucket?endpoint=…&region=…")
    query = dict(urllib.parse.parse_qsl(parts.query))
    unknown = set(query) - _S3_OPTIONS
    if unknown:
        raise ValueError(f"unknown storage options: {', '.join(sorted(unknown))}")
    config: dict[str, Any] = dict(query)
    client: dict[str, Any] = {"timeout": "60s", "connect_timeout": "5s"}
    if config.get("endpoint", "").startswith("http://"):
        client["allow_http"] = True
    store = S3Store(
        parts.netloc,
        config=cast("S3Config", config),
        client_options=cast("ClientConfig", client),
    )
    return Storage(store, "s3", f"s3://{parts.netloc}")


def storage_of(runtime: Any) -> Storage:
    """The runtime's storage, opened on first use."""
    storage = runtime.services.get("storage")
    if storage is None:
        storage = open_storage(runtime.settings.storage_url)
        runtime.services["storage"] = storage
    return cast(Storage, storage)
