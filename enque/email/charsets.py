"""Decoding of text whose declared charset may be wrong, unknown or missing."""

from __future__ import annotations

import codecs

# Labels mail clients write, mapped to the codec that decodes what they really send:
# supersets (windows-1252 for Latin-1, GB18030 for GB2312, CP932 for Shift_JIS …), as the
# WHATWG Encoding Standard does for browsers.
_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "cp936": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "big5": "big5hkscs",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-unknown": "",
    "unknown-8bit": "",
    "unknown": "",
    "default": "",
}

DETECT_LIMIT = 64 * 1024


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_text(data: bytes, label: str | None) -> tuple[str, bool]:
    """Decode `data`; returns the text and whether characters had to be replaced.

    Order: UTF-8 and the declared charset (its superset), a detected charset, then the
    declared (or windows-1252) charset with replacement characters. Never raises.
    """
    codec = codec_for(label)
    # Valid UTF-8 is almost never an accident, and mislabelled UTF-8 is common; stateful
    # 7-bit encodings (ISO-2022-*, UTF-7) also pass as UTF-8, so they go first.
    stateful = codec is not None and codec.startswith(("iso2022", "utf_7", "hz"))
    candidates = [c for c in ((codec, "utf-8") if stateful else ("utf-8", codec)) if c]
    for name in dict.fromkeys(candidates):
        try:
            return data.decode(name), False
        except (UnicodeDecodeError, LookupError):
            continue
    from charset_normalizer import from_bytes  # on first use: it slows every start

    guess = from_bytes(data[:DETECT_LIMIT]).best()
    if guess is not None:
        try:
            return data.decode(guess.encoding), False
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode(codec or "cp1252", errors="replace"), True


def fix_surrogates(value: str, fallback: str | None = None) -> str:
    """Headers with raw 8-bit bytes arrive with surrogate escapes; decode them properly."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    text, _ = decode_text(raw, fallback)
    return text
