"""Mail servers shared by every test of one process, started on first use, stopped at exit.

The tenant-isolation walk creates mailboxes through the API, which tests the credentials
against real servers; it uses these too.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.email.dovecot import Dovecot, dovecot_available
from tests.email.smtpd import AuthSmtpServer
from tests.support.services import require

SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-pass-Kx93!"
_servers: dict[str, Any] = {}


def stop_shared_servers() -> None:
    """Stop what was started (the test session's end calls this; atexit is the fallback)."""
    dovecot = _servers.pop("dovecot", None)
    if dovecot is not None:
        dovecot.stop()
        shutil.rmtree(dovecot.root, ignore_errors=True)
    smtp = _servers.pop("smtp", None)
    if smtp is not None:
        smtp.stop()


atexit.register(stop_shared_servers)


def shared_dovecot() -> Dovecot:
    require(dovecot_available(), "Dovecot (apt-get install dovecot-imapd)")
    if "dovecot" not in _servers:
        # Not under pytest's private temp folder: Dovecot's own users must reach the files.
        root = Path(tempfile.mkdtemp(prefix="enque-dovecot-"))
        try:
            _servers["dovecot"] = Dovecot(root).start()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    return _servers["dovecot"]  # type: ignore[no-any-return]


def shared_smtp() -> AuthSmtpServer:
    if "smtp" not in _servers:
        _servers["smtp"] = AuthSmtpServer({SMTP_USER: SMTP_PASSWORD}).start()
    return _servers["smtp"]  # type: ignore[no-any-return]


def imap_mailbox_body(email: str | None = None, **imap: Any) -> dict[str, Any]:
    """A `POST /v1/mailboxes/imap` body for a new Dovecot user (plain IMAP, SMTP with AUTH)."""
    dovecot, smtp = shared_dovecot(), shared_smtp()
    user, password = dovecot.add_user()
    return {
        "email": email or f"support-{uuid.uuid4().hex[:8]}@acme.test",
        "displayName": "Support",
        "imap": {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "security": "none",
            "username": user,
            "password": password,
            **imap,
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
        },
    }
