"""Fetching new mail: IMAP by UIDVALIDITY + UID, Microsoft Graph by delta links.

`sync_mailbox(runtime, mailbox_id)` runs one sync of one mailbox; `sync_all(runtime)` every
active mailbox (the scheduler's job). One sync per mailbox at a time across workers: a lease in
the cache (Redis when configured) that expires if its holder dies. The new messages of each
fetched batch (IMAP) or delta page (Graph) are committed together (`ingest_batch`: ledger +
tickets/comments) before the cursor moves past them; the cursor moves only forward, so a crash
at any point means the next sync fetches again what was not recorded, and the ledger's unique
constraints turn what was recorded into duplicates that change nothing.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, record
from enque.core.db import now
from enque.core.events import Event, emit
from enque.core.metrics import SYNC_FAILURES, SYNC_SECONDS
from enque.core.runtime import Runtime
from enque.email.errors import AuthenticationFailed, ChannelError
from enque.email.graph import GraphClient, ResyncRequired, to_parsed
from enque.email.imap import ImapClient
from enque.email.parse import parse_message
from enque.mailboxes import microsoft
from enque.mailboxes.batch import ingest_batch
from enque.mailboxes.ingest import (
    MAX_MESSAGE_FILES_BYTES,
    Context,
    Inbound,
    IngestResult,
    context_for,
    identity_of,
    keep_dead_letter,
    known_messages,
)
from enque.mailboxes.models import Mailbox
from enque.mailboxes.service import MailboxTokenStore, imap_settings, tls_context

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

LEASE_TTL = 900
DELTA_PAGE_SIZE = 50
STATUS_CHANNELS = ["workspace"]
_CID = re.compile(r"""src\s*=\s*["']?cid:""", re.I)


class SyncBusy(Exception):
    """Another worker is syncing this mailbox right now."""


@dataclass
class SyncReport:
    mailbox_id: str
    fetched: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    state: str = "active"

    def count(self, result: IngestResult) -> None:
        self.fetched += 1
        self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailboxId": self.mailbox_id,
            "fetched": self.fetched,
            "created": self.outcomes.get("created", 0),
            "commented": self.outcomes.get("commented", 0),
            "ignored": self.outcomes.get("ignored", 0),
            "duplicates": self.outcomes.get("duplicate", 0),
            "failed": self.outcomes.get("failed", 0),
            "state": self.state,
            "error": self.error,
        }


# ---------------------------------------------------------------- lease


class Lease:
    """`email-sync:<mailbox>` in the cache: set-if-absent with a TTL, released by its owner."""

    def __init__(self, runtime: Runtime, mailbox_id: str) -> None:
        self.runtime = runtime
        self.key = f"email-sync:{mailbox_id}"
        self.owner = uuid.uuid4().hex

    async def acquire(self) -> bool:
        return await self.runtime.cache.set_nx(self.key, self.owner, LEASE_TTL)

    async def renew(self) -> None:
        if await self.runtime.cache.get(self.key) == self.owner:
            await self.runtime.cache.set(self.key, self.owner, LEASE_TTL)

    async def release(self) -> None:
        if await self.runtime.cache.get(self.key) == self.owner:
            await self.runtime.cache.delete(self.key)


# ---------------------------------------------------------------- mailbox state


async def _load(runtime: Runtime, mailbox_id: str) -> Mailbox | None:
    async with runtime.db.session(write=False) as session:
        return (
            await session.execute(
                select(Mailbox).where(Mailbox.id == mailbox_id, Mailbox.deleted_at.is_(None))
            )
        ).scalar_one_or_none()


async def save_cursor(runtime: Runtime, mailbox_id: str, cursor: dict[str, Any]) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Mailbox).where(Mailbox.id == mailbox_id).values(sync_cursor=cursor)
        )


def _emit_status(session: AsyncSession, mailbox: Mailbox) -> None:
    payload = {"mailboxId": mailbox.id, "state": mailbox.state, "lastError": mailbox.last_error}
    emit(session, Event("mailbox.status", mailbox.workspace_id, payload, STATUS_CHANNELS))


