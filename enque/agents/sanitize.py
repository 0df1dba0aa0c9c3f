"""Agent signatures are HTML: only an allow-list of tags, attributes and link schemes stays."""

from __future__ import annotations

import nh3

SIGNATURE_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "br",
        "div",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
SIGNATURE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})


def sanitize_signature(html: str) -> str:
    """Scripts, event handlers, styles and `javascript:` links are removed."""
    return nh3.clean(
        html,
        tags=set(SIGNATURE_TAGS),
        attributes={k: set(v) for k, v in SIGNATURE_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    ).strip()
