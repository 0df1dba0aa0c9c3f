"""FastAPI dependencies every domain uses: the runtime and a database session."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.runtime import Runtime

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def current_runtime(request: Request) -> Runtime:
    """`get_runtime` as a dependency (`async`: FastAPI runs plain functions in a thread pool)."""
    return request.app.state.runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; reads may run beside writers on SQLite."""
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.session(write=request.method not in READ_METHODS) as session:
        yield session
