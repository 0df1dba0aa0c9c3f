"""System mail against real SMTP servers: plain, STARTTLS with login, implicit TLS, retries."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enque.core.db import unit
from enque.core.mail import (
    Mail,
    SmtpTarget,
    SystemMailer,
    invitation_mail,
    password_reset_mail,
    send_after_commit,
)
from tests.support.api import unique
from tests.support.services import free_port

FROM = "Enque <no-reply@enque.test>"


@dataclass
class Certificate:
    cert: Path
    key: Path
    pem: str

    def server(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 that the client contexts trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    moment = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - datetime.timedelta(minutes=5))
        .not_valid_after(moment + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(folder / "cert.pem", folder / "key.pem", pem.decode())


@dataclass
class Recorder:
    """An SMTP handler that keeps each delivery with the session's TLS and login state."""

    answers: list[str] = field(default_factory=list)  # answered to DATA in turn, then 250
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.answers:
            return self.answers.pop(0)
        self.deliveries.append(
            {
                "rcpt": list(envelope.rcpt_tos),
                "tls": session.ssl is not None  # STARTTLS, or the socket's own TLS
                or server.transport.get_extra_info("ssl_object") is not None,
                "login": session.auth_data if session.authenticated else None,
                "content": envelope.content,
            }
        )
        return "250 OK"


