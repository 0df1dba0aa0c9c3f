"""Automatic messages (rule replies, acknowledgements): the limits of email.md, where mail leaves.

A public reply written by an automation is an automatic message. It goes out with
`Auto-Submitted: auto-replied` and is not sent (the reply shows `failed` with the reason) when:
- the customer's address is a machine's (MAILER-DAEMON, no-reply, bounces…);
- the newest message received on the ticket was automated (an auto-reply, a list or bulk
  message — bounces and loops never reach a ticket);
- `PER_SENDER_PER_HOUR` automatic messages to the same customer were written in the hour
  before it. The count reads the replies themselves (not a cache), so it holds across workers
  and restarts, and it is decided by the order the replies were written in: of any run of
  automatic messages to one address, only three in an hour can ever go out.
The automation that writes one checks the same rules first (automations/automessages.py);
this is the guarantee for every automatic message, whatever wrote it.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.comments.models import Comment
from enque.customers.models import User
from enque.email.classify import machine_address
from enque.mailboxes.models import EmailMessage
from enque.tickets.models import Ticket

PER_SENDER_PER_HOUR = 3
WINDOW = 3600
AUTOMATIC_AUTHORS = ("automation",)


def is_automatic(comment: Comment) -> bool:
    return comment.kind == "reply" and comment.author_type in AUTOMATIC_AUTHORS


async def refusal(session: AsyncSession, comment: Comment, ticket: Ticket) -> str | None:
    """Why this automatic reply must not be sent, or None."""
    customer = await session.get_one(User, ticket.user_id)
    if machine_address(customer.email):
        return "automatic messages never go to an automated sender"
    newest = await session.scalar(
        select(EmailMessage.classification)
        .where(
            EmailMessage.workspace_id == ticket.workspace_id,
            EmailMessage.ticket_id == ticket.id,
            EmailMessage.direction == "in",
            EmailMessage.state == "processed",
        )
        .order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
        .limit(1)
    )
    if newest not in (None, "normal"):
        return "automatic messages never answer automated mail"
    earlier = await session.scalar(
        select(func.count())
        .select_from(Comment)
        .join(Ticket, Ticket.id == Comment.ticket_id)
        .where(
            Comment.workspace_id == ticket.workspace_id,
            Ticket.user_id == ticket.user_id,
            Comment.kind == "reply",
            Comment.author_type.in_(AUTOMATIC_AUTHORS),
            Comment.delivery.in_(("pending", "sent")),
            Comment.created_at > comment.created_at - WINDOW,
            or_(
                Comment.created_at < comment.created_at,
                (Comment.created_at == comment.created_at) & (Comment.id < comment.id),
            ),
        )
    )
    if (earlier or 0) >= PER_SENDER_PER_HOUR:
        return (
            f"{PER_SENDER_PER_HOUR} automatic messages already went to {customer.email} "
            "within an hour"
        )
    return None
