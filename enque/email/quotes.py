"""Quoted history in replies: found and folded (kept apart), never deleted.

HTML: the markers mail clients write (Gmail `gmail_quote`, Outlook `divRplyFwdMsg` and its
header block, Apple/Thunderbird `blockquote type=cite`, Yahoo `yahoo_quoted` …), then
attribution lines ("On … wrote:" in several languages, "-----Original Message-----",
"From: … Sent: …"). Plain text: the same lines and trailing `>` blocks. When quoted text is
interleaved with new text (inline answers), nothing is folded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
from lxml.etree import LxmlError, ParserError, _Element

_INTRO = [
    r"^on\b.{3,300}\bwrote:?$",  # English (Gmail, Apple, Thunderbird)
    r"^am\b.{3,300}\bschrieb\b.{0,200}:$",  # German
    r"^le\b.{3,300}\ba écrit\s?:$",  # French
    r"^el\b.{3,300}\bescribió:$",  # Spanish
    r"^em\b.{3,300}\bescreveu:$",  # Portuguese
    r"^il\b.{3,300}\bha scritto:$",  # Italian
    r"^op\b.{3,300}\b(schreef|geschreven)\b.{0,200}:$",  # Dutch
    r"^(den|d\.)\b.{3,300}\bskrev\b.{0,200}:$",  # Swedish, Danish, Norwegian
    r"^w dniu\b.{3,300}\bpisze:$",  # Polish
    r"^.{3,300}\b(napsal|napísal)\(a\):$",  # Czech, Slovak
    r"^.{3,300}\bkirjoitti:$",  # Finnish
    r"^.{3,300}\bнаписал(\(а\))?:$",  # Russian
    r"^.{3,300}\byazdı:$",  # Turkish
    r"^.{2,300}写道[:：]$",  # Chinese
    r"^.{2,300}(のメッセージ|さんは書きました)[:：]?$",  # Japanese
    r"^.{2,300}작성[:：]$",  # Korean
]
_SEPARATORS = [
    r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht|mensagem original|oprindelig meddelelse|"
    r"ursprungligt meddelande|opprinnelig melding|wiadomość oryginalna|исходное сообщение|"
    r"forwarded message|weitergeleitete nachricht|message transféré)\s*-{2,}$",
    r"^_{20,}$",  # Outlook's rule above the header block
    r"^(begin forwarded message|anfang der weitergeleiteten nachricht):$",
]
_HEADER_FROM = (
    r"^\*?(from|von|de|van|från|fra|da|od|от|lähettäjä|kimden|差出人|发件人|發件人|보낸 사람)"
    r"\s?\*?[:：]"
)
_HEADER_NEXT = (
    r"^\*?(sent|date|gesendet|datum|envoyé|enviado|inviato|verzonden|skickat|sendt|wysłano|"
    r"отправлено|lähetetty|tarih|送信日時|发送时间|發送時間|보낸 날짜|to|an|à|para|a|aan|till|til|"
    r"do|кому|subject|betreff|objet|asunto|oggetto|onderwerp|ämne|emne|temat|тема|件名|主题)"
    r"\s?\*?[:：]"
)
INTRO_RE = re.compile("|".join(f"(?:{p})" for p in _INTRO), re.I)
SEPARATOR_RE = re.compile("|".join(f"(?:{p})" for p in _SEPARATORS), re.I)
HEADER_FROM_RE = re.compile(_HEADER_FROM, re.I)
HEADER_NEXT_RE = re.compile(_HEADER_NEXT, re.I)
_OUTLOOK_BORDER = re.compile(r"border-top:\s*solid\s+#(?:E1E1E1|B5C4DF)\s+1\.0pt", re.I)
# Containers that hold the whole quote: folded alone, only when nothing new follows them.
_CONTAINER_XPATH = (
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')"
    " or contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote_container ')"
    " or contains(concat(' ', normalize-space(@class), ' '), ' yahoo_quoted ')"
    " or starts-with(@id, 'yahoo_quoted')"
    " or contains(concat(' ', normalize-space(@class), ' '), ' zmail_extra ')"
    " or local-name() = 'blockquote']"
)
# Markers after which everything is history (Outlook writes the old message as siblings).
_CUT_XPATH = (
    "//*[@id = 'divRplyFwdMsg' or @id = 'appendonsend'"
    " or @id = 'mail-editor-reference-message-container'"
    " or contains(concat(' ', normalize-space(@class), ' '), ' OutlookMessageHeader ')"
    " or (local-name() = 'hr' and @id = 'zwchr')"
    " or contains(concat(' ', normalize-space(@class), ' '), ' moz-cite-prefix ')]"
)
_BLOCKS = {"div", "p", "span", "font", "b", "strong", "td", "li", "pre", "blockquote"}


@dataclass
class Folded:
    """A reply split into what is new and the history it quotes (None when nothing quoted)."""

    text: str
    text_quoted: str | None = None
    html: str | None = None
    html_quoted: str | None = None


def fold(text: str, html: str | None = None) -> Folded:
    """Fold the quoted history of a reply's plain text and (if any) HTML body."""
    new_text, quoted_text = split_text(text)
    result = Folded(text=new_text, text_quoted=quoted_text)
    if html:
        result.html, result.html_quoted = split_html(html)
    return result