@contextmanager
def smtp(handler: Recorder, **options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def login_checker(user: str, password: str) -> Any:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    return authenticate


def quick(url: str | None, **options: Any) -> SystemMailer:
    """A mailer whose retries wait milliseconds."""
    return SystemMailer(url, FROM, wait_base=0.01, wait_max=0.05, timeout=5, **options)


def test_smtp_url_forms() -> None:
    plain = SmtpTarget.parse("smtp://user%40corp:p%3Ass@mail.example.com:2525")
    assert plain == SmtpTarget("mail.example.com", 2525, "user@corp", "p:ss", False)
    assert SmtpTarget.parse("smtp://relay.local") == SmtpTarget(
        "relay.local", 25, None, None, False
    )
    assert SmtpTarget.parse("smtps://u:p@mx.test").port == 465
    assert SmtpTarget.parse("smtps://u:p@mx.test").implicit_tls is True
    for bad in ("http://mx.test", "smtp://", "mx.test:25"):
        with pytest.raises(ValueError):
            SmtpTarget.parse(bad)


async def test_plain_delivery_has_text_and_html(smtp_server: Any) -> None:
    to = f"{unique('plain')}@example.com"
    sent = await quick(smtp_server.url).send(Mail(to, "Hello", "plain body", "<p>html body</p>"))
    assert sent is True
    [mail] = await smtp_server.wait_for(to)
    message = mail.message
    assert message["From"] == FROM
    assert message["Subject"] == "Hello"
    assert message["Message-ID"].endswith("@enque.test>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert mail.mail_from == "no-reply@enque.test"
    assert message.get_body(("plain",)).get_content().strip() == "plain body"
    assert message.get_body(("html",)).get_content().strip() == "<p>html body</p>"


async def test_starttls_when_offered_then_login(certificate: Certificate) -> None:
    handler = Recorder()
    options = {
        "tls_context": certificate.server(),
        "require_starttls": True,
        "authenticator": login_checker("mailer", "s3cret:x"),
        "auth_required": True,
    }
    with smtp(handler, **options) as port:
        mailer = quick(
            f"smtp://mailer:s3cret%3Ax@127.0.0.1:{port}", tls_context=certificate.client()
        )
        assert await mailer.send(Mail("ada@example.com", "Secure", "body")) is True
    [delivery] = handler.deliveries
    assert delivery["tls"] is True
    assert delivery["login"].login == b"mailer"
    assert delivery["rcpt"] == ["ada@example.com"]


async def test_wrong_login_is_permanent_and_not_retried(
    certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []
    checker = login_checker("mailer", "right")

    def counting(*args: Any) -> Any:
        calls.append(1)
        return checker(*args)

    handler = Recorder()
    options = {
        "tls_context": certificate.server(),
        "authenticator": counting,
        "auth_required": True,
    }
    with smtp(handler, **options) as port, caplog.at_level(logging.WARNING, "enque.core.mail"):
        mailer = quick(f"smtp://mailer:wrong@127.0.0.1:{port}", tls_context=certificate.client())
        assert await mailer.send(Mail("ada@example.com", "Nope", "body")) is False
    assert len(calls) == 2  # PLAIN, then LOGIN: one connection, no retry
    assert handler.deliveries == []
    [error] = [r for r in mail_records(caplog) if r.levelno == logging.ERROR]
    assert "SMTPAuthenticationError" in error.getMessage()
    assert "ada@example.com" in error.getMessage()


async def test_smtps_uses_implicit_tls(certificate: Certificate) -> None:
    handler = Recorder()
    with smtp(handler, ssl_context=certificate.server()) as port:
        mailer = quick(f"smtps://127.0.0.1:{port}", tls_context=certificate.client())
        assert await mailer.send(Mail("bob@example.com", "Implicit", "body")) is True
    [delivery] = handler.deliveries
    assert delivery["tls"] is True


async def test_smtps_refuses_an_untrusted_certificate(certificate: Certificate) -> None:
    handler = Recorder()
    with smtp(handler, ssl_context=certificate.server()) as port:
        mailer = quick(f"smtps://127.0.0.1:{port}", attempts=1)
        assert await mailer.send(Mail("bob@example.com", "Implicit", "body")) is False
    assert handler.deliveries == []


def mail_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What Enque's mailer logged (the SMTP test server logs its own lines beside them)."""
    return [r for r in caplog.records if r.name == "enque.core.mail"]


async def test_transient_failure_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    handler = Recorder(answers=["421 4.3.2 try again later", "451 4.3.0 still busy"])
    with smtp(handler) as port, caplog.at_level(logging.WARNING, "enque.core.mail"):
        sent = await quick(f"smtp://127.0.0.1:{port}").send(Mail("c@example.com", "S", "b"))
    assert sent is True
    assert handler.attempts == 3 and len(handler.deliveries) == 1
    warnings = [r.getMessage() for r in mail_records(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1 of 4" in warnings[0] and "try again later" in warnings[0]
    assert "attempt 2 of 4" in warnings[1] and "still busy" in warnings[1]


async def test_permanent_refusal_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    handler = Recorder(answers=["554 5.7.1 rejected as spam"])
    with smtp(handler) as port, caplog.at_level(logging.WARNING, "enque.core.mail"):
        sent = await quick(f"smtp://127.0.0.1:{port}").send(Mail("d@example.com", "S", "b"))
    assert sent is False
    assert handler.attempts == 1
    [record] = mail_records(caplog)
    assert record.levelno == logging.ERROR and "rejected as spam" in record.getMessage()


async def test_unreachable_server_gives_up_after_the_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = quick(f"smtp://127.0.0.1:{free_port()}", attempts=3)
    with caplog.at_level(logging.WARNING, "enque.core.mail"):
        assert await mailer.send(Mail("e@example.com", "S", "b")) is False
    levels = [r.levelno for r in mail_records(caplog)]
    assert levels == [logging.WARNING, logging.WARNING, logging.ERROR]
    assert "not sent" in mail_records(caplog)[-1].getMessage()


async def test_without_smtp_url_nothing_is_sent_and_it_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "enque.core.mail"):
        assert await quick(None).send(Mail("f@example.com", "Subject", "b")) is False
    assert "SMTP_URL is not set" in mail_records(caplog)[0].getMessage()


async def test_mail_leaves_only_after_commit(app_runtime: Any, smtp_server: Any) -> None:
    to = f"{unique('commit')}@example.com"
    async with app_runtime.db.session() as session:
        with pytest.raises(RuntimeError):
            async with unit(session):
                send_after_commit(session, Mail(to, "rolled back", "b"))
                raise RuntimeError("abort")
        async with unit(session):
            send_after_commit(session, Mail(to, "committed", "b"))
            assert smtp_server.to(to) == []  # nothing leaves inside the transaction
    [mail] = await smtp_server.wait_for(to)
    assert mail.subject == "committed"


def test_templates_escape_html_and_link_to_public_url(settings: Any) -> None:
    mail = invitation_mail(
        settings,
        to="new@example.com",
        inviter="<script>alert(1)</script>",
        workspace="Acme & Co",
        role="manager",
        token="tok-123",
    )
    assert mail.subject == "<script>alert(1)</script> invites you to Acme & Co on Enque"
    assert "http://enque.test/accept-invitation?token=tok-123" in mail.text
    assert "<script>" in mail.text and "<script>" not in (mail.html or "")
    assert "&lt;script&gt;" in (mail.html or "") and "Acme &amp; Co" in (mail.html or "")
    assert 'href="http://enque.test/accept-invitation?token=tok-123"' in (mail.html or "")
    folded = invitation_mail(
        settings, to="n@example.com", inviter="Eve\r\nBcc: victim@example.com",
        workspace="W", role="agent", token="t",
    )  # fmt: skip
    assert folded.subject == "Eve Bcc: victim@example.com invites you to W on Enque"
    reset = password_reset_mail(settings, to="a@example.com", name="Ada", token="r-1")
    assert "http://enque.test/reset-password?token=r-1" in reset.text
    assert "60 minutes" in reset.text


async def test_unbuildable_message_is_logged_not_raised(
    smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "enque.core.mail"):
        bad = Mail("a@example.com\nBcc: b@example.com", "S", "b")
        assert await quick(smtp_server.url).send(bad) is False
    assert "not sent" in mail_records(caplog)[-1].getMessage()
