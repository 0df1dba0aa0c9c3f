"""Rate limits with the `limits` library: in-process storage, or Redis shared by all workers."""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from enque.config import Settings
from enque.core.cache import redis_retry
from enque.core.errors import ApiError


@dataclass(frozen=True)
class LimitState:
    limit: int
    remaining: int
    reset_at: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class RateLimiter:
    """Named limits (`auth`, `read`, `write`) checked against a client key."""

    def __init__(self, settings: Settings, prefix: str = "enque") -> None:
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{prefix}rl",
                # an unreachable Redis fails the request quickly (503), never hangs it
                socket_timeout=5,
                socket_connect_timeout=5,
                retry=redis_retry(),
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        # O(1) per hit whatever the limit (a moving window keeps every timestamp)
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self.enabled = settings.rate_limit_enabled
        self.limits: dict[str, RateLimitItem] = {
            "auth": parse(settings.rate_limit_auth),
            "read": parse(settings.rate_limit_read),
            "write": parse(settings.rate_limit_write),
        }

    async def hit(self, name: str, key: str) -> LimitState | None:
        """Count one request; raise RATE_LIMIT_EXCEEDED (429) when over the limit."""
        if not self.enabled:
            return None
        item = self.limits[name]
        allowed = await self.strategy.hit(item, name, key)
        stats = await self.strategy.get_window_stats(item, name, key)
        state = LimitState(item.amount, stats.remaining, int(stats.reset_time))
        if not allowed:
            retry_after = max(1, int(stats.reset_time - time.time()) + 1)
            raise ApiError(
                "RATE_LIMIT_EXCEEDED",
                "Too many requests; retry later",
                headers={**state.headers(), "Retry-After": str(retry_after)},
            )
        return state

    async def reset(self) -> None:
        await self.storage.reset()
