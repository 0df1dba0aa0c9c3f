"""The HTTP client of webhook deliveries: every connection passes the address check of
`enque.webhooks.guard` (see there). Imported when the first delivery is sent: httpcore and
httpx slow every start."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable

import httpcore
import httpx

from enque.webhooks.guard import refused, resolve


class BlockedAddress(httpcore.ConnectError):
    """The target resolves to an address webhooks may not reach."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allowed: Callable[[], frozenset[str]]) -> None:
        self._allowed = allowed
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(resolve(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        bad = refused(host, addresses, self._allowed())
        if bad or not addresses:
            raise BlockedAddress(f"{host} resolves to a non-public address ({', '.join(bad)})")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    allowed: Callable[[], frozenset[str]], *, timeout: float = 10.0, max_connections: int = 50
) -> httpx.AsyncClient:
    """An HTTP client whose every connection passes the address check (no proxies from env)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx does not take a network backend; its pool does (same settings as httpx's own).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=4.0,  # below the common 5 s server keep-alive: few dead reuses
        network_backend=GuardedBackend(allowed),
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=True,
        max_redirects=3,
        trust_env=False,
    )
