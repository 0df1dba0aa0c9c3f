"""Mailboxes: connect (credentials tested first), change, disconnect; their secrets."""

from __future__ import annotations

import asyncio
import ssl
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.core.api import PageParams
from enque.core.db import new_id, now, unit
from enque.core.errors import ApiError, conflict, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import Runtime, runtime_of
from enque.core.secrets import seal, unseal
from enque.email import imap, smtp
from enque.email.errors import (
    AuthenticationFailed,
    ChannelError,
    FolderUnavailable,
    TemporaryError,
    TlsFailed,
)
from enque.email.graph import TokenSet
from enque.email.imap import ImapSettings
from enque.email.smtp import SmtpSettings
from enque.email.tls import client_context
from enque.mailboxes.models import EmailMessage, Mailbox

VERIFY_TIMEOUT = 20.0
PATCHABLE = (
    "display_name",
    "team_id",
    "default_priority",
    "default_category_id",
    "default_assignee_id",
    "is_active",
    "folder",
)


@lru_cache(maxsize=8)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return client_context(ca_file)


def tls_context(runtime: Runtime) -> ssl.SSLContext:
    """The TLS context for mail servers (system trust store plus `EMAIL_CA_FILE`)."""
    return _tls_context(runtime.settings.email_ca_file)


# ---------------------------------------------------------------- reading


