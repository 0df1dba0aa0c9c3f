"""Hard messages, written byte by byte the way real mail clients (and broken ones) send them."""

from __future__ import annotations

import base64

CRLF = b"\r\n"


def message(headers: dict[str, str] | list[tuple[str, str]], body: bytes | str) -> bytes:
    """Assemble raw bytes: header lines as given (already encoded), a blank line, the body."""
    items = headers.items() if isinstance(headers, dict) else headers
    head = CRLF.join(f"{k}: {v}".encode("latin-1") for k, v in items)
    raw_body = body.encode("latin-1") if isinstance(body, str) else body
    return head + CRLF + CRLF + raw_body.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def base_headers(**extra: str) -> dict[str, str]:
    headers = {
        "From": "Alice Customer <alice@customer.test>",
        "To": "support@acme.test",
        "Subject": "Help",
        "Date": "Mon, 08 Jan 2024 10:00:00 +0100",
        "Message-ID": "<m1@customer.test>",
        "MIME-Version": "1.0",
    }
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def text_in(charset: str, text: str, cte: str = "8bit", codec: str | None = None) -> bytes:
    payload = text.encode(codec or charset)
    if cte == "base64":
        payload = base64.encodebytes(payload)
    headers = base_headers(
        Content_Type=f"text/plain; charset={charset}", Content_Transfer_Encoding=cte
    )
    return message(headers, payload)


JAPANESE = "お問い合わせありがとうございます。①番の件です。"
CHINESE = "您好，我的订单还没有到。镕"  # 镕 is GBK, not GB2312
RUSSIAN = "Здравствуйте, заказ не пришёл"
WIN1252 = "“Smart quotes” cost 5 € – thanks"


def shift_jis() -> bytes:
    return text_in("shift_jis", JAPANESE, codec="cp932")


def gb2312_with_gbk_chars() -> bytes:
    return text_in("gb2312", CHINESE, cte="base64", codec="gbk")


def iso_2022_jp() -> bytes:
    subject = "=?ISO-2022-JP?B?" + base64.b64encode("ご注文".encode("iso2022_jp")).decode() + "?="
    headers = base_headers(
        Subject=subject,
        Content_Type="text/plain; charset=ISO-2022-JP",
        Content_Transfer_Encoding="7bit",
    )
    return message(headers, "お問い合わせ".encode("iso2022_jp"))


def latin1_labelled_windows1252() -> bytes:
    return text_in("iso-8859-1", WIN1252, codec="cp1252")


def koi8r() -> bytes:
    return text_in("koi8-r", RUSSIAN)


def windows1251_qp() -> bytes:
    import quopri

    body = quopri.encodestring(RUSSIAN.encode("cp1251"))
    headers = base_headers(
        Content_Type='text/plain; charset="windows-1251"',
        Content_Transfer_Encoding="quoted-printable",
    )
    return message(headers, body)


def unknown_charset() -> bytes:
    return text_in("x-no-such-charset", "Grüße aus Köln", codec="utf-8")


def utf8_labelled_latin1() -> bytes:
    return text_in("utf-8", "Grüße aus Köln", codec="latin-1")


def raw_utf8_headers() -> bytes:
    head = (
        "From: Zoë Ünal <zoe@customer.test>\r\nTo: support@acme.test\r\n"
        "Subject: Bestellung für Müller\r\nMessage-ID: <raw8@customer.test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
    ).encode()
    return head + CRLF + "Hallo Müller".encode() + CRLF


def rfc2047_subject() -> bytes:
    subject = "=?UTF-8?B?w4lsw6h2ZQ==?= =?ISO-8859-1?Q?_caf=E9?=\r\n =?utf-8?q?_=E2=9C=93_done?="
    return message(base_headers(Subject=subject, Content_Type="text/plain"), "body")


def rfc2231_filename() -> bytes:
    name = "Rechnung_März_2024_überfällig_und_sehr_lang.pdf"
    encoded = "".join(f"%{b:02X}" if b > 127 or chr(b) in " %" else chr(b) for b in name.encode())
    half = len(encoded) // 2
    body = (
        "--b1\n"
        "Content-Type: text/plain; charset=utf-8\n\nSee attached\n"
        "--b1\n"
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment;\n"
        f" filename*0*=utf-8''{encoded[:half]};\n"
        f" filename*1*={encoded[half:]}\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(b'%PDF-1.4 fake').decode()}\n"
        "--b1--\n"
    )
    return message(base_headers(Content_Type='multipart/mixed; boundary="b1"'), body.encode())