# ---------------------------------------------------------------- plain text


def _is_header_block(lines: list[str], index: int) -> bool:
    if not HEADER_FROM_RE.match(lines[index].strip()):
        return False
    following = [line.strip() for line in lines[index + 1 : index + 6] if line.strip()]
    return sum(1 for line in following[:4] if HEADER_NEXT_RE.match(line)) >= 2


def _intro_at(lines: list[str], index: int) -> int:
    """How many lines an attribution starting at `index` spans (0 when none; wraps up to 3)."""
    for span in (1, 2, 3):
        part = [line.strip() for line in lines[index : index + span]]
        if len(part) < span or not part[-1]:
            break  # an attribution wraps over adjacent lines only
        joined = " ".join(part)
        if len(joined) > 400:
            break
        if INTRO_RE.match(joined) or SEPARATOR_RE.match(joined):
            return span
    return 0


def _substantive(lines: list[str]) -> bool:
    return any(line.strip() and not line.lstrip().startswith(">") for line in lines)


def split_text(text: str) -> tuple[str, str | None]:
    """(new text, quoted history or None)."""
    lines = text.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        span = _intro_at(lines, index) if not stripped.startswith(">") else 0
        if span:
            rest = lines[index + span :]
            quoted_block = [ln for ln in rest if ln.strip()]
            # "On … wrote:" followed by `>` lines and then new text again: inline answers.
            if quoted_block and quoted_block[0].lstrip().startswith(">"):
                after = _after_quote_block(rest)
                if _substantive(after):
                    return text, None
            return _cut(lines, index)
        if _is_header_block(lines, index):
            return _cut(lines, index)
        if stripped.startswith(">") and not _substantive(lines[index:]):
            start = index
            if start > 0 and _intro_at(lines, start - 1):
                start -= 1
            return _cut(lines, start)
    return text, None


