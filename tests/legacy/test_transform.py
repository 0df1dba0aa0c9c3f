"""The pure conversions, on hand-made values and on the edge rows of a built legacy database."""

from __future__ import annotations

import base64
import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet

from enque.migrate import spec
from enque.migrate import transform as t
from enque.migrate.idmap import IdSpace
from enque.migrate.report import Report, RowContext
from enque.migrate.source import LegacySource, SourceUrl
from tests.legacy.generator import LEGACY_KEY, PNG_1PX, Manifest, legacy_fernet


def ctx(table: str = "comments", row_id: int = 1) -> RowContext:
    return RowContext(Report(source="test"), table, row_id)


def codes(c: RowContext) -> list[str]:
    return [issue.code for issue in c.report.issues]


# ---------------------------------------------------------------- dates and scalars


def test_datetimes_are_naive_utc() -> None:
    assert t.to_unix(datetime(2024, 1, 5, 10, 0)) == 1704448800
    assert t.to_unix(datetime(2024, 1, 5, 11, 0, tzinfo=timezone(timedelta(hours=1)))) == 1704448800
    assert t.to_unix("2024-01-05 10:00:00") == 1704448800
    assert t.to_unix("2024-01-05 10:00:00.750000") == 1704448800
    assert t.to_unix(date(2024, 1, 5)) == 1704412800
    assert t.to_unix(None) is None


@pytest.mark.parametrize(
    "value",
    [
        "0000-00-00 00:00:00",
        "0000-00-00",
        "2019-00-10 00:00:00",
        "2023-02-30 00:00:00",
        "soon",
        b"\x00",
    ],
)
def test_invalid_dates_become_null_and_are_reported(value: object) -> None:
    with pytest.raises(t.InvalidValue):
        t.to_unix(value)
    c = ctx("tickets", 41)
    assert t.unix_time(value, c, "created_at") is None
    [issue] = c.report.issues
    assert (issue.code, issue.table, issue.row_id, issue.column) == (
        "invalid_date",
        "tickets",
        41,
        "created_at",
    )


def test_booleans() -> None:
    assert [t.to_bool(v) for v in (1, 0, None, b"\x01", b"\x00", "0", "1", True)] == [
        True,
        False,
        None,
        True,
        False,
        False,
        True,
        True,
    ]


def test_json_valid_and_invalid() -> None:
    c = ctx("agents")
    assert t.json_value('{"a": [1, "é"]}', c, "microsoft_profile_data") == {"a": [1, "é"]}
    assert t.json_value(b"[1]", c, "x") == [1]
    assert t.json_value(None, c, "x") is None
    assert codes(c) == []
    assert t.json_value("{'displayName': 'Mia', broken", c, "microsoft_profile_data") == (
        "{'displayName': 'Mia', broken"
    )
    assert codes(c) == ["invalid_json"]


# ---------------------------------------------------------------- enumerations


def test_ticket_enums() -> None:
    c = ctx("tickets")
    assert t.ticket_status("With User", c) == "With User"
    assert t.ticket_status("in progress", c) == "In Progress"
    assert t.ticket_priority("CRITICAL", c) == "Critical"
    assert codes(c) == []
    assert t.ticket_status("", c) == "Open"  # MariaDB keeps an invalid ENUM as ''
    assert t.ticket_priority(None, c) == "Medium"
    assert codes(c) == ["unknown_enum", "unknown_enum"]


def test_people_enums() -> None:
    c = ctx("agents")
    assert t.agent_role("manager", c) == "manager"
    assert t.auth_method("both", c) == "both"
    assert t.agent_role("owner", c) == "agent"
    assert t.scheduled_status("mystery", c) == "cancelled"
    assert t.scheduled_status("sent", c) == "sent"
    assert codes(c) == ["unknown_enum", "unknown_enum"]


def test_comment_kind() -> None:
    c = ctx()
    assert t.comment_kind(1, customer_message=False, ctx=c) == "note"
    assert t.comment_kind(0, customer_message=False, ctx=c) == "reply"
    assert t.comment_kind(1, customer_message=True, ctx=c) == "customer"
    assert codes(c) == []
    assert t.comment_kind(None, customer_message=False, ctx=c) == "note"
    assert codes(c) == ["null_visibility"]


# ---------------------------------------------------------------- comment content


def test_comment_sources() -> None:
    c = ctx()
    assert t.comment_source(t.PLACEHOLDER, None, c).kind == "placeholder"
    url = "https://enque.s3.us-east-2.amazonaws.com/comments/comment-7.html"
    s3 = t.comment_source(f"[MIGRATED_TO_S3] Content moved to S3: {url}", url, c)
    assert (s3.kind, s3.s3_key) == ("s3", "comments/comment-7.html")
    assert t.comment_source("<p>hi</p>", None, c) == t.CommentSource("inline", html="<p>hi</p>")
    assert t.comment_source(None, None, c).kind == "empty"
    assert t.comment_source("<p>x</p>", "ftp://nope", c).kind == "inline"
    assert codes(c) == ["bad_s3_url"]


