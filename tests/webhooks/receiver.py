"""A real HTTP receiver on 127.0.0.1 (uvicorn in this process) that records what it gets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    # status to answer for the n-th request (0-based); 200 when it returns None
    answer: Callable[[int], int | None] = lambda n: 200
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    redirect_to: str | None = None  # answer every request with a 307 to this URL

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        index = len(self.received)
        self.received.append(Received(scope["path"], headers, b"".join(chunks), time.time()))
        self.arrived.set()
        if self.redirect_to is not None:
            location = [(b"location", self.redirect_to.encode())]
            await send({"type": "http.response.start", "status": 307, "headers": location})
            await send({"type": "http.response.body", "body": b""})
            return
        status = self.answer(index) or 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": f"answer {status}".encode()})


@contextlib.asynccontextmanager
async def serve(receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    receiver = receiver or Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    config = uvicorn.Config(
        receiver.app, log_level="warning", lifespan="off", access_log=False, interface="asgi3"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()
