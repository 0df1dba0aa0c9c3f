"""The parser against the corpus of hard messages."""

from __future__ import annotations

import email.policy
import gc
import tracemalloc

import pytest

from enque.email import parse
from enque.email.parse import parse_message
from tests.email import corpus


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (corpus.shift_jis(), corpus.JAPANESE),
        (corpus.gb2312_with_gbk_chars(), corpus.CHINESE),
        (corpus.iso_2022_jp(), "お問い合わせ"),
        (corpus.latin1_labelled_windows1252(), corpus.WIN1252),
        (corpus.koi8r(), corpus.RUSSIAN),
        (corpus.text_in("iso-8859-2", "Zażółć gęślą jaźń"), "Zażółć gęślą jaźń"),
        (corpus.text_in("ISO-8859-15", "Prix : 5 € œuvre", cte="base64"), "Prix : 5 € œuvre"),
        (corpus.text_in("windows-1250", "Příliš žluťoučký kůň"), "Příliš žluťoučký kůň"),
        (corpus.windows1251_qp(), corpus.RUSSIAN),
        (corpus.unknown_charset(), "Grüße aus Köln"),
        (corpus.utf8_labelled_latin1(), "Grüße aus Köln"),
    ],
    ids=[
        "shift_jis",
        "gb2312",
        "iso-2022-jp",
        "latin1-as-1252",
        "koi8-r",
        "iso-8859-2",
        "iso-8859-15",
        "cp1250",
        "cp1251-qp",
        "unknown",
        "mislabelled-utf8",
    ],
)
def test_charsets_decode_to_the_sent_text(raw: bytes, expected: str) -> None:
    msg = parse_message(raw)
    assert msg.text.strip() == expected
    assert msg.html is None


def test_headers_basic_fields() -> None:
    msg = parse_message(corpus.thread_reply())
    assert msg.message_id == "reply2@customer.test"
    assert msg.in_reply_to == "enque-1@acme.test"
    assert msg.references == ["root@customer.test", "enque-1@acme.test"]
    assert msg.sender is not None and msg.sender.email == "alice@customer.test"
    assert msg.sender.name == "Alice Customer"
    assert [a.email for a in msg.cc] == ["carol@customer.test", "dave@customer.test"]
    assert msg.cc[0].name == "Carol, Finance"
    assert [a.email for a in msg.reply_to] == ["alice.private@customer.test"]
    assert msg.return_path == "alice@customer.test"
    assert msg.date == 1704704400
    assert msg.subject == "Re: Help [#1042]"


def test_iso_2022_jp_and_rfc2047_subjects() -> None:
    assert parse_message(corpus.iso_2022_jp()).subject == "ご注文"
    assert parse_message(corpus.rfc2047_subject()).subject == "Élève café ✓ done"


def test_raw_eight_bit_headers() -> None:
    msg = parse_message(corpus.raw_utf8_headers())
    assert msg.subject == "Bestellung für Müller"
    assert msg.sender is not None and msg.sender.name == "Zoë Ünal"
    assert msg.text.strip() == "Hallo Müller"


def test_rfc2231_continued_filename() -> None:
    msg = parse_message(corpus.rfc2231_filename())
    (att,) = msg.attachments
    assert att.filename == "Rechnung_März_2024_überfällig_und_sehr_lang.pdf"
    assert att.data == b"%PDF-1.4 fake"
    assert msg.text == "See attached"


def test_no_text_part_keeps_the_attachment() -> None:
    msg = parse_message(corpus.attachment_only())
    assert msg.text == "" and msg.html is None
    assert [(a.filename, a.content_type, a.data) for a in msg.attachments] == [
        ("scan.pdf", "application/pdf", b"%PDF-1.7 scan")
    ]


def test_html_only_gets_a_text_version() -> None:
    msg = parse_message(corpus.html_only())
    assert msg.html is not None and "<b>team</b>" in msg.html
    assert msg.text.splitlines()[0] == "Hello team"
    assert "Second line" in msg.text


def test_missing_boundary_is_kept_not_dropped() -> None:
    msg = parse_message(corpus.missing_boundary())
    assert any(b"Some text" in a.data for a in msg.attachments)
    assert "NoBoundaryInMultipartDefect" in msg.defects


def test_bad_base64_keeps_the_original_bytes() -> None:
    msg = parse_message(corpus.bad_base64())
    raw_parts = [a for a in msg.attachments if a.note and "damaged" in a.note]
    assert len(raw_parts) == 2  # the text body and the image, both as received
    assert any(b"SGVsbG8gd29ybGQ*!!broken" in a.data for a in raw_parts)
    assert any(b"iVBORw0KGgo$$$" in a.data for a in raw_parts)
    assert msg.text.startswith("Hello world")


def test_truncated_message_keeps_what_arrived() -> None:
    msg = parse_message(corpus.truncated())
    assert msg.text == "The start of my message"
    assert [a.filename for a in msg.attachments] == ["big.pdf"]
    assert msg.attachments[0].data.startswith(b"%PDF-1.4")
    assert msg.defects


def test_forwarded_message_is_an_eml_attachment_and_summarised() -> None:
    msg = parse_message(corpus.forwarded())
    assert msg.text == "See the forwarded mail below"
    (eml,) = msg.attachments
    assert eml.filename == "Your invoice.eml" and eml.content_type == "message/rfc822"
    again = parse_message(eml.data)
    assert again.message_id == "inner@vendor.test" and again.text == "Please pay invoice 77."
    (summary,) = msg.forwarded
    assert summary.subject == "Your invoice"
    assert summary.sender is not None and summary.sender.email == "bob@vendor.test"
    assert summary.message_id == "inner@vendor.test"
    assert summary.text == "Please pay invoice 77."


