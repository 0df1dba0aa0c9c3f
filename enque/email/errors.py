"""Channel failures, told apart for retries: temporary (retry with backoff) or permanent."""

from __future__ import annotations

import random


class ChannelError(Exception):
    """A mail server or Microsoft Graph failed; `temporary` decides whether to retry."""

    temporary = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TemporaryError(ChannelError):
    """Timeouts, dropped connections, 4xx SMTP replies, throttling: retry later."""

    temporary = True


class PermanentError(ChannelError):
    """Wrong configuration, refused recipients, untrusted certificates: retrying won't help."""


class AuthenticationFailed(PermanentError):
    """Credentials or tokens refused: the mailbox needs to be reconnected."""


class TlsFailed(PermanentError):
    """TLS could not be set up: untrusted certificate, wrong port for the security chosen."""


class FolderUnavailable(PermanentError):
    """The configured folder does not exist or cannot be opened."""


def backoff_delay(
    attempt: int, *, base: float = 1.0, cap: float = 300.0, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry `attempt` (1-based): the server's Retry-After when given,
    else exponential backoff with full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))
