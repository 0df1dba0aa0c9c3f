"""Raw RFC 5322 bytes → a normalised message (standard library `email`, policy `default`).

Nothing is dropped: a part that cannot be decoded is kept as an attachment with a note, a
forwarded message is kept as an `.eml` attachment and summarised, signatures and calendar
invitations are attachments. Never raises on malformed input.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import email.utils
import functools
import io
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC
from email.message import Message
from email.parser import BytesParser
from typing import Any

from enque.email.charsets import decode_text, fix_surrogates
from enque.email.sanitize import html_to_text, text_to_html

MAX_DEPTH = 40
MAX_HEADER_VALUE = 2000
HEADER_CACHE = 4096  # parsed header values kept (each at most MAX_CACHED_HEADER long)
MAX_CACHED_HEADER = 1000
# Headers the classifier (loops, bounces, auto-replies, lists) looks at.
CLASSIFY_HEADERS = (
    "auto-submitted",
    "x-auto-response-suppress",
    "precedence",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "x-failed-recipients",
    "feedback-type",
    "x-loop",
    "delivered-to",
)
# Other renderings of the same content inside multipart/alternative; not content of their own.
_REDUNDANT_ALTERNATIVES = {"text/x-amp-html", "text/watch-html", "text/enriched"}
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]*")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
_MSGID = re.compile(r"<([^<>\s]+)>")
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    def __str__(self) -> str:
        return email.utils.formataddr((self.name, self.email)) if self.name else self.email


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False
    note: str | None = None  # why a non-file part was kept (undecodable body, signature …)
    declared_size: int | None = None  # set when the bytes were not fetched (over a limit)

    @property
    def size(self) -> int:
        return self.declared_size if self.declared_size is not None else len(self.data)


@dataclass
class ForwardedMessage:
    """What a forwarded `message/rfc822` part is about (the part itself is an attachment)."""

    subject: str
    sender: Address | None
    date: int | None
    message_id: str | None
    text: str


@dataclass
class ParsedMessage:
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    from_: list[Address]
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    return_path: str | None  # None: no header; "": the null reverse-path `<>` (bounces)
    subject: str
    date: int | None
    html: str | None
    text: str
    attachments: list[Attachment]
    forwarded: list[ForwardedMessage]
    headers: dict[str, str]
    content_type: str
    report_type: str | None
    raw_size: int
    defects: list[str] = field(default_factory=list)

    @property
    def sender(self) -> Address | None:
        return self.from_[0] if self.from_ else None


# ---------------------------------------------------------------- headers


def _header(msg: Message, name: str) -> str | None:
    """A header's decoded value (RFC 2047, raw 8-bit), or None; never raises."""
    try:
        value = msg.get(name)
    except Exception:
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if value is None:
        return None
    return fix_surrogates(str(value))


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name:
            return fix_surrogates(str(value))
    return None


def _addresses(msg: Message, name: str) -> list[Address]:
    found: list[Address] = []
    try:
        values = msg.get_all(name) or []
        pairs: list[tuple[str, str]] = []
        for value in values:
            for addr in getattr(value, "addresses", ()):
                pairs.append((addr.display_name, addr.addr_spec))
    except Exception:
        raw = [v for k, v in msg.raw_items() if k.lower() == name]
        pairs = email.utils.getaddresses([fix_surrogates(str(v)) for v in raw])
    for display, spec in pairs:
        spec = fix_surrogates(spec).strip().strip("<>")
        if "@" not in spec or any(ch.isspace() for ch in spec):
            continue
        local, _, domain = spec.rpartition("@")
        display = _WS.sub(" ", fix_surrogates(display)).strip().strip('"')
        found.append(Address(display, f"{local}@{domain.lower()}"))
    return found


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    ids = _MSGID.findall(value)
    if not ids:
        ids = value.split()
    return list(dict.fromkeys(i.strip()[:900] for i in ids if i.strip()))


