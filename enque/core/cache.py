"""Key-value cache with TTL: in-process by default, Redis when `REDIS_URL` is set.

Used for token revocation, short-lived nonces, presence and locks; anything that must be
shared between workers lives here so that setting REDIS_URL moves it out of the process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def get_many(self, *keys: str) -> list[str | None]: ...
    async def set(self, key: str, value: str, ttl: int | None = None) -> None: ...
    async def set_nx(self, key: str, value: str, ttl: int) -> bool: ...
    async def delete(self, *keys: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def incr(self, key: str, ttl: int) -> int: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A dict with expiry, for one process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    def _sweep(self) -> None:
        if len(self._data) > 10_000:
            moment = time.monotonic()
            for key in [k for k, (_, e) in self._data.items() if e is not None and e <= moment]:
                del self._data[key]

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def get_many(self, *keys: str) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        self._sweep()
        self._data[key] = (value, time.monotonic() + ttl if ttl else None)

    async def set_nx(self, key: str, value: str, ttl: int) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl)
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def incr(self, key: str, ttl: int) -> int:
        async with self._lock:
            current = self._live(key)
            value = int(current or 0) + 1
            expires = self._data[key][1] if current is not None else time.monotonic() + ttl
            self._data[key] = (str(value), expires)
            return value

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """The same interface on Redis, every key under one prefix."""

    def __init__(self, url: str, prefix: str = "enque:") -> None:
        # A blocking pool: a burst above the pool size waits for a connection instead of
        # failing with "Too many connections" (each WebSocket handshake reads the cache too).
        import redis.asyncio as aioredis  # only when Redis is configured: the import is slow

        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=100,
            timeout=5,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=redis_retry(),
        )
        self.client = aioredis.Redis.from_pool(pool)
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self._k(key))
        return None if value is None else str(value)

    async def get_many(self, *keys: str) -> list[str | None]:
        """One round trip for several keys."""
        values = await self.client.mget([self._k(k) for k in keys])
        return [None if v is None else str(v) for v in values]

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        await self.client.set(self._k(key), value, ex=ttl)

    async def set_nx(self, key: str, value: str, ttl: int) -> bool:
        return bool(await self.client.set(self._k(key), value, ex=ttl, nx=True))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self.client.delete(*(self._k(k) for k in keys))

    async def exists(self, key: str) -> bool:
        return bool(await self.client.exists(self._k(key)))

    async def incr(self, key: str, ttl: int) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(self._k(key))
            pipe.expire(self._k(key), ttl, nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


def redis_retry() -> Any:
    """Once more, on a new connection, when a pooled one turns out dead (Redis restarted):
    the first request after an outage succeeds instead of meeting a stale socket."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def redis_unavailable_errors(redis_url: str | None) -> tuple[type[Exception], ...]:
    """The exceptions that mean Redis cannot be reached (none when Redis is not used)."""
    if not redis_url:
        return ()
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError)


def make_cache(redis_url: str | None, prefix: str = "enque:") -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else MemoryCache()
