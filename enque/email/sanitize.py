"""HTML from email made safe to show (nh3 allow-list), and HTML ⇄ plain text."""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Mapping

import nh3

TAGS = {
    "a", "abbr", "address", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center",
    "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "font",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol",
    "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr",
}  # fmt: skip
_COMMON = {"style", "title", "dir", "lang", "align", "valign", "width", "height", "bgcolor"}
ATTRIBUTES = {
    "*": _COMMON,
    "a": {"href", "name"},
    "img": {"src", "alt", "border", "hspace", "vspace"},
    "font": {"color", "face", "size"},
    "table": {"border", "cellpadding", "cellspacing", "summary"},
    "td": {"colspan", "rowspan", "nowrap"},
    "th": {"colspan", "rowspan", "nowrap", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "li": {"value"},
    "blockquote": {"cite"},
    "q": {"cite"},
}
# CSS properties that cannot load anything (no url(), no behaviours).
STYLE_PROPERTIES = {
    "background-color", "border", "border-bottom", "border-bottom-color", "border-bottom-style",
    "border-bottom-width", "border-collapse", "border-color", "border-left", "border-left-color",
    "border-left-style", "border-left-width", "border-radius", "border-right",
    "border-right-color", "border-right-style", "border-right-width", "border-spacing",
    "border-style", "border-top", "border-top-color", "border-top-style", "border-top-width",
    "border-width", "color", "direction", "display", "float", "font", "font-family", "font-size",
    "font-style", "font-variant", "font-weight", "height", "letter-spacing", "line-height",
    "list-style-position", "list-style-type", "margin", "margin-bottom", "margin-left",
    "margin-right", "margin-top", "max-height", "max-width", "min-height", "min-width",
    "padding", "padding-bottom", "padding-left", "padding-right", "padding-top", "table-layout",
    "text-align", "text-decoration", "text-indent", "text-transform", "vertical-align",
    "white-space", "width", "word-break", "word-spacing", "word-wrap", "overflow-wrap",
}  # fmt: skip
URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}
_DATA_IMAGE = re.compile(r"^data:image/(png|gif|jpe?g|webp);base64,[A-Za-z0-9+/=\s]*$", re.I)
_CSS_DANGER = re.compile(r"url\s*\(|expression\s*\(|javascript:|@import|\\|behavior|binding", re.I)
_CID_SRC = re.compile(r"""(\bsrc\s*=\s*["']?)cid:([^"'\s>]+)""", re.I)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "style":
        return None if _CSS_DANGER.search(value) else value
    if value.strip().lower().startswith("data:"):
        return value if tag == "img" and attribute == "src" and _DATA_IMAGE.match(value) else None
    return value


def sanitize_html(html: str) -> str:
    """An allow-list sanitizer: no scripts, event handlers, javascript: URLs, forms, remote CSS.

    `cid:` image references are kept so that they can be rewritten to attachment URLs.
    """
    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags={"script", "style", "title", "textarea", "select", "template"},
        attributes=ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def cid_references(html: str) -> set[str]:
    """The content ids an HTML body refers to with `cid:` URLs."""
    return {m.group(2) for m in _CID_SRC.finditer(html)}


def rewrite_cids(html: str, urls: Mapping[str, str]) -> str:
    """Replace `src="cid:<id>"` by the URL of the stored attachment with that content id."""

    def repl(match: re.Match[str]) -> str:
        url = urls.get(match.group(2))
        return match.group(1) + htmllib.escape(url, quote=True) if url else match.group(0)

    return _CID_SRC.sub(repl, html)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body (blocks on their own lines, no scripts or styles)."""
    if not html.strip():
        return ""
    import html_text  # on first use: it and lxml slow every start
    import lxml.etree

    try:
        return str(html_text.extract_text(html, guess_layout=True)).strip()
    except (lxml.etree.LxmlError, ValueError):
        return htmllib.unescape(nh3.clean(html, tags=set())).strip()


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept."""
    escaped = htmllib.escape(text.strip("\r\n"))
    return "<div>" + escaped.replace("\r\n", "\n").replace("\n", "<br>\n") + "</div>"