async def _finish(runtime: Runtime, mailbox_id: str, report: SyncReport) -> None:
    """Sync time, error and state on the mailbox; a change of state is announced."""
    async with runtime.db.transaction() as session:
        mailbox = (
            await session.execute(select(Mailbox).where(Mailbox.id == mailbox_id))
        ).scalar_one_or_none()
        if mailbox is None:
            return
        before = (mailbox.state, mailbox.last_error)
        mailbox.last_sync_at = now()
        mailbox.last_error = report.error
        mailbox.error_count = mailbox.error_count + 1 if report.error else 0
        mailbox.state = report.state
        if before != (mailbox.state, mailbox.last_error):
            record(
                session,
                workspace_id=mailbox.workspace_id,
                actor=SYSTEM,
                verb="mailbox.status",
                subject_type="mailbox",
                subject_id=mailbox.id,
                before={"state": before[0], "lastError": before[1]},
                after={"state": mailbox.state, "lastError": mailbox.last_error},
            )
            _emit_status(session, mailbox)
            if mailbox.state == "needs_reconnect":
                notify = runtime.services.get("notify_admins")
                if notify is not None:
                    await notify(
                        session,
                        workspace_id=mailbox.workspace_id,
                        kind="mailbox.needs_reconnect",
                        payload={"mailboxId": mailbox.id, "email": mailbox.email},
                    )


# ---------------------------------------------------------------- IMAP


async def sync_imap(runtime: Runtime, mailbox: Mailbox, report: SyncReport, lease: Lease) -> None:
    cursor = dict(mailbox.sync_cursor or {})
    async with ImapClient(imap_settings(runtime, mailbox), tls_context(runtime)) as imap:
        folder = await imap.select()
        if cursor.get("uidvalidity") != folder.uidvalidity:
            # A new UIDVALIDITY (or the first sync): the whole folder again; the ledger
            # recognises every message already recorded by its Message-ID.
            cursor = {"uidvalidity": folder.uidvalidity, "last_uid": 0}
        last_uid = int(cursor.get("last_uid", 0))
        context = await context_for(runtime, mailbox)
        async for batch in imap.fetch_new(last_uid):
            inbound = [
                Inbound(parse_message(f.raw), f"{folder.uidvalidity}:{f.uid}") for f in batch
            ]
            keys = [
                (identity_of(m.parsed, f.raw), m.provider_id)
                for m, f in zip(inbound, batch, strict=True)
            ]
            held = await known_messages(runtime, mailbox, keys)  # one query for the batch
            new = [(m, f.raw) for m, f, seen in zip(inbound, batch, held, strict=True) if not seen]
            done = iter(await ingest_batch(runtime, mailbox, new, context))
            for fetched, seen in zip(batch, held, strict=True):
                report.count(IngestResult("duplicate") if seen else next(done))
                last_uid = max(last_uid, fetched.uid)
            cursor = {"uidvalidity": folder.uidvalidity, "last_uid": last_uid}
            await save_cursor(runtime, mailbox.id, cursor)
            await lease.renew()
        if cursor != (mailbox.sync_cursor or {}):
            await save_cursor(runtime, mailbox.id, cursor)


# ---------------------------------------------------------------- Microsoft Graph


async def graph_client(runtime: Runtime, mailbox: Mailbox, http: httpx.AsyncClient) -> GraphClient:
    async with runtime.db.session(write=False) as session:
        app = await microsoft.app_credentials(session, workspace_id=mailbox.workspace_id)
    if app is None:
        raise AuthenticationFailed("Microsoft 365 is not configured for this workspace")
    user_id = (mailbox.settings or {}).get("microsoft", {}).get("user_id") or mailbox.email
    return GraphClient(
        base_url=runtime.settings.microsoft_graph_url,
        mailbox=user_id,
        tokens=MailboxTokenStore(runtime, workspace_id=mailbox.workspace_id, mailbox_id=mailbox.id),
        oauth=microsoft.oauth_client(runtime, app, http),
        http=http,
    )


async def _graph_page(
    runtime: Runtime,
    graph: GraphClient,
    mailbox: Mailbox,
    messages: list[dict[str, Any]],
    context: Context,
    report: SyncReport,
) -> None:
    """A delta page: one ledger query for all of it; attachments fetched only for messages
    the ledger does not know, then those ingested together (`ingest_batch`)."""
    bare = [to_parsed(m) for m in messages]
    keys = [(identity_of(p), str(m["id"])) for p, m in zip(bare, messages, strict=True)]
    held = await known_messages(runtime, mailbox, keys)
    new: list[tuple[Inbound, bytes | None]] = []
    for message, parsed, seen in zip(messages, bare, held, strict=True):
        if seen:
            continue
        provider_id = str(message["id"])
        body = str((message.get("body") or {}).get("content") or "")
        if message.get("hasAttachments") or _CID.search(body):
            files = await graph.attachments(
                provider_id,
                max_file=runtime.settings.max_upload_bytes,
                max_total=MAX_MESSAGE_FILES_BYTES,
            )
            parsed = to_parsed(message, files) if files else parsed
        new.append((Inbound(parsed, provider_id, message.get("conversationId")), None))
    for _ in range(sum(held)):
        report.count(IngestResult("duplicate"))
    results = await ingest_batch(runtime, mailbox, new, context)
    for (inbound, _), result in zip(new, results, strict=True):
        if result.outcome == "failed" and result.ledger_id is not None:
            provider_id = str(inbound.provider_id)
            try:  # the dead letter's raw copy: the message as MIME
                raw = await graph.mime(provider_id)
            except ChannelError as exc:
                log.warning("mailbox %s: no raw copy of %s: %s", mailbox.id, provider_id, exc)
            else:
                await keep_dead_letter(runtime, mailbox.workspace_id, result.ledger_id, raw)
        report.count(result)


