import pytest

from enque.core.html import html_to_text, sanitize_html


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("<p onclick='steal()'>hi</p>", "<p>hi</p>"),
        ("<script>alert(1)</script>ok", "ok"),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer nofollow">x</a>'),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', '<a rel="noopener noreferrer nofollow">x</a>'),
        ('<form action="/steal"><input name="p"><button>go</button></form>', "go"),
        ('<iframe src="https://evil.test"></iframe>', ""),
        ('<p style="color: red; width: expression(alert(1))">a</p>', "<p>a</p>"),
        ('<p style="background: url(https://tracker.test/x.png)">a</p>', "<p>a</p>"),
        ('<p style="color: red; position: fixed">a</p>', '<p style="color:red">a</p>'),
        ('<img src="cid:logo@mail" alt="logo">', '<img src="cid:logo@mail" alt="logo">'),
        ("<svg><script>alert(1)</script></svg>", ""),
        ("<style>body{display:none}</style>text", "text"),
        ("2 < 3 & 5 > 4\nbye", "2 &lt; 3 &amp; 5 &gt; 4<br>bye"),
    ],
)
def test_sanitizer_allow_list(dirty: str, clean: str):
    assert sanitize_html(dirty) == clean


def test_plain_text_twin():
    html = "<h1>Title</h1><p>First &amp; <b>bold</b></p><ul><li>one</li><li>two</li></ul>x<br>y"
    assert html_to_text(html) == "Title\n\nFirst & bold\n\n- one\n- two\nx\ny"