def attachment_only() -> bytes:
    body = (
        "--b2\n"
        "Content-Type: application/pdf; name=scan.pdf\n"
        "Content-Disposition: attachment; filename=scan.pdf\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(b'%PDF-1.7 scan').decode()}\n"
        "--b2--\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=b2"), body)


def html_only() -> bytes:
    html = "<html><body><p>Hello <b>team</b></p><div>Second line</div></body></html>"
    return message(base_headers(Content_Type="text/html; charset=utf-8"), html)


def missing_boundary() -> bytes:
    return message(base_headers(Content_Type="multipart/mixed"), "Some text\nmore text\n")


def bad_base64() -> bytes:
    body = (
        "--b3\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        "SGVsbG8gd29ybGQ*!!broken===\n"
        "--b3\n"
        "Content-Type: image/png; name=x.png\n"
        "Content-Disposition: attachment; filename=x.png\n"
        "Content-Transfer-Encoding: base64\n\n"
        "iVBORw0KGgo$$$AAAANSUhEUg\n"
        "--b3--\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=b3"), body)


def truncated() -> bytes:
    body = (
        "--b4\n"
        "Content-Type: text/plain; charset=utf-8\n\nThe start of my message\n"
        "--b4\n"
        "Content-Type: application/pdf; name=big.pdf\n"
        "Content-Disposition: attachment; filename=big.pdf\n"
        "Content-Transfer-Encoding: base64\n\n"
        "JVBERi0xLjQKJcfs\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=b4"), body)


def forwarded() -> bytes:
    inner = message(
        {
            "From": "Bob Original <bob@vendor.test>",
            "To": "alice@customer.test",
            "Subject": "Your invoice",
            "Date": "Sun, 07 Jan 2024 09:00:00 +0000",
            "Message-ID": "<inner@vendor.test>",
            "Content-Type": "text/plain; charset=utf-8",
        },
        "Please pay invoice 77.",
    ).decode()
    body = (
        "--b5\n"
        "Content-Type: text/plain; charset=utf-8\n\nSee the forwarded mail below\n"
        "--b5\n"
        "Content-Type: message/rfc822\n"
        "Content-Disposition: attachment\n\n"
        f"{inner}\n"
        "--b5--\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=b5"), body)


SIGNATURE = base64.b64encode(b"0\x82signature-bytes").decode()


def smime_signed() -> bytes:
    body = (
        "--s1\n"
        "Content-Type: text/plain; charset=utf-8\n\nSigned hello\n"
        "--s1\n"
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="smime.p7s"\n\n'
        f"{SIGNATURE}\n"
        "--s1--\n"
    )
    ctype = 'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=s1'
    return message(base_headers(Content_Type=ctype), body)


def smime_encrypted() -> bytes:
    headers = base_headers(
        Content_Type='application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
        Content_Transfer_Encoding="base64",
        Content_Disposition='attachment; filename="smime.p7m"',
    )
    return message(headers, base64.encodebytes(b"0\x80encrypted-bytes"))


ICS = "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nSUMMARY:Call\nEND:VEVENT\nEND:VCALENDAR\n"


def calendar_invitation() -> bytes:
    body = (
        "--c1\n"
        "Content-Type: multipart/alternative; boundary=c2\n\n"
        "--c2\n"
        "Content-Type: text/plain; charset=utf-8\n\nYou are invited\n"
        "--c2\n"
        "Content-Type: text/html; charset=utf-8\n\n<p>You are <b>invited</b></p>\n"
        "--c2\n"
        "Content-Type: text/calendar; charset=utf-8; method=REQUEST\n\n"
        f"{ICS}"
        "--c2--\n"
        "--c1\n"
        'Content-Type: application/ics; name="invite.ics"\n'
        'Content-Disposition: attachment; filename="invite.ics"\n\n'
        f"{ICS}"
        "--c1--\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=c1"), body)


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def inline_image() -> bytes:
    body = (
        "--r0\n"
        "Content-Type: multipart/alternative; boundary=r1\n\n"
        "--r1\n"
        "Content-Type: text/plain; charset=utf-8\n\nLogo below\n"
        "--r1\n"
        "Content-Type: multipart/related; boundary=r2\n\n"
        "--r2\n"
        'Content-Type: text/html; charset=utf-8\n\n<p>Logo below</p><img src="cid:logo@x">\n'
        "--r2\n"
        "Content-Type: image/png\n"
        "Content-ID: <logo@x>\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(PNG).decode()}\n"
        "--r2--\n"
        "--r1--\n"
        "--r0\n"
        "Content-Type: text/csv; name=data.csv\n"
        "Content-Disposition: attachment; filename=data.csv\n\na,b\n1,2\n"
        "--r0--\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=r0"), body)


