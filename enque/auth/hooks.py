"""System mail is set up at start (a bad `SMTP_URL` fails loudly) and drained at shutdown."""

from __future__ import annotations

from enque.core.mail import mailer_of
from enque.core.runtime import Runtime


def setup(runtime: Runtime) -> None:
    mailer_of(runtime)


async def on_shutdown(runtime: Runtime) -> None:
    await mailer_of(runtime).drain()
