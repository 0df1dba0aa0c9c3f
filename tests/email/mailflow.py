"""Helpers for the mail-flow tests: messages, a connected IMAP mailbox, ledger and thread reads."""

from __future__ import annotations

import email.message
import email.utils
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from enque.comments.models import Comment
from enque.core.db import new_id
from enque.core.runtime import Runtime
from enque.core.secrets import seal
from enque.mailboxes.models import EmailMessage, Mailbox
from enque.tickets.models import Ticket
from tests.email.corpus import PNG
from tests.email.dovecot import Dovecot
from tests.email.servers import imap_mailbox_body, shared_dovecot
from tests.emulators.graph import GraphEmulator, User
from tests.support.api import Tenant, data


def mail(
    *,
    frm: str = "Alice Customer <alice@customer.test>",
    to: str = "support@acme.test",
    subject: str = "Help with my order",
    body: str = "Hello, my order did not arrive.",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A plain-text message and its Message-ID (without angle brackets)."""
    mid = message_id or f"{uuid.uuid4().hex}@customer.test"
    lines = {
        "From": frm,
        "To": to,
        "Subject": subject,
        "Date": email.utils.formatdate(usegmt=True),
        "Message-ID": f"<{mid}>",
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Transfer-Encoding": "8bit",
        **(headers or {}),
    }
    head = "\r\n".join(f"{k}: {v}" for k, v in lines.items())
    return (head + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode(), mid


PDF = b"%PDF-1.4\n" + os.urandom(3000)


def with_files(
    *,
    to: str,
    frm: str = "Carol Customer <carol@customer.test>",
    subject: str = "Invoice attached",
    html: str | None = '<p>See the logo</p><img src="cid:logo@mail">',
    inline_png: bool = True,
    files: Sequence[tuple[str, bytes]] = (),
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A message with an inline `cid:` image and attached files (stdlib MIME); its Message-ID."""
    mid = f"{uuid.uuid4().hex}@customer.test"
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, to, subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = f"<{mid}>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content("See the logo")
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if inline_png:
            related = msg.get_payload()[1]
            related.add_related(PNG, "image", "png", cid="<logo@mail>", filename="logo.png")
    for name, blob in files:
        msg.add_attachment(blob, "application", "octet-stream", filename=name)
    return msg.as_bytes(), mid


@dataclass
class ImapBox:
    id: str
    email: str
    user: str
    dovecot: Dovecot

    def deliver(self, raw: bytes) -> None:
        self.dovecot.deliver(self.user, raw)


async def connect_imap(tenant: Tenant) -> ImapBox:
    body = imap_mailbox_body()
    mailbox = data(await tenant.post("/v1/mailboxes/imap", json=body), 201)
    return ImapBox(mailbox["id"], body["email"], body["imap"]["username"], shared_dovecot())


async def tickets_of(runtime: Runtime, workspace_id: str) -> list[Ticket]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Ticket).where(Ticket.workspace_id == workspace_id).order_by(Ticket.number)
        )
        return list(rows.scalars())


async def comments_of(runtime: Runtime, ticket_id: str) -> list[Comment]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Comment)
            .where(Comment.ticket_id == ticket_id)
            .order_by(Comment.created_at, Comment.id)
        )
        return list(rows.scalars())


async def ledger(runtime: Runtime, mailbox_id: str) -> list[EmailMessage]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(EmailMessage)
            .where(EmailMessage.mailbox_id == mailbox_id)
            .order_by(EmailMessage.created_at, EmailMessage.id)
        )
        return list(rows.scalars())


async def mailbox_row(runtime: Runtime, mailbox_id: str) -> Mailbox:
    async with runtime.db.session(write=False) as session:
        return (await session.execute(select(Mailbox).where(Mailbox.id == mailbox_id))).scalar_one()


async def count_threads(runtime: Runtime, workspace_id: str) -> dict[str, Any]:
    """How many tickets and customer comments the workspace holds."""
    async with runtime.db.session(write=False) as session:
        tickets = await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.workspace_id == workspace_id)
        )
        comments = await session.scalar(
            select(func.count())
            .select_from(Comment)
            .where(Comment.workspace_id == workspace_id, Comment.kind == "customer")
        )
    return {"tickets": tickets, "comments": comments}


async def connect_graph(
    runtime: Runtime, tenant: Tenant, emulator: GraphEmulator
) -> tuple[str, User]:
    """A connected Microsoft mailbox (as the consent flow leaves it), without the browser."""
    user = emulator.add_user(f"help-{new_id()[-8:]}@contoso.test", "Contoso Help")
    issued = emulator.tokens_for(user)
    tokens = {
        "access_token": issued["access_token"],
        "refresh_token": issued["refresh_token"],
        "expires_at": int(time.time()) + int(issued["expires_in"]),
        "scope": issued["scope"],
    }
    async with runtime.db.transaction() as session:
        mailbox = Mailbox(
            id=new_id(),
            workspace_id=tenant.workspace_id,
            email=user.mail,
            display_name="Contoso Help",
            kind="microsoft",
            folder="inbox",
            settings={"microsoft": {"user_id": user.id, "tenant": "organizations"}},
        )
        seal(runtime.cipher, mailbox, "credentials", tokens)
        session.add(mailbox)
    return mailbox.id, user