def apple_mixed() -> bytes:
    body = (
        "--a1\n"
        "Content-Type: text/html; charset=utf-8\n\n<div>Before the photo</div>\n"
        "--a1\n"
        "Content-Type: image/png; name=photo.png\n"
        "Content-Disposition: inline; filename=photo.png\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(PNG).decode()}\n"
        "--a1\n"
        "Content-Type: text/plain; charset=utf-8\n\nAfter the photo\n"
        "--a1--\n"
    )
    return message(base_headers(Content_Type="multipart/mixed; boundary=a1"), body)


def deep_nesting(depth: int = 60) -> bytes:
    parts = ["Content-Type: text/plain\n\ndeep down\n"]
    for level in range(depth):
        inner = parts[-1]
        parts.append(
            f"Content-Type: multipart/mixed; boundary=d{level}\n\n--d{level}\n{inner}--d{level}--\n"
        )
    headers = base_headers()
    head = "\n".join(f"{k}: {v}" for k, v in headers.items() if k != "MIME-Version")
    return (head + "\nMIME-Version: 1.0\n" + parts[-1]).replace("\n", "\r\n").encode()


def no_ids_bad_date() -> bytes:
    headers = base_headers(Date="not a date at all", Content_Type="text/plain")
    del headers["Message-ID"]
    return message(headers, "no ids")


def thread_reply() -> bytes:
    headers = base_headers(
        Subject="Re: Help [#1042]",
        In_Reply_To="<enque-1@acme.test>",
        References="<root@customer.test>\r\n <enque-1@acme.test>",
        Message_ID="<reply2@customer.test>",
        Cc='"Carol, Finance" <carol@customer.test>, dave@customer.test',
        Reply_To="alice.private@customer.test",
        Return_Path="<alice@customer.test>",
        Content_Type="text/plain; charset=utf-8",
    )
    return message(headers, "Thanks\n\nOn Mon, Jan 8, 2024 Support wrote:\n> old text\n")


def bounce() -> bytes:
    headers = {
        "From": "Mail Delivery Subsystem <MAILER-DAEMON@mx.customer.test>",
        "To": "support@acme.test",
        "Subject": "Undelivered Mail Returned to Sender",
        "Return-Path": "<>",
        "Message-ID": "<bounce1@mx.customer.test>",
        "MIME-Version": "1.0",
        "Content-Type": 'multipart/report; report-type=delivery-status; boundary="rb"',
    }
    body = (
        "--rb\n"
        "Content-Type: text/plain\n\nThe mail could not be delivered.\n"
        "--rb\n"
        "Content-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.customer.test\n\n"
        "Final-Recipient: rfc822; gone@customer.test\nAction: failed\nStatus: 5.1.1\n"
        "--rb\n"
        "Content-Type: text/rfc822-headers\n\n"
        "Message-ID: <enque-1@acme.test>\nSubject: Re: Help [#1042]\n"
        "--rb--\n"
    )
    return message(headers, body)


def with_headers(**extra: str) -> bytes:
    return message(base_headers(Content_Type="text/plain", **extra), "automatic text")


def large(size_mb: int = 30) -> bytes:
    """A message with one attachment of `size_mb` MB on the wire (base64 lines of 76)."""
    raw_size = size_mb * 1024 * 1024 * 3 // 4
    chunk = bytes(range(256)) * 4096
    data = (chunk * (raw_size // len(chunk) + 1))[:raw_size]
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    head = (
        b"--L\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBig file attached\r\n"
        b"--L\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Disposition: attachment; filename=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    headers = message(base_headers(Content_Type="multipart/mixed; boundary=L"), b"")
    return headers + head + encoded + b"--L--\r\n"
