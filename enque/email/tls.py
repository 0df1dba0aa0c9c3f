"""TLS for mail servers: the system's trust store, plus an optional CA bundle of one's own."""

from __future__ import annotations

import ssl
from typing import Literal

Security = Literal["tls", "starttls", "none"]


def client_context(extra_ca_file: str | None = None) -> ssl.SSLContext:
    """Certificate and host name checked; `EMAIL_CA_FILE` adds a private CA (self-hosted mail)."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context


def is_tls_failure(exc: BaseException) -> bool:
    """True when an exception (or what caused it) is a TLS handshake or certificate failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
