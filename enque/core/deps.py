"""FastAPI dependencies every domain uses: the runtime and a database session."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.runtime import Runtime

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def current_runtime(request: Request) -> Runtime:
    """`get_runtime` as a dependency (`async`: FastAPI runs plain functions in a thread pool)."""
    return request.app.state.runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; reads may run beside writers on SQLite."""
    runtime: Runtime = request.app.state.runtime
    session = runtime.db.session(write=request.method not in READ_METHODS)
    try:
        yield session
    finally:
        try:
            await session.close()
        except (DBAPIError, OSError) as exc:
            # the database went away after the work was done: the answer stands (a write
            # that was not committed is rolled back by the server with the connection)
            log.warning("closing the request's session failed: %s", exc.__class__.__name__)
