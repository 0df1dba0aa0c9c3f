"""Quoted history is folded (kept apart), and HTML from mail is sanitized."""

from __future__ import annotations

import pytest

from enque.email.quotes import fold, split_html, split_text
from enque.email.sanitize import (
    cid_references,
    html_to_text,
    rewrite_cids,
    sanitize_html,
    text_to_html,
)

GMAIL = (
    '<div dir="ltr">Thanks, that works!</div><br><div class="gmail_quote">'
    '<div dir="ltr" class="gmail_attr">On Mon, Jan 8, 2024 at 10:00 AM Support '
    "&lt;support@acme.test&gt; wrote:<br></div>"
    '<blockquote class="gmail_quote">Please try again.</blockquote></div>'
)
OUTLOOK = (
    "<html><body><div>Yes please.</div>"
    '<hr style="display:inline-block;width:98%" tabindex="-1">'
    '<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Support<br><b>Sent:</b> Monday<br>'
    "<b>To:</b> me<br><b>Subject:</b> Re: x</div><div>Please try again.</div></body></html>"
)
OUTLOOK_DESKTOP = (
    "<div class=WordSection1><p>Works now.</p>"
    '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
    "<p><b>From:</b> Support <br><b>Sent:</b> Monday</p></div><p>Please try again.</p></div>"
)
APPLE = (
    '<html><body>Sounds good<div><br><blockquote type="cite"><div>On 8 Jan 2024, at 10:00,'
    " Support &lt;s@acme.test&gt; wrote:</div><div>Please try again.</div></blockquote>"
    "</div></body></html>"
)
THUNDERBIRD = (
    '<p>New reply</p><div class="moz-cite-prefix">On 1/8/24 10:00, Support wrote:<br></div>'
    '<blockquote type="cite" cite="mid:x@y">Please try again.</blockquote>'
)
YAHOO = (
    '<div>Got it</div><div id="yahoo_quoted_123" class="yahoo_quoted">'
    "<div>On Monday, Support wrote:</div><div>Please try again.</div></div>"
)


@pytest.mark.parametrize(
    ("html", "new_part"),
    [
        (GMAIL, "Thanks, that works!"),
        (OUTLOOK, "Yes please."),
        (OUTLOOK_DESKTOP, "Works now."),
        (APPLE, "Sounds good"),
        (THUNDERBIRD, "New reply"),
        (YAHOO, "Got it"),
    ],
    ids=["gmail", "outlook-web", "outlook-desktop", "apple", "thunderbird", "yahoo"],
)
def test_html_quotes_are_folded(html: str, new_part: str) -> None:
    new, quoted = split_html(html)
    assert quoted is not None and "Please try again." in quoted
    assert new_part in new and "Please try again." not in new


def test_interleaved_answers_are_not_folded() -> None:
    html = (
        "<div>On Mon Support wrote:</div><blockquote>question 1</blockquote>"
        "<div>answer 1</div><blockquote>question 2</blockquote><div>answer 2</div>"
    )
    assert split_html(html) == (html, None)
    text = "> question 1\nanswer 1\n> question 2\nanswer 2"
    assert split_text(text) == (text, None)


def test_plain_blockquote_without_attribution_is_the_senders_own() -> None:
    html = "<p>Your docs say:</p><blockquote>Restart the router.</blockquote>"
    assert split_html(html) == (html, None)


