"""Pure helpers: display names, type sniffing, Content-Disposition, Range headers."""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

import puremagic

MAX_NAME = 255
SNIFF_BYTES = 8192
SAFE_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
REFUSED_TYPES = frozenset(
    {
        "application/x-executable",
        "application/x-elf",
        "application/x-mach-binary",
        "application/x-msdownload",
        "application/x-dosexec",
        "application/vnd.microsoft.portable-executable",
        "application/x-msi",
        "application/x-sh",
        "text/x-shellscript",
    }
)
_EXECUTABLE_MAGIC = (
    (b"\x7fELF", "application/x-elf"),
    (b"MZ", "application/vnd.microsoft.portable-executable"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"#!", "text/x-shellscript"),
)


def display_name(raw: str | None) -> str:
    """The client's file name made harmless: last path segment, no control or bidi-format
    characters, at most 255 characters (the extension kept). Never used in a path."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = name.strip().strip(".").strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME]
    return name or "file"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for cut in range(4):  # a multi-byte character may be split at the end of the head
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def sniff(head: bytes) -> str:
    """The content type from the first bytes (the client's claim is never trusted)."""
    for magic, mime in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return mime
    try:
        mime = puremagic.from_string(head, mime=True)
    except (puremagic.PureError, ValueError):
        mime = ""
    if mime:
        return str(mime).lower()
    return "text/plain" if head and _looks_like_text(head) else "application/octet-stream"


def is_inline(content_type: str) -> bool:
    return content_type in SAFE_INLINE_TYPES


def content_disposition(name: str, inline: bool = False) -> str:
    """`attachment` (or `inline` for safe images) with an ASCII fallback and RFC 5987 name."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    quoted = urllib.parse.quote(name, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


class RangeNotSatisfiable(ValueError):
    pass


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range `(start, end_exclusive)`, or None for the whole file (no header, a
    malformed one or several ranges). Raises RangeNotSatisfiable past the end."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(header)
        return max(size - suffix, 0), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(header)
    return start, end
