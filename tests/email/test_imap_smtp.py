"""The IMAP and SMTP adapters against real servers (Dovecot, aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from enque.email import imap, smtp
from enque.email.errors import AuthenticationFailed, PermanentError, TemporaryError
from enque.email.imap import ImapClient, ImapSettings
from enque.email.outbound_mime import build_message
from enque.email.smtp import SmtpSettings
from tests.email.certs import CertBundle
from tests.email.corpus import base_headers, message
from tests.email.dovecot import Dovecot
from tests.email.servers import SMTP_PASSWORD, SMTP_USER
from tests.email.smtpd import AuthSmtpServer
from tests.support.services import free_port


def mail(n: int, size: int = 0) -> bytes:
    return message(
        base_headers(Message_ID=f"<n{n}@customer.test>", Subject=f"m{n}"),
        f"body {n}\n" + "x" * size,
    )


def settings_for(server: Dovecot, user: str, password: str, **kw: object) -> ImapSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": user,
        "password": password,
        "timeout": 10.0,
    }
    values.update(kw)
    return ImapSettings(**values)  # type: ignore[arg-type]


async def test_fetch_new_messages_in_batches_without_marking_read(dovecot: Dovecot) -> None:
    user, password = dovecot.add_user()
    for n in range(1, 6):
        dovecot.deliver(user, mail(n, size=300))
    async with ImapClient(settings_for(dovecot, user, password)) as client:
        state = await client.select()
        assert state.exists == 5 and state.uidvalidity > 0
        batches = [b async for b in client.fetch_new(0, batch_messages=2)]
        assert [len(b) for b in batches] == [2, 2, 1]
        fetched = [m for b in batches for m in b]
        assert [m.uid for m in fetched] == [1, 2, 3, 4, 5]
        assert all(m.size == len(m.raw) for m in fetched)
        assert b"Message-ID: <n3@customer.test>" in fetched[2].raw
        # `4:*` style ranges above the last UID return nothing new (not the last message).
        assert await client.list_new(5) == []
        assert [u for u, _ in await client.list_new(3)] == [4, 5]
        # Batches bounded in bytes too.
        by_size = [b async for b in client.fetch_new(0, batch_bytes=700)]
        assert all(sum(m.size for m in b) <= 700 or len(b) == 1 for b in by_size)
    assert all("S" not in flags for flags in dovecot.seen_flags(user))


async def test_uidvalidity_change_is_visible(dovecot: Dovecot) -> None:
    user, password = dovecot.add_user()
    dovecot.deliver(user, mail(1))
    first = await imap.verify(settings_for(dovecot, user, password))
    dovecot.reset_uidvalidity(user, first.uidvalidity + 1000)
    second = await imap.verify(settings_for(dovecot, user, password))
    assert second.uidvalidity == first.uidvalidity + 1000


async def test_append_and_other_folder(dovecot: Dovecot) -> None:
    user, password = dovecot.add_user()
    async with ImapClient(settings_for(dovecot, user, password)) as client:
        await client.select()
        await client.append(mail(9))
        state = await client.select()
        assert state.exists == 1
        messages = [m async for b in client.fetch_new(0) for m in b]
        assert b"n9@customer.test" in messages[0].raw


async def test_imap_errors_are_classified(dovecot: Dovecot) -> None:
    user, password = dovecot.add_user()
    with pytest.raises(AuthenticationFailed):
        await imap.verify(settings_for(dovecot, user, "wrong"))
    with pytest.raises(PermanentError, match="cannot be opened"):
        await imap.verify(settings_for(dovecot, user, password, folder="Nope"))
    with pytest.raises(TemporaryError):
        await imap.verify(settings_for(dovecot, user, password, port=free_port()))


async def test_a_server_that_drops_the_connection_fails_at_once() -> None:
    """A dropped connection ends the waiting command now, as a temporary error (not at the
    timeout, and never as a refused login or a missing folder)."""

    drop = {"at": b"SELECT"}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 ready\r\n")
        while line := await reader.readline():
            tag, command = line.split(b" ", 2)[:2]
            command = command.strip().upper()
            if command == drop["at"]:
                writer.close()  # gone in the middle of the command
                return
            if command == b"CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1\r\n")
            if command == b"SELECT":
                writer.write(b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n")
            writer.write(tag + b" OK done\r\n")
            await writer.drain()
            if command == b"SELECT" and drop["at"] == b"AFTER SELECT":
                writer.close()  # gone between two commands
                return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = ImapSettings(
        host="127.0.0.1", port=port, security="none", username="u", password="p", timeout=60
    )
    try:
        for step in ("select", "login"):
            drop["at"] = step.upper().encode()
            started = asyncio.get_running_loop().time()
            with pytest.raises(TemporaryError, match=f"connection lost during {step}"):
                await imap.verify(settings)
            assert asyncio.get_running_loop().time() - started < settings.timeout
        drop["at"] = b"AFTER SELECT"
        async with ImapClient(settings) as client:
            await client.select()
            await asyncio.sleep(0.05)
            with pytest.raises(TemporaryError, match="IMAP connection lost"):
                await client.list_new(0)
    finally:
        server.close()
        await server.wait_closed()


async def test_imap_tls_and_starttls(dovecot_tls: Dovecot, certs: CertBundle) -> None:
    user, password = dovecot_tls.add_user()
    dovecot_tls.deliver(user, mail(1))
    context = certs.client_context()
    implicit = settings_for(dovecot_tls, user, password, security="tls", port=dovecot_tls.tls_port)
    assert (await imap.verify(implicit, context)).exists == 1
    upgraded = settings_for(dovecot_tls, user, password, security="starttls")
    async with ImapClient(upgraded, context) as client:
        await client.select()
        (batch,) = [b async for b in client.fetch_new(0)]
        assert b"n1@customer.test" in batch[0].raw
    # The system trust store does not know the test CA: refused, and not worth retrying.
    with pytest.raises(PermanentError, match="TLS"):
        await imap.verify(implicit)


def smtp_settings(server: AuthSmtpServer, **kw: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": server.security,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "timeout": 10.0,
    }
    values.update(kw)
    return SmtpSettings(**values)  # type: ignore[arg-type]


async def test_smtp_sends_to_envelope_recipients_only(smtp_auth: AuthSmtpServer) -> None:
    out = build_message(
        from_address="support@acme.test",
        from_name="Support",
        to=["alice@customer.test"],
        bcc=["hidden@acme.test"],
        subject="Re: Help [#1]",
        html="<p>Hi</p>",
    )
    result = await smtp.send(
        smtp_settings(smtp_auth),
        sender=out.sender,
        recipients=out.recipients,
        message=out.as_bytes(),
    )
    assert result.refused == {} and result.accepted == ["alice@customer.test", "hidden@acme.test"]
    (received,) = smtp_auth.to("hidden@acme.test")
    assert received.rcpt_tos == ["alice@customer.test", "hidden@acme.test"]
    assert "Bcc" not in received.message and received.message["Subject"] == "Re: Help [#1]"


async def test_smtp_errors_are_classified(smtp_auth: AuthSmtpServer) -> None:
    with pytest.raises(AuthenticationFailed):
        await smtp.verify(smtp_settings(smtp_auth, password="wrong"))
    with pytest.raises(TemporaryError):
        await smtp.verify(smtp_settings(smtp_auth, port=free_port()))
    smtp_auth.reject["gone@customer.test"] = "550 5.1.1 no such user"
    smtp_auth.reject["busy@customer.test"] = "451 4.3.0 try later"
    raw = build_message(
        from_address="s@acme.test", from_name=None, to=["x@y.test"], subject="s", html="<p>x</p>"
    ).as_bytes()
    settings = smtp_settings(smtp_auth)
    with pytest.raises(PermanentError):
        await smtp.send(
            settings, sender="s@acme.test", recipients=["gone@customer.test"], message=raw
        )
    with pytest.raises(TemporaryError):
        await smtp.send(
            settings, sender="s@acme.test", recipients=["busy@customer.test"], message=raw
        )
    partial = await smtp.send(
        settings,
        sender="s@acme.test",
        recipients=["ok@customer.test", "gone@customer.test"],
        message=raw,
    )
    assert partial.accepted == ["ok@customer.test"]
    assert partial.refused["gone@customer.test"].startswith("550")


async def test_smtp_starttls_and_tls(
    smtp_starttls: AuthSmtpServer, smtp_tls: AuthSmtpServer, certs: CertBundle
) -> None:
    context = certs.client_context()
    await smtp.verify(smtp_settings(smtp_starttls), context)
    await smtp.verify(smtp_settings(smtp_tls), context)
    with pytest.raises(PermanentError, match="TLS"):
        await smtp.verify(smtp_settings(smtp_tls))
