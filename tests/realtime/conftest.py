"""A real uvicorn server on a loopback port around the test app, and WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from enque.realtime.hub import Hub
from tests.support.services import free_port


@pytest.fixture(scope="session")
async def live_url(app: Any) -> AsyncIterator[str]:
    """`ws://…` of uvicorn serving the session's app (its lifespan already runs)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest's
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{port}/v1/realtime"
    server.should_exit = True
    await task


@pytest.fixture
def hub(app: Any) -> Hub:
    return app.state.runtime.services["realtime"]  # type: ignore[no-any-return]
