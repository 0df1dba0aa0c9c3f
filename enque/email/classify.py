"""What kind of message arrived: a person's mail, our own (loop), a bounce or an auto-reply."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from enque.email.parse import ParsedMessage

Kind = Literal["normal", "loop", "bounce", "auto_reply"]

_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
# local parts of addresses that are machines, not people (bounces, no-reply senders)
MACHINE_SENDERS = frozenset(
    {
        "mailer-daemon",
        "postmaster",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "bounce",
        "bounces",
    }
)
_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_LIST_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reasons: tuple[str, ...] = ()

    @property
    def is_normal(self) -> bool:
        return self.kind == "normal"

    @property
    def may_auto_reply(self) -> bool:
        """Automatic answers (acknowledgements, rules) only ever go to a person's mail."""
        return self.kind == "normal"


def _own_list_ids(addresses: set[str]) -> set[str]:
    """List-Ids a group address of ours would carry (`support.example.com` for support@…)."""
    return {a.replace("@", ".", 1) for a in addresses}


def _via_own_group(msg: ParsedMessage, own: set[str]) -> bool:
    """Mail relayed by a group that is one of our addresses (Google Groups, M365 groups)."""
    list_id = msg.headers.get("list-id")
    if not list_id:
        return False
    match = _LIST_ID.search(list_id)
    ident = (match.group(1) if match else list_id.strip()).lower()
    return ident in _own_list_ids(own)


def classify(msg: ParsedMessage, mailbox_addresses: Iterable[str]) -> Classification:
    """Loop, bounce or auto-reply, in that order of precedence; else a person's mail.

    `mailbox_addresses` are every mailbox address of the workspace (mail sent by any of them
    is a loop).
    """
    own = {a.strip().lower() for a in mailbox_addresses if a.strip()}
    senders = {a.email.lower() for a in msg.from_}
    if senders & own:
        return Classification("loop", ("sent by a mailbox of this workspace",))

    bounce: list[str] = []
    if msg.content_type == "multipart/report" and msg.report_type in (
        "delivery-status",
        "disposition-notification",
    ):
        bounce.append(f"multipart/report; report-type={msg.report_type}")
    if msg.return_path == "":
        bounce.append("empty Return-Path")
    if any(_BOUNCE_SENDERS.match(s) for s in senders):
        bounce.append("sent by MAILER-DAEMON")
    if "x-failed-recipients" in msg.headers:
        bounce.append("X-Failed-Recipients")
    if bounce:
        return Classification("bounce", tuple(bounce))

    auto: list[str] = []
    submitted = msg.headers.get("auto-submitted", "").strip().lower()
    if submitted and submitted.split(";")[0].strip() != "no":
        auto.append(f"Auto-Submitted: {submitted}")
    if "x-auto-response-suppress" in msg.headers:
        auto.append("X-Auto-Response-Suppress")
    precedence = msg.headers.get("precedence", "").strip().lower()
    own_group = _via_own_group(msg, own)
    if precedence in _PRECEDENCE and not (precedence == "list" and own_group):
        auto.append(f"Precedence: {precedence}")
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if name in msg.headers:
            auto.append(name)
    if not own_group:
        auto.extend(n for n in ("list-id", "list-unsubscribe", "list-post") if n in msg.headers)
    if "feedback-type" in msg.headers:
        auto.append("Feedback-Type")
    if auto:
        return Classification("auto_reply", tuple(auto))
    return Classification("normal")


def machine_address(address: str) -> bool:
    """Whether an address is a machine's (bounces, no-reply senders): never answered."""
    local = address.rpartition("@")[0].lower()
    return local in MACHINE_SENDERS or local.startswith(("bounce+", "bounces+", "bounce-"))
