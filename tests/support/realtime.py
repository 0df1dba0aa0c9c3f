"""A WebSocket client of `GET /v1/realtime` for tests and benchmarks (the `websockets` library)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class Socket:
    """One client socket; `next()` skips the server's keep-alive pings."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls, url: str, token: str | None = None, *, rcvbuf: int | None = None, **kwargs: Any
    ) -> Socket:
        """`rcvbuf` fixes the kernel's receive buffer (no auto-tuning), for slow readers."""
        target = f"{url}?token={token}" if token else url
        if rcvbuf is not None:
            host, port = urlsplit(url).hostname, urlsplit(url).port
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.setblocking(False)
            await asyncio.get_running_loop().sock_connect(raw, (host, port))
            kwargs["sock"] = raw
        return cls(await connect(target, open_timeout=10, **kwargs))

    @classmethod
    async def ready(cls, url: str, token: str, *channels: str, **kwargs: Any) -> Socket:
        """Connected, authenticated and subscribed to `channels`."""
        sock = await cls.open(url, token, **kwargs)
        await sock.expect("ready")
        for channel in channels:
            await sock.send({"type": "subscribe", "channel": channel})
            await sock.expect("subscribed")
        return sock

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            message: dict[str, Any] = orjson.loads(raw)
            if message["type"] != "ping":
                return message

    async def expect(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next message of `kind`, skipping others (returned messages must match)."""
        while True:
            message = await self.next(timeout)
            if message["type"] == kind:
                return message

    async def closed(self, timeout: float = 10) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes: (close code, messages read before it)."""
        seen: list[dict[str, Any]] = []
        try:
            while True:
                seen.append(orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout)))
        except ConnectionClosed:
            pass
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code if rcvd else None), seen

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Messages (pings aside) that arrive within `seconds`: for checking nothing came."""
        seen = []
        try:
            while True:
                message = await self.next(seconds)
                seen.append(message)
        except TimeoutError:
            return seen

    async def close(self) -> None:
        await self.ws.close()