@pytest.mark.parametrize(
    ("text", "new"),
    [
        ("Thanks!\n\nOn Mon, Jan 8, 2024 at 10:00 AM Support <s@a.test>\nwrote:\n> old", "Thanks!"),
        ("Danke\n\nAm 08.01.2024 um 10:00 schrieb Support <s@a.test>:\n> alt", "Danke"),
        ("Merci\n\nLe lun. 8 janv. 2024 à 10:00, Support <s@a.test> a écrit :\n> x", "Merci"),
        (
            "Gracias\n\nEl lun, 8 ene 2024 a las 10:00, Support (<s@a.test>) escribió:\n> x",
            "Gracias",
        ),
        ("Grazie\n\nIl giorno lun 8 gen 2024 alle ore 10:00 Support ha scritto:\n> x", "Grazie"),
        ("Obrigado\n\nEm seg., 8 de jan. de 2024 às 10:00, Support escreveu:\n> x", "Obrigado"),
        ("Dank\n\nOp ma 8 jan. 2024 om 10:00 schreef Support <s@a.test>:\n> x", "Dank"),
        ("Tack\n\nDen mån 8 jan. 2024 kl 10:00 skrev Support <s@a.test>:\n> x", "Tack"),
        ("谢谢\n\nSupport <s@a.test> 于2024年1月8日周一 10:00写道：\n> x", "谢谢"),
        ("Yes\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\nold", "Yes"),
        ("Yes\n\n________________________________\nFrom: Support\nSent: Monday\nold", "Yes"),
        ("Ja\n\nVon: Support <s@a>\nGesendet: Montag\nAn: ich\nBetreff: x\n\nalt", "Ja"),
        ("Ok\n\nFrom: Support <s@a>\nSent: Monday\nTo: me\nSubject: x\n\nold", "Ok"),
        ("Fine\n\n> old line 1\n> old line 2", "Fine"),
    ],
)
def test_text_quotes_are_folded(text: str, new: str) -> None:
    new_part, quoted = split_text(text)
    assert new_part == new
    assert quoted is not None and new_part + "\n\n" + quoted == text


def test_nothing_quoted() -> None:
    assert fold("Just a question", "<p>Just a question</p>").text_quoted is None
    assert fold("Just a question").html is None


def test_only_quoted_text_is_not_folded_away() -> None:
    text = "On Mon, Support wrote:\n> old"
    assert split_text(text) == (text, None)


def test_fold_returns_both_forms() -> None:
    folded = fold("Thanks\n\nOn Mon, X wrote:\n> old", GMAIL)
    assert folded.text == "Thanks" and folded.text_quoted is not None
    assert folded.html is not None and folded.html_quoted is not None


@pytest.mark.parametrize(
    "dirty",
    [
        '<p onclick="steal()">x</p>',
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<img src="x" onerror="alert(1)">',
        '<form action="https://evil.test"><input name="p"><button>go</button></form>',
        '<div style="background-image:url(https://tracker.test/p.gif)">x</div>',
        '<div style="width:expression(alert(1))">x</div>',
        "<style>@import url(https://evil.test/x.css)</style>",
        '<iframe src="https://evil.test"></iframe>',
        "<svg><script>alert(1)</script></svg>",
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        '<meta http-equiv="refresh" content="0;url=https://evil.test">',
        '<link rel="stylesheet" href="https://evil.test/x.css">',
        '<object data="x.swf"></object><embed src="x.swf">',
    ],
)
def test_sanitizer_removes_active_content(dirty: str) -> None:
    clean = sanitize_html(dirty).lower()
    for bad in (
        "onclick",
        "onerror",
        "<script",
        "javascript:",
        "<form",
        "<input",
        "url(",
        "expression(",
        "@import",
        "<iframe",
        "data:text",
        "<meta",
        "<link",
        "<object",
        "<embed",
        "<style",
    ):
        assert bad not in clean, clean


def test_sanitizer_keeps_mail_formatting_and_cid_images() -> None:
    html = (
        '<table border="1"><tr><td style="color: red; padding: 4px">cell</td></tr></table>'
        '<img src="cid:logo@x" alt="logo"><a href="https://acme.test/x">link</a>'
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
    )
    clean = sanitize_html(html)
    assert 'src="cid:logo@x"' in clean and "color:red" in clean.replace(" ", "")
    assert 'href="https://acme.test/x"' in clean and 'rel="noopener noreferrer nofollow"' in clean
    assert "data:image/png;base64" in clean
    assert cid_references(clean) == {"logo@x"}
    rewritten = rewrite_cids(clean, {"logo@x": "/v1/attachments/a1/content?x=1&y=2"})
    assert 'src="/v1/attachments/a1/content?x=1&amp;y=2"' in rewritten


def test_text_and_html_conversions() -> None:
    assert html_to_text("<p>Hello <b>world</b></p><div>next</div><script>x()</script>") == (
        "Hello world\n\nnext"
    )
    assert text_to_html("a < b\nline 2") == "<div>a &lt; b<br>\nline 2</div>"
