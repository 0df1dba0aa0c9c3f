"""The outgoing MIME message of a reply (or any mail sent from a mailbox)."""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import cast

from enque.email.sanitize import html_to_text
from enque.email.threading import angle, make_message_id


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None  # set for inline images referenced as `cid:<id>`
    inline: bool = False


@dataclass
class Outgoing:
    """The message to send and its envelope (BCC exists only here, never in headers)."""

    message: EmailMessage
    message_id: str
    sender: str
    recipients: list[str] = field(default_factory=list)

    def as_bytes(self) -> bytes:
        return self.message.as_bytes(policy=email.policy.SMTP)


def _dedupe(addresses: Sequence[str], exclude: set[str]) -> list[str]:
    seen = set(exclude)
    kept = []
    for address in addresses:
        key = email.utils.parseaddr(address)[1].lower()
        if key and key not in seen:
            seen.add(key)
            kept.append(address)
    return kept


def build_message(
    *,
    from_address: str,
    from_name: str | None,
    to: Sequence[str],
    subject: str,
    html: str,
    text: str | None = None,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    automatic: bool = False,
    attachments: Sequence[OutgoingAttachment] = (),
    message_id: str | None = None,
    date: float | None = None,
) -> Outgoing:
    """HTML + plain-text alternative, inline images (multipart/related) and attachments.

    `automatic` marks acknowledgements and rule replies (`Auto-Submitted: auto-replied`),
    never an agent's reply. Recipients are de-duplicated across To, CC and BCC.
    """
    message_id = (message_id or make_message_id(from_address)).strip("<>")
    to_list = _dedupe(to, set())
    cc_list = _dedupe(cc, {email.utils.parseaddr(a)[1].lower() for a in to_list})
    seen = {email.utils.parseaddr(a)[1].lower() for a in [*to_list, *cc_list]}
    bcc_list = _dedupe(bcc, seen)

    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = email.utils.formataddr((from_name or "", from_address))
    if to_list:
        msg["To"] = ", ".join(to_list)
    if cc_list:
        msg["Cc"] = ", ".join(cc_list)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(date, localtime=False, usegmt=True)
    msg["Message-ID"] = angle(message_id)
    if in_reply_to:
        msg["In-Reply-To"] = angle(in_reply_to)
    if references:
        msg["References"] = " ".join(angle(r) for r in references)
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"

    msg.set_content(text if text is not None else html_to_text(html))
    msg.add_alternative(html, subtype="html")
    inline = [a for a in attachments if a.inline and a.content_id]
    if inline:
        html_part = cast(
            EmailMessage, next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        )
        for item in inline:
            maintype, _, subtype = item.content_type.partition("/")
            html_part.add_related(
                item.data,
                maintype=maintype,
                subtype=subtype or "octet-stream",
                cid=angle(item.content_id or ""),
                filename=item.filename,
                disposition="inline",
            )
    for item in attachments:
        if item in inline:
            continue
        maintype, _, subtype = item.content_type.partition("/")
        msg.add_attachment(
            item.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=item.filename,
        )
    recipients = [email.utils.parseaddr(a)[1] for a in [*to_list, *cc_list, *bcc_list]]
    return Outgoing(msg, message_id, from_address, [r for r in recipients if r])
