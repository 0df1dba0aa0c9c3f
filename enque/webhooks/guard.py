"""SSRF protection: webhook connections only reach public addresses.

The check runs where the connection is made (an httpcore network backend), after DNS
resolution and on every connection, redirects included, and the socket goes to the address
that was checked, so a name cannot resolve to a public address for the check and a private one
for the connection. Hosts named in `WEBHOOK_ALLOWED_HOSTS` (names or addresses, comma
separated: an admin's choice, or 127.0.0.1 for a local test receiver) are let through; the
match is on the host as the URL (or a redirect) writes it, so allowing `127.0.0.1` does not
allow `localhost` or a public name that resolves to a private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpcore

from enque.core.errors import validation_error

if TYPE_CHECKING:
    import httpx


class BlockedAddress(httpcore.ConnectError):
    """The target resolves to an address webhooks may not reach."""


def allowed_hosts(raw: str) -> frozenset[str]:
    return frozenset(h.strip().lower().strip("[]") for h in raw.split(",") if h.strip())


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused(host: str, addresses: Iterable[str], allowed: frozenset[str]) -> list[str]:
    """The addresses of `host` a webhook may not reach (empty: all fine)."""
    if host.lower().strip("[]") in allowed:
        return []
    return [a for a in addresses if not is_public(a)]


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
    import httpx  # on first use: importing it slows every start

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


async def check_url(url: str, allowed: frozenset[str], *, path: str = "url") -> str:
    """422 unless `url` is http(s) with a host that does not resolve to a refused address.

    A name that does not resolve now is accepted (deliveries check again and fail visibly).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise validation_error(path, "must be an http or https URL with a host")
    if parts.username or parts.password:
        raise validation_error(path, "must not carry credentials")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise validation_error(path, "invalid port") from exc
    try:
        addresses = await asyncio.wait_for(resolve(host, port), 3.0)
    except (OSError, TimeoutError):
        return url
    if refused(host, addresses, allowed):
        raise validation_error(path, "must not point to a private, loopback or link-local address")
    return url
