"""The shared parts of one process: settings, database, cache, broker, reactions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from enque.config import Settings
from enque.core.cache import Cache, make_cache
from enque.core.crypto import Cipher
from enque.core.db import Database
from enque.core.events import Broker, Reaction, make_broker

if TYPE_CHECKING:
    from enque.core.ratelimit import RateLimiter


@dataclass
class Runtime:
    settings: Settings
    db: Database
    cache: Cache
    broker: Broker
    cipher: Cipher
    reactions: list[Reaction] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)  # storage, scheduler, mailer…
    limiter: RateLimiter | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        db = Database(settings)
        cipher = Cipher(
            settings.resolved_encryption_key(),
            [k for k in settings.encryption_keys_old.split(",") if k.strip()],
        )
        runtime = cls(
            settings=settings,
            db=db,
            cache=make_cache(settings.redis_url, settings.redis_prefix),
            broker=make_broker(settings.redis_url, settings.redis_prefix),
            cipher=cipher,
        )
        db.attach(runtime)
        return runtime

    def register_job(
        self, name: str, interval_seconds: float, job: Callable[[], Awaitable[Any]]
    ) -> None:
        """A periodic job, run once per tick across processes (core/scheduler.py)."""
        from enque.core.scheduler import scheduler_of

        scheduler_of(self).register(name, interval_seconds, job)

    async def start(self) -> None:
        await self.broker.start()

    async def close(self) -> None:
        await self.broker.stop()
        await self.cache.close()
        await self.db.dispose()


def runtime_of(session: AsyncSession) -> Runtime:
    """The runtime a session was opened from (sessions carry it in `info`)."""
    return session.info["runtime"]
