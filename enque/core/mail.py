"""System mail (invitations, password resets) through `SMTP_URL`, sent after commit.

`smtp://user:pass@host:port` speaks plain SMTP and upgrades with STARTTLS whenever the server
offers it; `smtps://…` uses implicit TLS. Service functions call `send_after_commit()`: nothing
touches the network inside a transaction, and a failed delivery is logged with its reason and
retried with exponential backoff (transient failures only) in a background task.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from enque.config import Settings
from enque.core.db import on_commit
from enque.core.runtime import Runtime, runtime_of

if TYPE_CHECKING:
    from jinja2 import Environment

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect, parsed from `SMTP_URL`."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP_URL has no host")
        return cls(
            hostname=parts.hostname,
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=parts.scheme == "smtps",
        )


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: connection trouble, time-outs and 4xx answers; never 5xx answers."""
    import aiosmtplib  # aiosmtplib and jinja2 are imported when mail is sent: they slow a start

    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= r.code < 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError)


def _reason(exc: BaseException | None) -> str:
    return f"{exc.__class__.__name__}: {exc}" if exc is not None else "unknown"


class SystemMailer:
    """Sends system mail; `send_later` runs delivery (with retries) as a tracked task."""

    def __init__(
        self,
        smtp_url: str | None,
        mail_from: str,
        *,
        attempts: int = 4,
        wait_base: float = 2.0,
        wait_max: float = 60.0,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = SmtpTarget.parse(smtp_url) if smtp_url else None
        self.mail_from = mail_from
        self.sender_domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
        self.attempts = attempts
        self.wait_base = wait_base
        self.wait_max = wait_max
        self.timeout = timeout
        self.tls_context = tls_context
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> SystemMailer:
        host = urlsplit(settings.public_url).hostname or "localhost"
        mail_from = settings.mail_from or f"Enque <no-reply@{host}>"
        return cls(settings.smtp_url, mail_from, **options)

    def message(self, mail: Mail) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=self.sender_domain)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(mail.text)
        if mail.html is not None:
            msg.add_alternative(mail.html, subtype="html")
        return msg

    async def _send_once(self, message: EmailMessage) -> None:
        import aiosmtplib

        assert self.target is not None
        target = self.target
        await aiosmtplib.send(
            message,
            hostname=target.hostname,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.implicit_tls,
            start_tls=False if target.implicit_tls else None,
            tls_context=self.tls_context,
            timeout=self.timeout,
        )

    def _before_sleep(self, to: str) -> Any:
        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            log.warning(
                "system mail to %s failed (attempt %d of %d): %s; retrying in %.1fs",
                to,
                state.attempt_number,
                self.attempts,
                _reason(exc),
                wait,
            )

        return log_retry

    async def send(self, mail: Mail) -> bool:
        """Deliver now, retrying transient failures; False (logged) when it could not."""
        if self.target is None:
            log.warning("SMTP_URL is not set: system mail %r to %s not sent", mail.subject, mail.to)
            return False
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait_base, max=self.wait_max),
            retry=retry_if_exception(is_transient),
            before_sleep=self._before_sleep(mail.to),
            reraise=True,
        )
        try:
            message = self.message(mail)
            async for attempt in retrying:
                with attempt:
                    await self._send_once(message)
        except Exception as exc:
            log.error("system mail %r to %s not sent: %s", mail.subject, mail.to, _reason(exc))
            return False
        return True

    def send_later(self, mail: Mail) -> None:
        """Deliver in the background; the task is kept until done (see `drain`)."""

        async def deliver() -> None:
            await self.send(mail)

        task = asyncio.get_running_loop().create_task(deliver(), name="system-mail")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for deliveries in flight (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def mailer_of(runtime: Runtime) -> SystemMailer:
    """The runtime's system mailer, made from its settings on first use."""
    mailer = runtime.services.get("mailer")
    if mailer is None:
        mailer = SystemMailer.from_settings(runtime.settings)
        runtime.services["mailer"] = mailer
    return mailer


def send_after_commit(session: AsyncSession, mail: Mail) -> None:
    """Queue `mail` for delivery once the session's unit of work has committed."""
    mailer = mailer_of(runtime_of(session))

    async def hand_over() -> None:
        mailer.send_later(mail)

    on_commit(session, hand_over)


# ---------------------------------------------------------------- templates

_TEMPLATES = {
    "layout.html": """<!doctype html>
<html><body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2933;\
background:#f5f7fa;margin:0;padding:24px">
<div style="max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:32px">
{% block body %}{% endblock %}
<p style="color:#7b8794;font-size:12px;margin-top:32px">{% block footer %}{% endblock %}</p>
</div></body></html>""",
    "reset.txt": """Hello {{ name }},

Someone asked to reset the password of your Enque account ({{ email }}).
To choose a new password, open this link within {{ minutes }} minutes:

{{ link }}

If you did not ask for this, ignore this message: your password stays as it is.
""",
    "reset.html": """{% extends "layout.html" %}{% block body %}
<p>Hello {{ name }},</p>
<p>Someone asked to reset the password of your Enque account ({{ email }}).
To choose a new password, use this link within {{ minutes }} minutes:</p>
<p><a href="{{ link }}" style="display:inline-block;background:#2563eb;color:#fff;\
padding:10px 18px;border-radius:6px;text-decoration:none">Reset my password</a></p>
<p style="font-size:13px;word-break:break-all">{{ link }}</p>
{% endblock %}{% block footer %}If you did not ask for this, ignore this message: \
your password stays as it is.{% endblock %}""",
    "invitation.txt": """Hello,

{{ inviter }} invites you to join {{ workspace }} on Enque as {{ role }}.
Accept the invitation within {{ days }} days:

{{ link }}

If you do not know why you received this, ignore this message.
""",
    "invitation.html": """{% extends "layout.html" %}{% block body %}
<p>Hello,</p>
<p><strong>{{ inviter }}</strong> invites you to join <strong>{{ workspace }}</strong>
on Enque as {{ role }}.</p>
<p><a href="{{ link }}" style="display:inline-block;background:#2563eb;color:#fff;\
padding:10px 18px;border-radius:6px;text-decoration:none">Accept the invitation</a></p>
<p style="font-size:13px;word-break:break-all">{{ link }}</p>
{% endblock %}{% block footer %}The invitation expires in {{ days }} days. If you do not know \
why you received this, ignore this message.{% endblock %}""",
}


def mail_environment(templates: dict[str, str]) -> Environment:
    """Jinja for mail templates: `.html` autoescaped, an undefined name is an error."""
    from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

    return Environment(
        loader=DictLoader(templates),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


@cache
def _environment() -> Environment:
    return mail_environment(_TEMPLATES)


def render(template: str, **context: Any) -> tuple[str, str]:
    """The plain-text and HTML bodies of `template`."""
    env = _environment()
    text = env.get_template(f"{template}.txt").render(context)
    return text, env.get_template(f"{template}.html").render(context)


def public_link(settings: Settings, path: str, token: str) -> str:
    """A link into the web app at `PUBLIC_URL`, carrying a one-time token."""
    return f"{settings.public_url.rstrip('/')}/{path.lstrip('/')}?{urlencode({'token': token})}"


def password_reset_mail(settings: Settings, *, to: str, name: str, token: str) -> Mail:
    link = public_link(settings, "reset-password", token)
    minutes = max(1, settings.password_reset_ttl_seconds // 60)
    text, html = render("reset", name=name, email=to, link=link, minutes=minutes)
    return Mail(to=to, subject="Reset your Enque password", text=text, html=html)


def invitation_mail(
    settings: Settings, *, to: str, inviter: str, workspace: str, role: str, token: str
) -> Mail:
    link = public_link(settings, "accept-invitation", token)
    days = max(1, settings.invitation_ttl_seconds // 86400)
    text, html = render(
        "invitation", inviter=inviter, workspace=workspace, role=role, link=link, days=days
    )
    subject = " ".join(f"{inviter} invites you to {workspace} on Enque".split())
    return Mail(to=to, subject=subject, text=text, html=html)
