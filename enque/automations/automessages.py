"""The rules for automatic messages (email.md): never to automated senders, 3 per hour."""

from __future__ import annotations

from enque.automations.engine import TicketFacts
from enque.core.cache import Cache
from enque.email.classify import machine_address

PER_SENDER_PER_HOUR = 3


async def refusal(cache: Cache, facts: TicketFacts) -> str | None:
    """Why an automatic message to the ticket's customer must not be sent, or None.

    Counts the message against the sender's hourly allowance when it is allowed.
    """
    address = facts.customer_email
    if not address:
        return "the ticket has no customer address"
    if facts.sender_is_automated:
        return "the customer's message was automated (auto-submitted, bulk, list or bounce)"
    if machine_address(address):
        return "the customer address is an automated sender"
    key = f"automessages:{facts.workspace_id}:{address.lower()}"
    if await cache.incr(key, 3600) > PER_SENDER_PER_HOUR:
        return f"{PER_SENDER_PER_HOUR} automatic messages already sent to this address this hour"
    return None
