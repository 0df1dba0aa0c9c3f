"""A connection pool that serves waiting tasks in the order they asked.

SQLAlchemy's asyncio pool keeps free connections in an `asyncio.Queue`, which lets a task that
has just arrived take a connection freed for a task already waiting; the waiter that loses goes
to the back of the line. Under a burst (more requests than connections) some requests then wait
far longer than the rest, or time out, while others pass. Here a freed connection goes straight
to the oldest waiter, and a newcomer queues behind the waiters.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty

T = TypeVar("T")


class FairAsyncQueue(AsyncAdaptedQueue[T]):
    """The pool's free connections, handed over first come, first served."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[T]] = deque()

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        if not self._waiters:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
        if not block:
            raise Empty()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return self.await_(self._wait(waiter, timeout))
        except TimeoutError as err:
            raise Empty() from err

    async def _wait(self, waiter: asyncio.Future[T], timeout: float | None) -> T:
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())  # handed over too late: to the next in line
            else:
                waiter.cancel()
                with suppress(ValueError):
                    self._waiters.remove(waiter)
            raise


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` whose waiting tasks are served in order."""

    _queue_class: Any = FairAsyncQueue