def _after_quote_block(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith(">"):
            return lines[i:]
    return []


def _cut(lines: list[str], index: int) -> tuple[str, str | None]:
    new = "\n".join(lines[:index]).rstrip()
    quoted = "\n".join(lines[index:]).strip("\n")
    if not new.strip():  # only quoted text (a forward without comment): nothing to fold
        return "\n".join(lines), None
    return new, quoted


# ---------------------------------------------------------------- HTML


def _text_of(el: _Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _short_text(el: _Element, limit: int = 400) -> str | None:
    """The element's text when at most `limit` characters, else None (stops reading early)."""
    parts: list[str] = []
    size = 0
    for piece in el.itertext():
        size += len(piece)
        if size > limit * 4:  # whitespace collapses below; stop well before reading it all
            return None
        parts.append(piece)
    text = " ".join("".join(parts).split())
    return text if len(text) <= limit else None


def _document_order(root: _Element) -> dict[_Element, int]:
    return {el: i for i, el in enumerate(root.iter())}


def _has_text_after(root: _Element, el: _Element) -> bool:
    """Is there visible text after `el` (outside it) in document order?"""
    node = el
    while node is not None and node is not root:
        if (node.tail or "").strip():
            return True
        for sibling in node.itersiblings():
            if _text_of(sibling) or sibling.tag == "img":
                return True
        node = node.getparent()
    return False


def _attribution_before(el: _Element) -> _Element | None:
    """The "On … wrote:" element right before a quote container, if any."""
    previous = el.getprevious()
    while (
        previous is not None and previous.tag in ("br", "div", "p") and _short_text(previous) == ""
    ):
        previous = previous.getprevious()
    text = _short_text(previous) if previous is not None else None
    return previous if text and _intro_matches(text) else None


def _intro_matches(text: str) -> bool:
    return (
        bool(text) and len(text) <= 400 and bool(INTRO_RE.match(text) or SEPARATOR_RE.match(text))
    )


def _cut_candidates(root: _Element) -> list[_Element]:
    found: list[_Element] = list(root.xpath(_CUT_XPATH))
    for el in root.iter("div", "p"):
        style = el.get("style") or ""
        if _OUTLOOK_BORDER.search(style):
            found.append(el)
    for el in root.iter(*_BLOCKS):
        text = _short_text(el)
        # Every attribution, separator and header block has a colon, dashes or underscores.
        if not text or not (":" in text or "：" in text or text[0] in "-_"):
            continue
        own = " ".join((el.text or "").split())
        if (_intro_matches(text) and (own or len(el) <= 3)) or (
            HEADER_FROM_RE.match(text) and HEADER_NEXT_RE.search(text[5:]) and len(el) <= 12
        ):
            found.append(el)
            break  # document order: later ones cannot come first
    return found


def _inner_html(el: _Element) -> str:
    parts = [el.text or ""]
    parts.extend(lxml.html.tostring(child, encoding="unicode", method="html") for child in el)
    return "".join(parts)


def _split_at(root: _Element, cut: _Element) -> tuple[str, str]:
    """Everything from `cut` to the end of the document is history."""
    history = lxml.html.Element("div")
    node = cut
    moved: list[_Element] = []
    while node is not None and node is not root:
        parent = node.getparent()
        siblings = [node, *node.itersiblings()] if node is cut else list(node.itersiblings())
        moved.extend(siblings)
        node = parent
    # Detach in document order: the cut element first, then later siblings outward.
    for el in moved:
        parent = el.getparent()
        if parent is None:
            continue
        tail = el.tail
        el.tail = None
        parent.remove(el)
        history.append(el)
        if tail and tail.strip():
            el.tail = tail
    return _inner_html(root), _inner_html(history)


def split_html(html: str) -> tuple[str, str | None]:
    """(new HTML, quoted history HTML or None)."""
    try:
        root = lxml.html.document_fromstring(html)
    except (ParserError, LxmlError, ValueError):
        return html, None
    body = root.find("body")
    scope = body if body is not None else root
    order = _document_order(root)
    candidates: list[tuple[int, str, _Element]] = []
    for el in scope.xpath(_CONTAINER_XPATH.replace("//", ".//", 1)):
        if el.tag == "blockquote" and any(a.tag == "blockquote" for a in el.iterancestors()):
            continue
        attribution = _attribution_before(el)
        if el.tag == "blockquote" and el.get("type") != "cite" and attribution is None:
            continue  # a plain blockquote without "On … wrote:" may be the sender's own text
        if not _has_text_after(scope, el):
            start = attribution if attribution is not None else el
            candidates.append((order[start], "container", el))
    for el in _cut_candidates(scope):
        candidates.append((order[el], "cut", el))
    if not candidates:
        return html, None
    _, kind, el = min(candidates, key=lambda c: c[0])
    if kind == "container":
        attribution = _attribution_before(el)
        cut = attribution if attribution is not None else el
    else:
        cut = el
        previous = cut.getprevious()
        if previous is not None and previous.tag == "hr" and not (previous.tail or "").strip():
            cut = previous  # Outlook's rule above its header block
    new_html, history = _split_at(scope, cut)
    if not new_html.strip() or (
        not _text_of(lxml.html.fragment_fromstring(new_html, create_parent="div"))
        and "<img" not in new_html
    ):
        return html, None
    return new_html, history