async def get_mailbox(session: AsyncSession, *, workspace_id: str, mailbox_id: str) -> Mailbox:
    mailbox = (
        await session.execute(
            select(Mailbox).where(
                Mailbox.id == mailbox_id,
                Mailbox.workspace_id == workspace_id,
                Mailbox.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if mailbox is None:
        raise not_found("Mailbox")
    return mailbox


async def list_mailboxes(
    session: AsyncSession, *, workspace_id: str, page: PageParams
) -> Page[Any]:
    stmt = select(Mailbox).where(Mailbox.workspace_id == workspace_id, Mailbox.deleted_at.is_(None))
    return await keyset_page(session, stmt, [SortKey(Mailbox.id)], page, lambda m: [m.id])


async def message_counts(
    session: AsyncSession, *, workspace_id: str, mailbox_ids: list[str]
) -> dict[str, dict[str, int]]:
    """Per mailbox: messages received, sent and failed (one grouped query for all)."""
    counts: dict[str, dict[str, int]] = {
        m: {"received": 0, "sent": 0, "failed": 0} for m in mailbox_ids
    }
    if not mailbox_ids:
        return counts
    rows = await session.execute(
        select(EmailMessage.mailbox_id, EmailMessage.direction, EmailMessage.state, func.count())
        .where(EmailMessage.workspace_id == workspace_id, EmailMessage.mailbox_id.in_(mailbox_ids))
        .group_by(EmailMessage.mailbox_id, EmailMessage.direction, EmailMessage.state)
    )
    for mailbox_id, direction, state, count in rows:
        entry = counts[mailbox_id]
        if state == "failed":
            entry["failed"] += count
        elif direction == "in":
            entry["received"] += count
        elif state == "sent":
            entry["sent"] += count
    return counts


async def workspace_addresses(session: AsyncSession, *, workspace_id: str) -> list[str]:
    """Every mailbox address of the workspace (mail from any of them is a loop)."""
    rows = await session.execute(
        select(Mailbox.email).where(
            Mailbox.workspace_id == workspace_id, Mailbox.deleted_at.is_(None)
        )
    )
    return [r[0].lower() for r in rows]


# ---------------------------------------------------------------- secrets


def credentials(runtime: Runtime, mailbox: Mailbox) -> dict[str, Any]:
    return unseal(runtime.cipher, mailbox, "credentials") or {}


def imap_settings(runtime: Runtime, mailbox: Mailbox) -> ImapSettings:
    server = mailbox.settings["imap"]
    return ImapSettings(
        host=server["host"],
        port=server["port"],
        security=server["security"],
        username=server["username"],
        password=credentials(runtime, mailbox).get("imap_password", ""),
        folder=mailbox.folder,
    )


def smtp_settings(runtime: Runtime, mailbox: Mailbox) -> SmtpSettings:
    server = mailbox.settings["smtp"]
    return SmtpSettings(
        host=server["host"],
        port=server["port"],
        security=server["security"],
        username=server.get("username"),
        password=credentials(runtime, mailbox).get("smtp_password"),
    )


# ---------------------------------------------------------------- changes


async def _end_read_transaction(session: AsyncSession) -> None:
    """Network I/O never happens inside a transaction: close the one reads opened."""
    if session.info.get("unit_depth", 0) == 0 and session.in_transaction():
        await session.commit()


def _verify_error(exc: ChannelError, service: str) -> ApiError:
    if isinstance(exc, AuthenticationFailed):
        return validation_error(f"{service}.password", exc.message)
    if isinstance(exc, FolderUnavailable):
        return validation_error(f"{service}.folder", exc.message)
    if isinstance(exc, TlsFailed):
        return validation_error(f"{service}.security", exc.message)
    if isinstance(exc, TemporaryError):
        return ApiError(
            "INTEGRATION_ERROR",
            f"The {service.upper()} server could not be reached",
            [{"service": service, "message": exc.message}],
        )
    return validation_error(service, exc.message)


async def verify_servers(runtime: Runtime, imap_cfg: ImapSettings, smtp_cfg: SmtpSettings) -> None:
    """IMAP login + SELECT of the folder, and SMTP login, concurrently; ApiError on failure."""
    context = tls_context(runtime)
    results = await asyncio.gather(
        imap.verify(imap_cfg, context), smtp.verify(smtp_cfg, context), return_exceptions=True
    )
    for service, result in zip(("imap", "smtp"), results, strict=True):
        if isinstance(result, ChannelError):
            raise _verify_error(result, service)
        if isinstance(result, BaseException):
            raise result


def security_warnings(imap_in: dict[str, Any], smtp_in: dict[str, Any]) -> list[str]:
    warnings = []
    for name, server in (("IMAP", imap_in), ("SMTP", smtp_in)):
        if server["security"] == "none":
            warnings.append(f"{name} security is 'none': the password and mail travel unencrypted")
    return warnings


async def create_imap_mailbox(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    email: str,
    display_name: str,
    imap_in: dict[str, Any],
    smtp_in: dict[str, Any],
) -> tuple[Mailbox, list[str]]:
    """Test both servers with the credentials, then store the mailbox (secrets encrypted)."""
    runtime = runtime_of(session)
    imap_cfg = ImapSettings(
        host=imap_in["host"],
        port=imap_in["port"],
        security=imap_in["security"],
        username=imap_in["username"],
        password=imap_in["password"],
        folder=imap_in.get("folder") or "INBOX",
        timeout=VERIFY_TIMEOUT,
    )
    smtp_cfg = SmtpSettings(
        host=smtp_in["host"],
        port=smtp_in["port"],
        security=smtp_in["security"],
        username=smtp_in.get("username"),
        password=smtp_in.get("password"),
        timeout=VERIFY_TIMEOUT,
    )
    await _end_read_transaction(session)
    await verify_servers(runtime, imap_cfg, smtp_cfg)

    mailbox = Mailbox(
        id=new_id(),
        workspace_id=workspace_id,
        email=email,
        display_name=display_name,
        kind="imap",
        folder=imap_cfg.folder,
        settings={
            "imap": {k: imap_in[k] for k in ("host", "port", "security", "username")},
            "smtp": {
                "host": smtp_in["host"],
                "port": smtp_in["port"],
                "security": smtp_in["security"],
                "username": smtp_in.get("username"),
            },
        },
    )
    secrets = {"imap_password": imap_cfg.password, "smtp_password": smtp_cfg.password}
    seal(runtime.cipher, mailbox, "credentials", secrets)
    async with unit(session):
        await _ensure_unique(session, workspace_id, email)
        session.add(mailbox)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="mailbox.created",
            subject_type="mailbox",
            subject_id=mailbox.id,
            after={"email": email, "kind": "imap", "displayName": display_name},
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise _taken() from exc
    return mailbox, security_warnings(imap_in, smtp_in)


def _taken() -> ApiError:
    return conflict(
        "A mailbox with this address exists in the workspace",
        [{"path": "email", "message": "taken"}],
    )


async def _ensure_unique(session: AsyncSession, workspace_id: str, email: str) -> None:
    taken = await session.execute(
        select(Mailbox.id).where(
            Mailbox.workspace_id == workspace_id,
            func.lower(Mailbox.email) == email.lower(),
            Mailbox.deleted_at.is_(None),
        )
    )
    if taken.first() is not None:
        raise _taken()


async def update_mailbox(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    mailbox_id: str,
    changes: dict[str, Any],
) -> Mailbox:
    """Display name, routing defaults (team, priority, category, assignee), active, folder.

    A new folder restarts the sync cursor: message identity (the ledger) prevents doubles.
    """
    async with unit(session):
        mailbox = await get_mailbox(session, workspace_id=workspace_id, mailbox_id=mailbox_id)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field in PATCHABLE:
            if field not in changes or getattr(mailbox, field) == changes[field]:
                continue
            before[field], after[field] = getattr(mailbox, field), changes[field]
            setattr(mailbox, field, changes[field])
        if "folder" in after:
            mailbox.sync_cursor = None
        if "is_active" in after and mailbox.is_active:
            mailbox.error_count = 0
        if after:
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="mailbox.updated",
                subject_type="mailbox",
                subject_id=mailbox.id,
                before=before,
                after=after,
            )
    return mailbox


async def delete_mailbox(
    session: AsyncSession, *, workspace_id: str, actor: Actor, mailbox_id: str
) -> None:
    """Disconnect: the secrets are erased, the row is kept (tickets and the ledger stay)."""
    async with unit(session):
        mailbox = await get_mailbox(session, workspace_id=workspace_id, mailbox_id=mailbox_id)
        mailbox.deleted_at = now()
        mailbox.is_active = False
        mailbox.credentials = None
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="mailbox.deleted",
            subject_type="mailbox",
            subject_id=mailbox.id,
            before={"email": mailbox.email, "kind": mailbox.kind},
        )


async def save_tokens(
    session: AsyncSession, *, workspace_id: str, mailbox_id: str, tokens: dict[str, Any]
) -> None:
    """Store a Microsoft mailbox's new access and refresh tokens (encrypted)."""
    async with unit(session):
        mailbox = await get_mailbox(session, workspace_id=workspace_id, mailbox_id=mailbox_id)
        current = credentials(runtime_of(session), mailbox)
        seal(runtime_of(session).cipher, mailbox, "credentials", {**current, **tokens})


class MailboxTokenStore:
    """A Microsoft mailbox's OAuth tokens, kept encrypted in its row (a `TokenStore`)."""

    def __init__(self, runtime: Runtime, *, workspace_id: str, mailbox_id: str) -> None:
        self.runtime = runtime
        self.workspace_id = workspace_id
        self.mailbox_id = mailbox_id

    async def load(self) -> TokenSet:
        async with self.runtime.db.session(write=False) as session:
            mailbox = await get_mailbox(
                session, workspace_id=self.workspace_id, mailbox_id=self.mailbox_id
            )
            return TokenSet.from_dict(credentials(self.runtime, mailbox))

    async def save(self, tokens: TokenSet) -> None:
        async with self.runtime.db.session() as session:
            await save_tokens(
                session,
                workspace_id=self.workspace_id,
                mailbox_id=self.mailbox_id,
                tokens=tokens.as_dict(),
            )


# ---------------------------------------------------------------- status (real-time)

STATUS_CHANNELS = ["workspace"]  # every agent's socket: the inbox shows a broken mailbox


def emit_status(session: AsyncSession, mailbox: Mailbox) -> None:
    """`mailbox.status` after commit, to every socket of the workspace."""
    payload = {"mailboxId": mailbox.id, "state": mailbox.state, "lastError": mailbox.last_error}
    emit(session, Event("mailbox.status", mailbox.workspace_id, payload, STATUS_CHANNELS))


async def set_status(
    session: AsyncSession,
    *,
    workspace_id: str,
    mailbox_id: str,
    state: str,
    last_error: str | None = None,
) -> Mailbox:
    """A mailbox's connection state as the sync found it (`active`, `error`, `auth_required`…).

    Writes and announces only a change, so a sync that fails the same way every few minutes
    does not flood the sockets.
    """
    async with unit(session):
        mailbox = await get_mailbox(session, workspace_id=workspace_id, mailbox_id=mailbox_id)
        if (mailbox.state, mailbox.last_error) == (state, last_error):
            return mailbox
        before = {"state": mailbox.state, "lastError": mailbox.last_error}
        mailbox.state, mailbox.last_error = state, last_error
        record(
            session,
            workspace_id=workspace_id,
            actor=SYSTEM,
            verb="mailbox.status",
            subject_type="mailbox",
            subject_id=mailbox.id,
            before=before,
            after={"state": state, "lastError": last_error},
        )
        emit_status(session, mailbox)
    return mailbox