def test_smime_parts_are_attachments() -> None:
    signed = parse_message(corpus.smime_signed())
    assert signed.text == "Signed hello"
    (sig,) = signed.attachments
    assert sig.filename == "smime.p7s" and sig.note == "S/MIME"
    encrypted = parse_message(corpus.smime_encrypted())
    (blob,) = encrypted.attachments
    assert blob.filename == "smime.p7m" and blob.data.startswith(b"0\x80")
    assert encrypted.text == ""


def test_calendar_invitation_is_kept() -> None:
    msg = parse_message(corpus.calendar_invitation())
    assert msg.text == "You are invited"
    assert msg.html is not None and "<b>invited</b>" in msg.html
    calendars = [a for a in msg.attachments if a.note == "calendar invitation"]
    assert len(calendars) == 2
    assert calendars[0].filename.endswith(".ics") and b"METHOD:REQUEST" in calendars[0].data


def test_inline_image_and_attachment() -> None:
    msg = parse_message(corpus.inline_image())
    assert msg.html is not None and 'src="cid:logo@x"' in msg.html
    assert msg.text == "Logo below"
    logo, csv = msg.attachments
    assert logo.inline and logo.content_id == "logo@x" and logo.data == corpus.PNG
    assert not csv.inline and csv.filename == "data.csv"


def test_apple_mixed_keeps_order_of_text_around_images() -> None:
    msg = parse_message(corpus.apple_mixed())
    assert msg.html is not None
    assert msg.html.index("Before the photo") < msg.html.index("After the photo")
    assert msg.text.index("Before") < msg.text.index("After")
    assert msg.attachments[0].inline and msg.attachments[0].filename == "photo.png"


def test_deep_nesting_is_kept_without_crashing() -> None:
    msg = parse_message(corpus.deep_nesting())
    assert msg.text == "" and any(b"deep down" in a.data for a in msg.attachments)


def test_forwards_nested_without_end_are_bounded() -> None:
    raw = corpus.message(corpus.base_headers(Content_Type="text/plain"), "the original")
    for _ in range(200):
        raw = corpus.message(corpus.base_headers(Content_Type="message/rfc822"), raw)
    msg = parse_message(raw)
    assert msg.defects == [] and len(msg.forwarded) == 1
    assert [a.content_type for a in msg.attachments] == ["message/rfc822"]
    assert b"the original" in msg.attachments[0].data


def test_missing_ids_and_unreadable_date() -> None:
    msg = parse_message(corpus.no_ids_bad_date())
    assert msg.message_id is None and msg.date is None and msg.text == "no ids"


def test_bounce_headers_for_the_classifier() -> None:
    msg = parse_message(corpus.bounce())
    assert msg.content_type == "multipart/report" and msg.report_type == "delivery-status"
    assert msg.return_path == ""
    assert "could not be delivered" in msg.text
    assert any(a.content_type == "message/delivery-status" for a in msg.attachments)


CORPUS = [
    corpus.shift_jis, corpus.gb2312_with_gbk_chars, corpus.iso_2022_jp, corpus.koi8r,
    corpus.latin1_labelled_windows1252, corpus.windows1251_qp, corpus.unknown_charset,
    corpus.utf8_labelled_latin1, corpus.raw_utf8_headers, corpus.rfc2047_subject,
    corpus.rfc2231_filename, corpus.attachment_only, corpus.html_only, corpus.missing_boundary,
    corpus.bad_base64, corpus.truncated, corpus.forwarded, corpus.smime_signed,
    corpus.smime_encrypted, corpus.calendar_invitation, corpus.inline_image,
    corpus.apple_mixed, corpus.deep_nesting, corpus.no_ids_bad_date, corpus.thread_reply,
    corpus.bounce,
]  # fmt: skip


def test_headers_parsed_once_read_as_policy_default_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept parses of header values change nothing: every message of the corpus, parsed
    twice (the second time from kept headers), reads as under plain `policy.default`."""
    kept = [(parse_message(make()), parse_message(make())) for make in CORPUS]
    monkeypatch.setattr(parse, "POLICY", email.policy.default)
    for make, (first, again) in zip(CORPUS, kept, strict=True):
        plain = parse_message(make())
        assert first == plain and again == plain, make.__name__


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff\xfe garbage", b"Subject: only a header", b"From: <>\r\n\r\n", b"\r\n" * 5],
)
def test_garbage_never_raises(raw: bytes) -> None:
    msg = parse_message(raw)
    assert msg.raw_size == len(raw)


def test_thirty_megabyte_message_parses_with_bounded_memory() -> None:
    raw = corpus.large(30)
    gc.collect()
    tracemalloc.start()
    try:
        msg = parse_message(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (att,) = msg.attachments
    assert att.size == 30 * 1024 * 1024 * 3 // 4
    assert msg.text == "Big file attached"
    # The parser holds the text of the message once, plus the decoded attachment and
    # transient copies while decoding; bounded by a small multiple of the input.
    assert peak < 4 * len(raw), f"peak {peak / 1e6:.0f} MB for {len(raw) / 1e6:.0f} MB"