async def sync_graph(runtime: Runtime, mailbox: Mailbox, report: SyncReport, lease: Lease) -> None:
    import httpx  # on first use: importing it slows every start

    cursor = dict(mailbox.sync_cursor or {})
    async with httpx.AsyncClient() as http:
        graph = await graph_client(runtime, mailbox, http)
        link = cursor.get("next_link") or cursor.get("delta_link")
        try:
            await _delta_round(runtime, graph, mailbox, report, lease, link)
        except ResyncRequired:
            log.info("mailbox %s: delta state gone, syncing the folder again", mailbox.id)
            await save_cursor(runtime, mailbox.id, {})
            await _delta_round(runtime, graph, mailbox, report, lease, None)


async def _delta_round(
    runtime: Runtime,
    graph: GraphClient,
    mailbox: Mailbox,
    report: SyncReport,
    lease: Lease,
    link: str | None,
) -> None:
    context = await context_for(runtime, mailbox)
    async for page in graph.delta(
        mailbox.folder or "inbox", delta_link=link, page_size=DELTA_PAGE_SIZE
    ):
        await _graph_page(runtime, graph, mailbox, page.messages, context, report)
        # The page is committed: the next sync may start after it.
        if page.delta_link:
            await save_cursor(runtime, mailbox.id, {"delta_link": page.delta_link})
        elif page.next_link:
            await save_cursor(runtime, mailbox.id, {"next_link": page.next_link})
        await lease.renew()


# ---------------------------------------------------------------- entry points


async def sync_mailbox(runtime: Runtime, mailbox_id: str) -> SyncReport:
    """One sync of one mailbox; raises `SyncBusy` when another sync of it is running.

    Channel failures do not raise: they are recorded on the mailbox (`last_error`,
    `error_count`; refused credentials → `needs_reconnect`) and in the report.
    """
    mailbox = await _load(runtime, mailbox_id)
    report = SyncReport(mailbox_id)
    if mailbox is None or not mailbox.is_active:
        report.error = "the mailbox is not active"
        report.state = mailbox.state if mailbox else "error"
        return report
    lease = Lease(runtime, mailbox_id)
    if not await lease.acquire():
        raise SyncBusy(mailbox_id)
    clock = time.perf_counter()
    try:
        try:
            if mailbox.kind == "imap":
                await sync_imap(runtime, mailbox, report, lease)
            else:
                await sync_graph(runtime, mailbox, report, lease)
        except AuthenticationFailed as exc:
            report.error, report.state = exc.message, "needs_reconnect"
        except ChannelError as exc:
            report.error, report.state = exc.message, "active" if exc.temporary else "error"
        failed = report.outcomes.get("failed", 0)
        if failed and report.error is None:
            report.error = f"{failed} message(s) could not be processed (kept as failed)"
        await _finish(runtime, mailbox_id, report)
    finally:
        await lease.release()
        SYNC_SECONDS.labels(mailbox.kind).observe(time.perf_counter() - clock)
        if report.error is not None:
            SYNC_FAILURES.labels(mailbox.kind).inc()
    return report


async def sync_all(runtime: Runtime, *, workspace_id: str | None = None) -> list[SyncReport]:
    """Every active mailbox (of one workspace, or all), one after another; busy ones skipped."""
    async with runtime.db.session(write=False) as session:
        stmt = select(Mailbox.id).where(Mailbox.deleted_at.is_(None), Mailbox.is_active.is_(True))
        if workspace_id is not None:
            stmt = stmt.where(Mailbox.workspace_id == workspace_id)
        ids = list((await session.execute(stmt.order_by(Mailbox.id))).scalars())
    reports = []
    for mailbox_id in ids:
        try:
            reports.append(await sync_mailbox(runtime, mailbox_id))
        except SyncBusy:
            continue
        except Exception:
            log.exception("sync of mailbox %s failed", mailbox_id)
    return reports
