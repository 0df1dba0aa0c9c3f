"""SSRF protection: webhook connections only reach public addresses.

The check runs where the connection is made (an httpcore network backend, in
`enque.webhooks.transport`), after DNS resolution and on every connection, redirects included,
and the socket goes to the address that was checked, so a name cannot resolve to a public
address for the check and a private one for the connection. Hosts named in
`WEBHOOK_ALLOWED_HOSTS` (names or addresses, comma separated: an admin's choice, or 127.0.0.1
for a local test receiver) are let through; the match is on the host as the URL (or a
redirect) writes it, so allowing `127.0.0.1` does not allow `localhost` or a public name that
resolves to a private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from enque.core.errors import validation_error


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