# every character `str.split()` and `str.strip()` treat as white space, and a few that are not
_BLANKS = "".join(chr(i) for i in range(0x3100) if chr(i).isspace()) + "x\u200b\xad"


def test_comment_source_tests_match_stripping_the_content() -> None:
    """The placeholder and empty tests, which no longer strip every content, decide as
    `content.strip()` would, whatever the white space around it."""
    rng = random.Random(3)
    c = ctx()
    for _ in range(20_000):
        pad = "".join(rng.choice(_BLANKS) for _ in range(rng.randrange(4)))
        end = "".join(rng.choice(_BLANKS) for _ in range(rng.randrange(4)))
        content = pad + rng.choice(["", t.PLACEHOLDER, t.PLACEHOLDER + "x", "<p>x</p>"]) + end
        kind = t.comment_source(content, None, c).kind
        stripped = content.strip()
        assert kind == (
            "placeholder" if stripped == t.PLACEHOLDER else "empty" if not stripped else "inline"
        ), repr(content)


def test_other_spaces_match_the_character_class() -> None:
    """The substring tests find what `[\\t\\r\\x0b\\x0c\\x1c-\\x1f]` found, in any text."""
    pattern = re.compile(r"[\t\r\x0b\x0c\x1c-\x1f]")
    rng = random.Random(5)
    alphabet = [chr(i) for i in range(0x21)] + ["a", "é", "\u2003", "\n"]
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        assert t._other_spaces(text) == bool(pattern.search(text)), repr(text)


def test_skipped_elements_are_searched_only_where_one_starts() -> None:
    """Every element the text leaves out starts where the quick search finds one: text
    without such a start has nothing to remove."""
    rng = random.Random(11)
    parts = [
        "<p>", "</p>", "<SCRIPT>", "</script >", "<style a='1'>", "</Style>", "<title>",
        "</TITLE>", "<head>", "</head>", "<scripts>", "<headx>", "<p title='<head>'>", "x",
        " ", "\n", "é", "<",
    ]  # fmt: skip
    found = 0
    for _ in range(50_000):
        text = "".join(rng.choice(parts) for _ in range(rng.randrange(8)))
        if t._SKIPPED_ELEMENTS.search(text):
            found += 1
            assert t._SKIPPED_START.search(text), repr(text)
    assert found > 1000


def test_original_sender_marker() -> None:
    c = ctx()
    sender, html = t.split_original_sender(
        "<original-sender>Sean O&#39;Brien|Sean@Customer.EXAMPLE</original-sender><p>hi</p>", c
    )
    assert sender == t.OriginalSender("Sean O'Brien", "Sean@customer.example")
    assert html == "<p>hi</p>"
    sender, html = t.split_original_sender("  <original-sender>|a@b.example</original-sender>x", c)
    assert sender == t.OriginalSender(None, "a@b.example") and html == "x"
    assert t.split_original_sender("<p>agent reply</p>", c) == (None, "<p>agent reply</p>")
    assert codes(c) == []
    sender, html = t.split_original_sender(
        "<original-sender>No One|nobody</original-sender><p>x</p>", c
    )
    assert sender == t.OriginalSender("No One", None) and html == "<p>x</p>"
    assert codes(c) == ["bad_original_sender"]


def test_recipients() -> None:
    c = ctx("tickets")
    value = (
        'a@x.example, "Doe, Jane" <jane@customer.example>; <span style="color:red">'
        "boss@customer.example"
        '</span>, not an address, <a href="mailto:x@y.example">x@y.example</a>, A@X.example, '
        "&lt;audit@customer.example&gt;"
    )
    found = t.parse_recipients(value, c, "cc_recipients")
    assert [a.email for a in found] == [
        "a@x.example",
        "jane@customer.example",
        "boss@customer.example",
        "x@y.example",
        "audit@customer.example",
    ]
    assert found[1] == t.Address("Doe, Jane", "jane@customer.example")
    assert codes(c) == ["bad_recipient"]
    assert t.parse_recipients(None, c, "to") == [] and t.parse_recipients("  ", c, "to") == []


def test_s3_locations() -> None:
    assert t.s3_location("https://enque.s3.us-east-2.amazonaws.com/documents/a%20b.pdf") == (
        "enque",
        "documents/a b.pdf",
    )
    assert t.s3_location("https://enque.s3.amazonaws.com/x.png") == ("enque", "x.png")
    assert t.s3_location("https://s3.eu-west-1.amazonaws.com/enque/k/v.png") == ("enque", "k/v.png")
    assert t.s3_location("s3://enque/k") == ("enque", "k")
    assert t.s3_location("https://example.com/k") is None
    assert t.s3_location("https://enque.s3.us-east-2.amazonaws.com/") is None


