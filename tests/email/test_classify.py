"""Loops, bounces and auto-replies are told apart from a person's mail."""

from __future__ import annotations

import pytest

from enque.email.classify import classify
from enque.email.parse import parse_message
from tests.email import corpus

MAILBOXES = ["support@acme.test", "Sales@Acme.test"]


def kind_of(raw: bytes) -> str:
    return classify(parse_message(raw), MAILBOXES).kind


def test_person_mail_is_normal() -> None:
    result = classify(parse_message(corpus.thread_reply()), MAILBOXES)
    assert result.kind == "normal" and result.may_auto_reply


def test_mail_from_any_workspace_mailbox_is_a_loop() -> None:
    raw = corpus.with_headers(From="Sales <sales@acme.test>")
    assert kind_of(raw) == "loop"
    assert classify(parse_message(raw), ["support@acme.test"]).kind == "normal"


def test_delivery_status_report_is_a_bounce() -> None:
    result = classify(parse_message(corpus.bounce()), MAILBOXES)
    assert result.kind == "bounce" and not result.may_auto_reply
    assert "empty Return-Path" in result.reasons


@pytest.mark.parametrize(
    "headers",
    [
        {"Return_Path": "<>"},
        {"From": "MAILER-DAEMON@mx.example.test"},
        {"X_Failed_Recipients": "gone@customer.test"},
    ],
)
def test_other_bounce_signs(headers: dict[str, str]) -> None:
    assert kind_of(corpus.with_headers(**headers)) == "bounce"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"Auto_Submitted": "auto-generated; owner-email=x@y.test"},
        {"X_Auto_Response_Suppress": "All"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"Precedence": "list"},
        {"Precedence": "auto_reply"},
        {"X_Autoreply": "yes"},
        {"X_Autorespond": "Out of office"},
        {"List_Id": "Announcements <announce.lists.vendor.test>"},
        {"List_Unsubscribe": "<mailto:unsubscribe@vendor.test>"},
    ],
)
def test_auto_replies(headers: dict[str, str]) -> None:
    assert kind_of(corpus.with_headers(**headers)) == "auto_reply"


def test_auto_submitted_no_is_a_person() -> None:
    assert kind_of(corpus.with_headers(Auto_Submitted="no", Precedence="first-class")) == "normal"


def test_mail_relayed_by_our_own_group_is_a_person() -> None:
    raw = corpus.with_headers(
        List_Id="<support.acme.test>",
        Precedence="list",
        List_Unsubscribe="<mailto:support+unsubscribe@acme.test>",
    )
    assert kind_of(raw) == "normal"


def test_precedence_of_kinds() -> None:
    raw = corpus.with_headers(From="support@acme.test", Auto_Submitted="auto-replied")
    assert kind_of(raw) == "loop"
    raw = corpus.with_headers(Return_Path="<>", Auto_Submitted="auto-replied")
    assert kind_of(raw) == "bounce"