def _date(msg: Message) -> int | None:
    raw = _raw_header(msg, "date")
    if not raw:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _return_path(msg: Message) -> str | None:
    raw = _raw_header(msg, "return-path")
    if raw is None:
        return None
    return raw.strip().strip("<>").strip()


def _subject(msg: Message) -> str:
    return _WS.sub(" ", _header(msg, "subject") or "").strip()


# ---------------------------------------------------------------- parts


def _filename(part: Message, index: int, content_type: str) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        name = fix_surrogates(str(name))
        name = _UNSAFE_FILENAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    if not name:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        if content_type == "message/rfc822":
            ext = ".eml"
        elif content_type == "text/calendar":
            ext = ".ics"
        name = f"part-{index}{ext}"
    return name[:255]


def _content_id(part: Message) -> str | None:
    value = _raw_header(part, "content-id")
    if not value:
        return None
    ids = _message_ids(value)
    return ids[0] if ids else value.strip()


def _transfer_decode(part: Message) -> tuple[bytes, bool]:
    """The part's bytes after transfer decoding, and whether that encoding was damaged.

    Clean base64 (the bulk of large messages) is decoded straight from the parsed text,
    without the line-by-line copies the standard library makes.
    """
    raw = part.get_payload()
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64" and isinstance(raw, str) and _BASE64_TEXT.fullmatch(raw):
        try:
            return binascii.a2b_base64(raw), False
        except (binascii.Error, ValueError):
            pass
    if cte == "base64" and isinstance(raw, str):
        # Damaged: decode every complete quantum of the base64 characters that are there.
        cleaned = _NOT_BASE64.sub("", raw)
        return binascii.a2b_base64(cleaned[: len(cleaned) - len(cleaned) % 4]), True
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data, False
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape"), False
    return b"", False


def _undecoded(part: Message) -> bytes:
    """The part's body as it was on the wire (before transfer decoding)."""
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _ctype(part: Message) -> str:
    """The part's content type, parsed once (policy.default re-parses on every call)."""
    cached = part.__dict__.get("_enque_ctype")
    if cached is None:
        cached = part.__dict__["_enque_ctype"] = part.get_content_type()
    return str(cached)


def _disposition(part: Message) -> str | None:
    if "_enque_disposition" not in part.__dict__:
        try:
            found = part.get_content_disposition()
        except Exception:
            found = None
        part.__dict__["_enque_disposition"] = found
    value: str | None = part.__dict__["_enque_disposition"]
    return value


@dataclass
class _Segment:
    text: str | None = None
    html: str | None = None


