"""The legacy file store (`--storage-from`): the old S3 bucket, or a local copy of it.

`s3://bucket?region=us-east-2&endpoint=http://127.0.0.1:9000` — credentials come from the
usual AWS_* environment variables (or `access_key_id`/`secret_access_key` in the query);
`file:///path/to/copy` reads a downloaded copy of the bucket with the same keys.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, S3Store

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config

_S3_OPTIONS = {"region", "endpoint", "access_key_id", "secret_access_key", "session_token"}


def open_store(url: str) -> Any:
    """An obstore store for the legacy files."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.parse.unquote(parts.netloc + parts.path))
        if not path.is_dir():
            raise ValueError(f"{path} is not a folder")
        return LocalStore(path)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("storage must be s3://bucket?… or file:///folder")
    query = dict(urllib.parse.parse_qsl(parts.query))
    unknown = set(query) - _S3_OPTIONS
    if unknown:
        raise ValueError(f"unknown storage options: {', '.join(sorted(unknown))}")
    config: dict[str, Any] = {k: v for k, v in query.items() if k in _S3_OPTIONS}
    client: dict[str, Any] = {}
    if config.get("endpoint", "").startswith("http://"):
        client["allow_http"] = True
    return S3Store(
        parts.netloc,
        config=cast("S3Config", config),
        client_options=cast("ClientConfig", client),
    )


async def fetch(store: Any, key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist."""
    try:
        result = await obstore.get_async(store, key)
    except (NotFoundError, FileNotFoundError):
        return None
    return bytes(await result.bytes_async())


async def reachable(store: Any) -> None:
    """Raise when the store cannot be listed (wrong bucket, endpoint or credentials)."""
    stream = obstore.list(store, chunk_size=1)
    async for _ in stream:
        break


def open_target(url: str) -> Any:
    """The store the files are copied to: `file:///folder` (created) or `s3://…`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.parse.unquote(parts.netloc + parts.path))
        path.mkdir(parents=True, exist_ok=True)
    return open_store(url)


async def put(store: Any, key: str, data: bytes) -> None:
    """Write `data` at `key` (a whole object: readers never see half of it)."""
    await obstore.put_async(store, key, data)
