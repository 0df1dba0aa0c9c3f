"""A legacy comment's HTML made ready: its sender marker, inline images, sanitized HTML and
plain text (pure work, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from enque.core.html import sanitize_html
from enque.migrate.report import RowContext
from enque.migrate.transform import (
    InlineImage,
    OriginalSender,
    extract_inline_images,
    html_text,
    split_original_sender,
)


def clean(content: str) -> tuple[str, str]:
    """(sanitized HTML, plain text) of legacy HTML."""
    if not content:
        return "", ""
    safe = sanitize_html(content)
    return safe, html_text(safe) if safe else ""


@dataclass
class Message:
    """A legacy comment's content, ready: sanitized HTML, text, images, its sender marker."""

    original: str
    content: str
    text: str
    images: list[InlineImage]
    sender: OriginalSender | None


def render(html: str, ctx: RowContext) -> Message:
    sender, html = split_original_sender(html, ctx)
    html, images = extract_inline_images(html, ctx)
    return Message(html, *clean(html), images, sender)
