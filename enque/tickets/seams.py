"""Where other domains plug into tickets and comments, through `runtime.services`.

- `runtime.services["mailboxes"]`: a `MailboxDirectory` (the email domain) — without it no
  ticket can name a mailbox (`mailboxId` answers 422).
- `runtime.services["attachments"]`: `TicketAttachments` (the attachments domain) — links
  uploaded files to a new comment, lists them with the thread (and those of the first
  message with the ticket), and moves them on merge.
  Without it `attachmentIds` answers 422 and comments carry `attachments: []`.
- `runtime.services["ticket_close_checks"]`: a list of `async (session, ticket) -> None` run
  before a ticket enters `Closed`; each may refuse with an ApiError (custom fields required on
  close).
- `runtime.services["custom_fields"]` (`enque.customers.seams`): the `customFields` values of
  tickets (as of customers and companies), read for lists and detail, written on create and
  update in the ticket's transaction.

What tickets offers to other domains:
- `runtime.services["ticket_exists"]`: `async (session, *, workspace_id, ticket_id) -> bool`
  (service.ticket_exists), e.g. for real-time subscriptions and presence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.errors import validation_error
from enque.core.runtime import runtime_of

MAILBOXES = "mailboxes"
ATTACHMENTS = "attachments"
CLOSE_CHECKS = "ticket_close_checks"


class MailboxDirectory(Protocol):
    async def exists(self, session: AsyncSession, *, workspace_id: str, mailbox_id: str) -> bool:
        """Whether the mailbox is in the workspace (and may receive tickets)."""


class FileLink(NamedTuple):
    """Files going onto one new comment, or (`comment_id` None) onto a ticket's first message."""

    ticket_id: str
    comment_id: str | None
    attachment_ids: list[str]


class TicketAttachments(Protocol):
    async def check(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        ticket_id: str,
        attachment_ids: list[str],
    ) -> Any:
        """422 unless every upload can go on a new comment of the ticket (nothing changes)."""

    async def link(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        ticket_id: str,
        comment_id: str | None,
        attachment_ids: list[str],
    ) -> None:
        """Attach uploaded files to a new comment (or, `comment_id=None`, to the ticket's first
        message), in the caller's transaction (422 if unusable)."""

    async def link_many(
        self, session: AsyncSession, *, workspace_id: str, links: Sequence[FileLink]
    ) -> None:
        """`link` for several comments or first messages at once (one read, one update)."""

    async def for_comments(
        self, session: AsyncSession, *, workspace_id: str, comment_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Metadata of the files of these comments, by comment id (one query)."""

    async def for_bodies(
        self, session: AsyncSession, *, workspace_id: str, ticket_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Metadata of the files of these tickets' first messages, by ticket id (one query)."""

    async def move(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        source_ticket_ids: list[str],
        target_ticket_id: str,
        body_comments: Mapping[str, str] | None = None,
    ) -> None:
        """Re-home the files of merged tickets under the target, in the caller's transaction;
        those of a source's first message go to the comment it became (`body_comments`)."""


def attachments(session: AsyncSession) -> TicketAttachments | None:
    return runtime_of(session).services.get(ATTACHMENTS)


async def check_mailbox(session: AsyncSession, workspace_id: str, mailbox_id: str) -> None:
    directory: MailboxDirectory | None = runtime_of(session).services.get(MAILBOXES)
    if directory is None or not await directory.exists(
        session, workspace_id=workspace_id, mailbox_id=mailbox_id
    ):
        raise validation_error("mailboxId", "no such mailbox in this workspace")


async def run_close_checks(session: AsyncSession, ticket: Any) -> None:
    for check in runtime_of(session).services.get(CLOSE_CHECKS, []):
        await check(session, ticket)
