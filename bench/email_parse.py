"""Parse throughput on the corpus of hard messages, beside a ceiling measured in the same run.

Ceiling: the standard library alone (`message_from_bytes` + `get_body` + walking every
part's decoded payload), the least work any parser of these messages must do. Enque's
parser adds charset repair, attachments, summaries and text/HTML conversion on top.

Run: .venv/bin/python -m bench.email_parse [--seconds 3]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import time
from collections.abc import Callable

from enque.email.classify import classify
from enque.email.parse import parse_message
from enque.email.quotes import fold
from tests.email import corpus

MESSAGES = [
    corpus.shift_jis(), corpus.gb2312_with_gbk_chars(), corpus.iso_2022_jp(),
    corpus.latin1_labelled_windows1252(), corpus.windows1251_qp(), corpus.rfc2047_subject(),
    corpus.rfc2231_filename(), corpus.html_only(), corpus.bad_base64(), corpus.forwarded(),
    corpus.smime_signed(), corpus.calendar_invitation(), corpus.inline_image(),
    corpus.apple_mixed(), corpus.thread_reply(), corpus.bounce(),
]  # fmt: skip


def stdlib_only(raw: bytes) -> None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    msg.get_body(("html", "plain"))
    for part in msg.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def enque_ingest_view(raw: bytes) -> None:
    msg = parse_message(raw)
    classify(msg, ["support@acme.test"])
    fold(msg.text, msg.html)


def rate(fn: Callable[[bytes], object], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for raw in MESSAGES:
            fn(raw)
        done += len(MESSAGES)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    ceiling = rate(stdlib_only, args.seconds)
    parsed = rate(parse_message, args.seconds)
    full = rate(enque_ingest_view, args.seconds)
    big = corpus.large(30)
    start = time.perf_counter()
    parse_message(big)
    big_s = time.perf_counter() - start
    rows = [
        ("ceiling (stdlib parse + decode)", f"{ceiling:8.0f} messages/s"),
        ("parse_message", f"{parsed:8.0f} messages/s  ({parsed / ceiling:.2f}x)"),
        ("parse + classify + fold quotes", f"{full:8.0f} messages/s  ({full / ceiling:.2f}x)"),
        ("30 MB message", f"{big_s:8.2f} s"),
    ]
    for name, value in rows:
        print(f"{name + ':':<34}{value}")


if __name__ == "__main__":
    main()
