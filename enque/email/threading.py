"""Threading keys that need no database: subject tokens, Message-IDs, the References chain."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

import uuid_utils

DEFAULT_TOKEN = "[#{number}]"
MAX_REFERENCES = 20
# Reply and forward prefixes in the languages mail clients write them.
_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|vl|antw|antwort|réf|ref|tr|rif|r|i|enc|res|odp|pd|"
    r"ynt|ilt|atb|yan|回复|回覆|转发|轉寄|答复|返信|転送|답장|전달)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.I,
)
LEGACY_TOKEN = re.compile(r"\[\s*ID\s*:\s*(\d{1,12})\s*\]", re.I)


def token_pattern(template: str = DEFAULT_TOKEN) -> re.Pattern[str]:
    """The regex of a token template such as `[#{number}]` or `(Ticket {number})`."""
    if template.count("{number}") != 1:
        raise ValueError("the ticket token template needs exactly one {number}")
    before, after = template.split("{number}")
    return re.compile(re.escape(before) + r"\s*(\d{1,12})\s*" + re.escape(after), re.I)


def format_token(number: int, template: str = DEFAULT_TOKEN) -> str:
    return template.replace("{number}", str(number))


def ticket_number(subject: str, template: str = DEFAULT_TOKEN) -> int | None:
    """The ticket number a subject carries (the configured form, else the legacy `[ID:n]`).

    The last token wins: it is the one our own reply appended most recently.
    """
    for pattern in (token_pattern(template), LEGACY_TOKEN):
        found = pattern.findall(subject or "")
        if found:
            return int(found[-1])
    return None


def strip_tokens(subject: str, template: str = DEFAULT_TOKEN) -> str:
    stripped = LEGACY_TOKEN.sub("", token_pattern(template).sub("", subject or ""))
    return " ".join(stripped.split())


def base_subject(subject: str, template: str = DEFAULT_TOKEN) -> str:
    """The subject without reply/forward prefixes and ticket tokens."""
    current = strip_tokens(subject, template)
    while True:
        shorter = _PREFIX.sub("", current, count=1).strip()
        if shorter == current:
            return current
        current = strip_tokens(shorter, template)


def reply_subject(subject: str, number: int | None, template: str = DEFAULT_TOKEN) -> str:
    """`Re: <subject> [#1042]`: one prefix and one token, however long the thread."""
    base = base_subject(subject, template) or "(no subject)"
    token = f" {format_token(number, template)}" if number is not None else ""
    return f"Re: {base}{token}"


def domain_of(address: str) -> str:
    domain = address.rpartition("@")[2].strip().strip(">").lower()
    return domain or "localhost"


def make_message_id(address: str) -> str:
    """A new globally unique Message-ID (without angle brackets) in the mailbox's domain."""
    return f"{uuid_utils.uuid7().hex}.{secrets.token_hex(4)}@{domain_of(address)}"


def references_chain(
    parent_references: Iterable[str], parent_message_id: str | None, limit: int = MAX_REFERENCES
) -> list[str]:
    """RFC 5322 §3.6.4: the parent's References then its Message-ID; when too long, the first
    (thread root) and the most recent ids are kept."""
    chain = [r.strip().strip("<>") for r in parent_references if r and r.strip()]
    if parent_message_id:
        chain.append(parent_message_id.strip().strip("<>"))
    chain = list(dict.fromkeys(c for c in chain if c))
    if len(chain) > limit:
        chain = [chain[0], *chain[-(limit - 1) :]]
    return chain


def angle(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"
