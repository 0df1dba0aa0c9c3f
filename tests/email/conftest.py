"""Mail servers for the email tests: Dovecot (IMAP) and an SMTP server with AUTH."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from enque.core.runtime import Runtime
from enque.mailboxes import sync
from tests.email.certs import CertBundle, make_certs
from tests.email.dovecot import Dovecot, dovecot_available
from tests.email.servers import SMTP_PASSWORD, SMTP_USER, shared_dovecot, shared_smtp
from tests.email.smtpd import AuthSmtpServer
from tests.emulators.graph import GraphEmulator
from tests.support.services import require


@pytest.fixture(scope="session")
def certs() -> Iterator[CertBundle]:
    root = Path(tempfile.mkdtemp(prefix="enque-certs-"))
    root.chmod(0o755)
    yield make_certs(root)
    shutil.rmtree(root, ignore_errors=True)


def _dovecot(certs: CertBundle | None) -> Iterator[Dovecot]:
    require(dovecot_available(), "Dovecot (apt-get install dovecot-imapd)")
    # Not under pytest's private temp folder: Dovecot's own users must reach the files.
    root = Path(tempfile.mkdtemp(prefix="enque-dovecot-"))
    try:
        server = Dovecot(root, certs).start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Dovecot:
    """A plain-IMAP Dovecot on 127.0.0.1 (each test adds its own user)."""
    return shared_dovecot()


@pytest.fixture(scope="session")
def dovecot_tls(certs: CertBundle) -> Iterator[Dovecot]:
    """Dovecot with IMAPS on `tls_port` and STARTTLS on `port`, signed by the test CA."""
    yield from _dovecot(certs)


def _smtp(security: str, certs: CertBundle | None) -> Iterator[AuthSmtpServer]:
    server = AuthSmtpServer(
        {SMTP_USER: SMTP_PASSWORD},
        security=security,
        tls_context=certs.server_context() if certs else None,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smtp_auth() -> AuthSmtpServer:
    return shared_smtp()


@pytest.fixture(scope="session")
def smtp_starttls(certs: CertBundle) -> Iterator[AuthSmtpServer]:
    yield from _smtp("starttls", certs)


@pytest.fixture(scope="session")
def smtp_tls(certs: CertBundle) -> Iterator[AuthSmtpServer]:
    yield from _smtp("tls", certs)


@pytest.fixture
def microsoft(
    graph_emulator: GraphEmulator, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> GraphEmulator:
    graph_emulator.configure(app_runtime.settings, monkeypatch)
    monkeypatch.setattr(sync, "DELTA_PAGE_SIZE", 5)
    return graph_emulator
