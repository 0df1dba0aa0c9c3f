"""Ticket tokens, Message-IDs, the References chain and the outgoing MIME message."""

from __future__ import annotations

import email
import email.policy

import pytest

from enque.email.outbound_mime import OutgoingAttachment, build_message
from enque.email.parse import parse_message
from enque.email.threading import (
    base_subject,
    make_message_id,
    references_chain,
    reply_subject,
    ticket_number,
    token_pattern,
)
from tests.email.corpus import PNG


@pytest.mark.parametrize(
    ("subject", "number"),
    [
        ("Re: Help [#1042]", 1042),
        ("RE: AW: Help [# 1042 ]", 1042),
        ("Re: Help [ID:77]", 77),
        ("Re: Help [id: 77]", 77),
        ("Fwd: [#12] old, now [#1042]", 1042),
        ("Help with order #1042", None),
        ("Help", None),
        ("", None),
    ],
)
def test_ticket_number_from_subject(subject: str, number: int | None) -> None:
    assert ticket_number(subject) == number


def test_configurable_token_and_legacy_fallback() -> None:
    template = "(Case {number})"
    assert ticket_number("Re: Help (Case 55)", template) == 55
    assert ticket_number("Re: Help [ID:9]", template) == 9
    assert ticket_number("Re: Help [#9]", template) is None
    with pytest.raises(ValueError):
        token_pattern("no number here")


@pytest.mark.parametrize(
    "subject",
    [
        "Help",
        "Re: Help",
        "RE: Re: re: Help [#1042]",
        "Re: AW: SV: Fwd: Help [#1042]",
        "Re: Help [#1042] [ID:1042]",
        "Antw: Re[2]: Help",
        "回复: Help",
    ],
)
def test_reply_subject_never_stacks(subject: str) -> None:
    assert reply_subject(subject, 1042) == "Re: Help [#1042]"
    assert reply_subject(reply_subject(subject, 1042), 1042) == "Re: Help [#1042]"


def test_base_subject_and_empty() -> None:
    assert base_subject("Re: [#5] Refund") == "Refund"
    assert reply_subject("", 5) == "Re: (no subject) [#5]"
    assert reply_subject("Help", None) == "Re: Help"


def test_message_ids_are_unique_in_the_mailbox_domain() -> None:
    ids = {make_message_id("Support@Acme.TEST") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.endswith("@acme.test") and "<" not in i for i in ids)


def test_references_chain() -> None:
    assert references_chain(["<a@x>", "b@x"], "<c@x>") == ["a@x", "b@x", "c@x"]
    assert references_chain([], "c@x") == ["c@x"]
    assert references_chain(["a@x"], "a@x") == ["a@x"]
    long = [f"r{i}@x" for i in range(50)]
    chain = references_chain(long, "last@x", limit=10)
    assert chain[0] == "r0@x" and chain[-1] == "last@x" and len(chain) == 10


def test_reply_message_headers_and_structure() -> None:
    out = build_message(
        from_address="support@acme.test",
        from_name="Acme Support",
        to=["Alice <alice@customer.test>"],
        cc=["carol@customer.test", "ALICE@customer.test"],
        bcc=["boss@acme.test", "carol@customer.test"],
        subject=reply_subject("Re: Help", 1042),
        html='<p>Hello Zoë</p><img src="cid:logo@acme">',
        in_reply_to="reply2@customer.test",
        references=references_chain(["root@customer.test"], "reply2@customer.test"),
        attachments=[
            OutgoingAttachment("logo.png", "image/png", PNG, content_id="logo@acme", inline=True),
            OutgoingAttachment("invoice.pdf", "application/pdf", b"%PDF-1.4"),
        ],
    )
    raw = out.as_bytes()
    assert b"\r\n" in raw and b"Bcc" not in raw and b"boss@acme.test" not in raw
    assert out.recipients == ["alice@customer.test", "carol@customer.test", "boss@acme.test"]
    assert out.sender == "support@acme.test"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Re: Help [#1042]"
    assert msg["Message-ID"] == f"<{out.message_id}>" and out.message_id.endswith("@acme.test")
    assert msg["In-Reply-To"] == "<reply2@customer.test>"
    assert msg["References"] == "<root@customer.test> <reply2@customer.test>"
    assert "Auto-Submitted" not in msg
    assert msg.get_content_type() == "multipart/mixed"
    parsed = parse_message(raw)
    assert parsed.text == "Hello Zoë"
    assert parsed.html is not None and 'src="cid:logo@acme"' in parsed.html
    logo, pdf = parsed.attachments
    assert logo.inline and logo.content_id == "logo@acme" and logo.data == PNG
    assert pdf.filename == "invoice.pdf" and not pdf.inline


def test_automatic_messages_are_marked() -> None:
    out = build_message(
        from_address="support@acme.test",
        from_name=None,
        to=["alice@customer.test"],
        subject="We got your message [#7]",
        html="<p>Thanks</p>",
        automatic=True,
    )
    msg = email.message_from_bytes(out.as_bytes(), policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"] == "support@acme.test"
    assert msg.get_content_type() == "multipart/alternative"


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(
            from_address="support@acme.test",
            from_name=None,
            to=["alice@customer.test"],
            subject="Hi\r\nBcc: victim@evil.test",
            html="<p>x</p>",
        )


def test_non_ascii_names_and_subjects_are_encoded() -> None:
    out = build_message(
        from_address="support@acme.test",
        from_name="Équipe Support",
        to=["Zoë Ünal <zoe@customer.test>"],
        subject="Re: Commande n°5 ✓",
        html="<p>Bonjour</p>",
    )
    raw = out.as_bytes()
    assert raw.isascii()
    parsed = parse_message(raw)
    assert parsed.subject == "Re: Commande n°5 ✓"
    assert parsed.to[0].name == "Zoë Ünal"
    assert parsed.from_[0].name == "Équipe Support"