def test_inline_images() -> None:
    c = ctx()
    data_uri = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    s3 = "https://enque.s3.us-east-2.amazonaws.com/email_images/abc.png"
    other = "https://cdn.example/logo.png"
    html = (
        f'<img src="{data_uri}"><IMG alt=x SRC=\'{data_uri}\'><img src="{s3}"><img src="{other}">'
        '<img src="data:image/png;base64,@@bad@@">'
    )
    rewritten, images = t.extract_inline_images(html, c)
    assert len(images) == 2
    data_image = next(i for i in images if i.data is not None)
    s3_image = next(i for i in images if i.s3_key is not None)
    assert data_image.data == PNG_1PX and data_image.content_type == "image/png"
    assert data_image.filename.endswith(".png")
    assert (s3_image.s3_key, s3_image.content_type) == ("email_images/abc.png", "image/png")
    assert rewritten.count(f"cid:{data_image.content_id}") == 2
    assert f'src="cid:{s3_image.content_id}"' in rewritten
    assert other in rewritten and "@@bad@@" in rewritten and "base64,iVBOR" not in rewritten
    assert codes(c) == ["bad_data_uri"]
    # deterministic: a re-run produces the same ids
    assert t.extract_inline_images(html, ctx())[0] == rewritten


def test_attachment_sources_and_keys() -> None:
    c = ctx("ticket_attachments")
    assert t.attachment_source({"content_bytes": b"abc", "s3_url": None}, c) == t.AttachmentSource(
        data=b"abc"
    )
    url = "https://enque.s3.us-east-2.amazonaws.com/documents/x.pdf"
    assert t.attachment_source({"content_bytes": None, "s3_url": url}, c) == t.AttachmentSource(
        s3_key="documents/x.pdf"
    )
    assert t.attachment_source({"content_bytes": None, "s3_url": None}, c) is None
    # the source holds no bytes for it: reported, but the copy loses nothing
    assert c.report.count("attachment_without_content", level="warning") == 1
    stamp = int(datetime(2024, 3, 9, tzinfo=UTC).timestamp())
    assert t.storage_key("ws-1", stamp, "att-1") == "ws-1/2024/03/att-1"


def test_legacy_secrets() -> None:
    token = legacy_fernet(LEGACY_KEY).encrypt(b"refresh-123").decode()
    c = ctx("microsoft_tokens")
    assert t.looks_fernet(token) and not t.looks_fernet("plain-token")
    assert t.LegacySecrets(LEGACY_KEY).reveal(token, c, "refresh_token") == "refresh-123"
    assert t.LegacySecrets(LEGACY_KEY).reveal("plain-token", c, "refresh_token") == "plain-token"
    assert t.LegacySecrets(LEGACY_KEY).reveal(None, c, "refresh_token") is None
    assert codes(c) == []
    assert t.LegacySecrets("wrong key").reveal(token, c, "refresh_token") is None
    assert t.LegacySecrets(None).reveal(token, c, "refresh_token") is None
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    assert t.LegacySecrets(LEGACY_KEY).reveal(foreign, c, "refresh_token") is None
    assert codes(c) == ["undecryptable_secret", "encrypted_secret", "undecryptable_secret"]


def test_customer_email_and_checksum() -> None:
    c = ctx("users")
    assert t.customer_email(" Bob@Example.COM ", c) == "Bob@example.com"
    assert t.customer_email("nope", c) is None
    assert codes(c) == ["bad_email"]
    assert t.row_checksum([{"b": 1, "a": "é"}]) == t.row_checksum([{"a": "é", "b": 1}])
    assert t.row_checksum([1, "a"]) != t.row_checksum(["a", 1])


# ---------------------------------------------------------------- on the edge data