class _Walker:
    """Depth-first walk collecting body segments (in order) and attachments."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
        self.attachments: list[Attachment] = []
        self.forwarded: list[ForwardedMessage] = []
        self.defects: list[str] = []
        self.count = 0

    def walk(self, part: Message, depth: int = 0) -> None:
        self.count += 1
        ctype = _ctype(part)
        if depth > MAX_DEPTH:
            self._keep_raw(part, "nested too deeply to read")
            return
        if ctype in ("message/rfc822", "message/global"):
            self._forwarded(part, depth)
            return
        if ctype.startswith("message/") and part.is_multipart():
            self._keep_raw(part, "delivery report", content_type=ctype, with_headers=False)
            return
        if part.is_multipart():
            children = [c for c in part.get_payload() if isinstance(c, Message)]
            if ctype == "multipart/alternative":
                self._alternative(children, depth)
            else:
                for child in children:
                    self.walk(child, depth + 1)
            return
        if ctype.startswith("multipart/"):
            self.defects.append("multipart part without a usable boundary")
            self._keep_raw(part, "multipart without boundary; kept as received")
            return
        if self._is_body(part, ctype):
            self._body(part, ctype)
        else:
            self._attachment(part, ctype)

    def _is_body(self, part: Message, ctype: str) -> bool:
        if ctype not in ("text/plain", "text/html"):
            return False
        if _disposition(part) == "attachment":
            return False
        try:
            return not part.get_filename()
        except Exception:
            return False

    def _decode(self, part: Message, ctype: str) -> str:
        data, damaged = _transfer_decode(part)
        text, lossy = decode_text(data, part.get_content_charset())
        if lossy or damaged:
            note = "transfer encoding damaged" if damaged else "charset could not be decoded"
            self.defects.append(note)
            label = part.get_content_charset() or "unknown"
            self.attachments.append(
                Attachment(
                    filename=_filename(part, self.count, ctype),
                    content_type=f"{ctype}; charset={label}",
                    data=_undecoded(part) if damaged else data,
                    note=note,
                )
            )
        return text

    def _body(self, part: Message, ctype: str) -> None:
        text = self._decode(part, ctype)
        if ctype == "text/html":
            self.segments.append(_Segment(html=text))
        else:
            self.segments.append(_Segment(text=text))

    def _alternative(self, children: list[Message], depth: int) -> None:
        text_part = html_part = None
        for child in children:
            ctype = _ctype(child)
            if ctype == "text/plain" and _disposition(child) != "attachment":
                text_part = child
            elif ctype == "text/html" or child.is_multipart():
                html_part = child
        segment = _Segment()
        if text_part is not None:
            segment.text = self._decode(text_part, "text/plain")
        if html_part is not None:
            if html_part.is_multipart():
                inner = _Walker()
                inner.count = self.count
                inner.walk(html_part, depth + 1)
                self.count = inner.count
                self.attachments.extend(inner.attachments)
                self.forwarded.extend(inner.forwarded)
                self.defects.extend(inner.defects)
                html, text = _join(inner.segments)
                segment.html = html
                segment.text = segment.text if segment.text is not None else text
            else:
                segment.html = self._decode(html_part, "text/html")
        if segment.text is not None or segment.html is not None:
            self.segments.append(segment)
        has_body = segment.text is not None or segment.html is not None
        for child in children:
            if child is text_part or child is html_part:
                continue
            if has_body and _ctype(child) in _REDUNDANT_ALTERNATIVES:
                continue
            self.walk(child, depth + 1)

    def _attachment(self, part: Message, ctype: str) -> None:
        disposition = _disposition(part)
        content_id = _content_id(part)
        data, damaged = _transfer_decode(part)
        note = None
        if ctype.startswith("application/pkcs7-") or ctype.startswith("application/x-pkcs7-"):
            note = "S/MIME"
        elif ctype in ("text/calendar", "application/ics"):
            note = "calendar invitation"
        if damaged:
            self.defects.append("attachment transfer encoding damaged")
            note = "transfer encoding damaged; kept as received"
        self.attachments.append(
            Attachment(
                filename=_filename(part, self.count, ctype),
                content_type=ctype,
                data=_undecoded(part) if damaged else data,
                content_id=content_id,
                inline=disposition == "inline" or (disposition is None and content_id is not None),
                note=note,
            )
        )

    def _forwarded(self, part: Message, depth: int) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, Message):
            self._keep_raw(part, "forwarded message could not be read")
            return
        try:
            data = inner.as_bytes(policy=inner.policy.clone(max_line_length=0))
        except Exception:
            data = _undecoded(part)
        summary = _parse_message(inner, len(data), depth + 1)
        self.forwarded.append(
            ForwardedMessage(
                subject=summary.subject,
                sender=summary.sender,
                date=summary.date,
                message_id=summary.message_id,
                text=summary.text[:2000],
            )
        )
        base = _UNSAFE_FILENAME.sub("_", summary.subject)[:120].strip(" .") or "forwarded-message"
        self.attachments.append(
            Attachment(
                filename=f"{base}.eml",
                content_type="message/rfc822",
                data=data,
                inline=False,
                note="forwarded message",
            )
        )

    def _keep_raw(
        self,
        part: Message,
        note: str,
        content_type: str = "application/octet-stream",
        with_headers: bool = True,
    ) -> None:
        try:
            if with_headers:
                data = part.as_bytes()
            else:
                children = part.get_payload()
                data = b"\r\n".join(c.as_bytes() for c in children if isinstance(c, Message))
        except Exception:
            data = _undecoded(part)
        self.attachments.append(
            Attachment(
                filename=f"part-{self.count}.txt",
                content_type=content_type,
                data=data,
                note=note,
            )
        )


def _join(segments: list[_Segment]) -> tuple[str | None, str]:
    """Segments in order → one HTML (if any part had HTML) and one plain text."""
    if not segments:
        return None, ""
    has_html = any(s.html is not None for s in segments)
    html = None
    if has_html:
        html = "\n".join(
            s.html if s.html is not None else text_to_html(s.text or "") for s in segments
        )
    texts = [s.text if s.text is not None else html_to_text(s.html or "") for s in segments]
    return html, "\n\n".join(t.strip("\r\n") for t in texts if t.strip())


# ---------------------------------------------------------------- entry points


def _parse_message(msg: Message, raw_size: int, depth: int = 0) -> ParsedMessage:
    walker = _Walker()
    walker.walk(msg, depth)
    html, text = _join(walker.segments)
    defects = [type(d).__name__ for d in msg.defects] + walker.defects
    headers: dict[str, str] = {}
    for name in CLASSIFY_HEADERS:
        value = _header(msg, name)
        if value is not None:
            headers[name] = value[:MAX_HEADER_VALUE]
    report_type = msg.get_param("report-type") if _ctype(msg) == "multipart/report" else None
    in_reply_to = _message_ids(_raw_header(msg, "in-reply-to"))
    return ParsedMessage(
        message_id=next(iter(_message_ids(_raw_header(msg, "message-id"))), None),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_message_ids(_raw_header(msg, "references")),
        from_=_addresses(msg, "from"),
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        reply_to=_addresses(msg, "reply-to"),
        return_path=_return_path(msg),
        subject=_subject(msg),
        date=_date(msg),
        html=html,
        text=text,
        attachments=walker.attachments,
        forwarded=walker.forwarded,
        headers=headers,
        content_type=_ctype(msg),
        report_type=str(report_type).lower() if isinstance(report_type, str) else None,
        raw_size=raw_size,
        defects=defects,
    )


@functools.lru_cache(maxsize=HEADER_CACHE)
def _parsed_header(name: str, value: str) -> Any:
    return email.policy.default.header_fetch_parse(name, value)


class _Policy(email.policy.EmailPolicy):
    """`policy.default`, each header parsed once: the parser and the walk read a part's
    Content-Type several times, and messages repeat one another's values. Header objects
    are immutable, so one parse serves every read."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name") or len(value) > MAX_CACHED_HEADER:
            return super().header_fetch_parse(name, value)
        return _parsed_header(name, value)


POLICY = _Policy()


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one message; malformed input gives a best-effort result, never an exception."""
    try:
        # Parsing from a stream decodes 8 KB at a time instead of copying the whole input.
        msg: Any = BytesParser(policy=POLICY).parse(io.BytesIO(raw))
        return _parse_message(msg, len(raw))
    except Exception as exc:  # the parser itself gave up: keep the whole message
        return ParsedMessage(
            message_id=None,
            in_reply_to=None,
            references=[],
            from_=[],
            to=[],
            cc=[],
            reply_to=[],
            return_path=None,
            subject="",
            date=None,
            html=None,
            text="",
            attachments=[
                Attachment("message.eml", "message/rfc822", raw, note="message could not be parsed")
            ],
            forwarded=[],
            headers={},
            content_type="application/octet-stream",
            report_type=None,
            raw_size=len(raw),
            defects=[f"unparseable: {type(exc).__name__}"],
        )


__all__ = ["Address", "Attachment", "ForwardedMessage", "ParsedMessage", "parse_message"]
