"""SMTP channel adapter (aiosmtplib): send to the envelope recipients, classify failures.

aiosmtplib is imported when a connection is made or a failure classified: not at start.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from enque.email.errors import (
    AuthenticationFailed,
    ChannelError,
    PermanentError,
    TemporaryError,
    TlsFailed,
)
from enque.email.tls import Security, client_context, is_tls_failure

if TYPE_CHECKING:
    import aiosmtplib


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


@dataclass(frozen=True)
class SendResult:
    accepted: list[str]
    refused: dict[str, str]  # recipient → server reply, when some (not all) were refused


def _client(settings: SmtpSettings, context: ssl.SSLContext | None) -> aiosmtplib.SMTP:
    import aiosmtplib

    context = context or client_context()
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        tls_context=context,
        timeout=settings.timeout,
    )


async def _open(settings: SmtpSettings, context: ssl.SSLContext | None) -> aiosmtplib.SMTP:
    smtp = _client(settings, context)
    await smtp.connect()
    try:
        if settings.username:
            await smtp.login(settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


async def send(
    settings: SmtpSettings,
    *,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    ssl_context: ssl.SSLContext | None = None,
) -> SendResult:
    """Send `message` to the envelope `recipients` (BCC included there, never in headers)."""
    import aiosmtplib

    if not recipients:
        raise PermanentError("no recipients")
    try:
        smtp = await _open(settings, ssl_context)
        try:
            refused, _ = await smtp.sendmail(sender, list(recipients), message)
        finally:
            try:
                await smtp.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                smtp.close()
    except Exception as exc:
        raise classify(exc) from exc
    rejected = {addr: f"{resp.code} {resp.message}" for addr, resp in refused.items()}
    accepted = [r for r in recipients if r not in rejected]
    return SendResult(accepted, rejected)


async def verify(settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
    """Connect, negotiate TLS as configured and log in: what saving a mailbox checks first."""
    import aiosmtplib

    try:
        smtp = await _open(settings, ssl_context)
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
    except Exception as exc:
        raise classify(exc) from exc


def classify(exc: BaseException) -> ChannelError:
    """An aiosmtplib failure as a temporary or permanent channel error."""
    import aiosmtplib

    if isinstance(exc, ChannelError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthenticationFailed(f"SMTP login refused: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if codes and all(400 <= c < 500 for c in codes):
            return TemporaryError(f"SMTP recipients deferred: {text}")
        return PermanentError(f"SMTP recipients refused: {text}")
    if is_tls_failure(exc):
        return TlsFailed(f"SMTP TLS failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        if "STARTTLS" in str(exc).upper():
            return TlsFailed(f"SMTP server does not offer STARTTLS: {exc}")
        return PermanentError(f"SMTP server does not support this: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        message = f"SMTP {exc.code} {exc.message}"
        return TemporaryError(message) if 400 <= exc.code < 500 else PermanentError(message)
    if isinstance(
        exc,
        aiosmtplib.SMTPConnectError
        | aiosmtplib.SMTPTimeoutError
        | aiosmtplib.SMTPServerDisconnected
        | asyncio.TimeoutError
        | OSError,
    ):
        return TemporaryError(f"SMTP connection failed: {exc.__class__.__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):  # protocol mismatch: no AUTH, no mechanism
        return PermanentError(f"SMTP: {exc}")
    return TemporaryError(f"SMTP failed: {exc.__class__.__name__}")