async def test_transforms_on_every_comment_of_the_edge_database(legacy: Manifest) -> None:
    report = Report(source="test")
    kinds: dict[int, str] = {}
    senders: dict[int, t.OriginalSender | None] = {}
    images: dict[int, int] = {}
    async with LegacySource(SourceUrl.parse(legacy.url)) as source:
        async for rows in source.stream("comments", batch_size=50):
            for row in rows:
                c = RowContext(report, "comments", row["id"])
                src = t.comment_source(row["content"], row["s3_html_url"], c)
                t.unix_time(row["created_at"], c, "created_at")
                for column in ("to_recipients", "other_destinaries", "bcc_recipients"):
                    t.parse_recipients(row[column], c, column)
                kinds[row["id"]] = src.kind
                if src.kind == "inline" and src.html is not None:
                    sender, html = t.split_original_sender(src.html, c)
                    senders[row["id"]] = sender
                    _, found = t.extract_inline_images(html, c)
                    images[row["id"]] = len(found)
    edge = legacy.edge
    assert kinds[edge["comment_placeholder"]] == "placeholder"
    assert kinds[edge["comment_s3_big"]] == "s3"
    assert kinds[edge["nulls_comments"]] == "empty"
    assert senders[edge["comment_emoji_rtl"]] is not None
    assert senders[edge["comment_marker_entities"]] == t.OriginalSender(
        "Sean O'Brien", "sean@customer.example"
    )
    assert images[edge["comment_data_image"]] == 1 and images[edge["comment_s3_image"]] == 1
    found = {(i.code, i.row_id) for i in report.issues}
    assert ("invalid_date", edge["comment_zero_date"]) in found
    assert ("bad_recipient", edge["comment_recipients"]) in found
    assert ("bad_original_sender", edge["comment_marker_bad_email"]) in found
    assert ("bad_data_uri", edge["comment_data_image"]) in found


async def test_transforms_on_the_edge_tickets_agents_and_secrets(legacy: Manifest) -> None:
    report = Report(source="test")
    secrets = t.LegacySecrets(legacy.legacy_key)
    async with LegacySource(SourceUrl.parse(legacy.url)) as source:
        tickets = {r["id"]: r for rows in [b async for b in source.stream("tickets")] for r in rows}
        agents = {r["id"]: r for rows in [b async for b in source.stream("agents")] for r in rows}
        tokens = [r for rows in [b async for b in source.stream("microsoft_tokens")] for r in rows]
    edge = legacy.edge
    zero = RowContext(report, "tickets", edge["ticket_zero_dates"])
    assert t.unix_time(tickets[edge["ticket_zero_dates"]]["created_at"], zero, "created_at") is None
    assert t.unix_time(tickets[1]["created_at"], zero, "created_at") == 1641196800
    bad = RowContext(report, "tickets", edge["ticket_bad_status"])
    assert t.ticket_status(tickets[edge["ticket_bad_status"]]["status"], bad) == "Open"
    rcpt = RowContext(report, "tickets", edge["ticket_recipients"])
    cc = t.parse_recipients(
        tickets[edge["ticket_recipients"]]["cc_recipients"], rcpt, "cc_recipients"
    )
    assert [a.email for a in cc] == ["boss@customer.example", "ops@customer.example", "x@y.example"]
    ms = RowContext(report, "agents", edge["agent_microsoft"])
    assert isinstance(
        t.json_value(agents[edge["agent_microsoft"]]["microsoft_profile_data"], ms, "p"), str
    )
    assert secrets.reveal(agents[edge["agent_microsoft"]]["microsoft_refresh_token"], ms, "t") == (
        "agent-refresh-token-mia"
    )
    revealed = {
        r["id"]: secrets.reveal(r["refresh_token"], RowContext(report, "x", r["id"]), "r")
        for r in tokens
    }
    assert revealed[edge["token_encrypted"]] == "refresh-token-mailbox-1"
    assert revealed[edge["token_plaintext"]] == "refresh-token-mailbox-2"
    assert {i.code for i in report.issues} == {
        "invalid_date",
        "unknown_enum",
        "bad_recipient",
        "invalid_json",
    }


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("<p>Hello there</p><p>again</p>", "Hello there\n\nagain"),
        ("<p>a \t b\xa0 c</p><div>  x  y </div>", "a b c\n\nx y"),
        ("<p>z\x0bq\u200br</p>", "z q r"),
        ("<ul><li>one</li><li>two</li></ul>", "one\n\ntwo"),
        ("<p>caf&eacute; &amp; 😀</p><style>p {}</style>", "café & 😀"),
        ("<div><p>1</p><p></p><p></p><p>2</p></div>", "1\n\n2"),
    ],
)
def test_html_text(content: str, text: str) -> None:
    """Runs of spaces, tabs and other blanks become one space on each line (the plain-space
    shortcut and the general path agree); block elements become line breaks."""
    assert t.html_text(content) == text


def test_lookup_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a table's batches remember is emptied past `CACHE_ROWS` entries: memory does not
    grow with the size of the database."""
    monkeypatch.setattr(spec, "CACHE_ROWS", 3)
    env = spec.Env(
        IdSpace(uuid.uuid4(), 0), cast(Any, None), Report(source="t"), store_from=None, agents={}
    )
    env.memo("tickets").update({1: "a", 2: "b", 3: "c"})
    assert env.memo("tickets") == {1: "a", 2: "b", 3: "c"}  # kept up to the bound
    env.memo("tickets")[4] = "d"
    assert env.memo("tickets") == {}  # past it: started afresh
