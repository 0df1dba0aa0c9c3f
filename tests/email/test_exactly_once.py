"""Exactly once, proven under SIGKILL.

IMAP: the sync runs in its own process (`enque sync-emails`); it is killed at random moments,
and so is the IMAP server (Dovecot, with every process it started). Microsoft 365: the sync
process is killed the same way while the Graph emulator throttles (429) and fails (503) in
the middle of delta rounds, sometimes past the client's retries. In the end every message
produced exactly one ticket or comment, its files are linked once to that message, and after
the orphan sweep no stored file is left that nothing links.

`ENQUE_EMAIL_KILL_MESSAGES` sets how many messages each test syncs (default: 300; a batch
or page commits as a whole, so there must be more of them than kills; 1,000 is the figure
documented in docs/email.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from enque.attachments import service as attachments
from enque.attachments.models import Attachment
from enque.comments.models import Comment
from enque.core.runtime import Runtime
from enque.core.storage import storage_of
from enque.email.parse import parse_message
from enque.mailboxes import sync
from enque.mailboxes.models import EmailMessage
from tests.email import corpus
from tests.email.dovecot import Dovecot, dovecot_available
from tests.email.mailflow import PDF, connect_graph, ledger, mail, tickets_of, with_files
from tests.email.servers import SMTP_PASSWORD, SMTP_USER, shared_smtp
from tests.emulators.graph import GraphEmulator
from tests.support.api import Tenant, data
from tests.support.services import require

COUNT = os.environ.get("ENQUE_EMAIL_KILL_MESSAGES")
IMAP_MESSAGES = int(COUNT or 300)
GRAPH_MESSAGES = int(COUNT or 300)
KILLS = 5
PROCESS_PAGE_SIZE = sync.DELTA_PAGE_SIZE  # the sync process's Graph pages (tests make them 5)
HARD = [corpus.shift_jis, corpus.rfc2231_filename, corpus.html_only, corpus.bad_base64,
        corpus.forwarded, corpus.inline_image, corpus.calendar_invitation]  # fmt: skip


def _messages(address: str, count: int, *, hard: bool) -> list[tuple[bytes, str]]:
    """New tickets, replies to earlier ones, files, inline images and (for IMAP) hard
    encodings; each message its own identity."""
    rng = random.Random(6)
    out: list[tuple[bytes, str]] = []
    for n in range(count):
        frm = f"c{n % 17}@customer.test"
        if hard and n % 10 == 7:
            mid = f"hard{n}@customer.test"
            raw = HARD[n % len(HARD)]().replace(b"m1@customer.test", mid.encode())
            out.append((raw.replace(b"support@acme.test", address.encode()), mid))
        elif n % 3 == 2 and out:
            parent = out[rng.randrange(len(out))][1]
            threading = {"In-Reply-To": f"<{parent}>", "References": f"<{parent}>"}
            if n % 2:
                files = [(f"reply-{n}.pdf", PDF)]
                out.append(
                    with_files(to=address, frm=frm, subject=f"Re: order {n}", files=files,
                               headers=threading)
                )  # fmt: skip
            else:
                body = f"reply {n}\n\n> quoted\n"
                out.append(
                    mail(to=address, frm=frm, subject=f"Re: order {n}", body=body,
                         headers=threading)
                )  # fmt: skip
        elif n % 4 == 1:
            files = [(f"invoice-{n}.pdf", PDF)]
            out.append(with_files(to=address, frm=frm, subject=f"order {n}", files=files))
        else:
            out.append(mail(to=address, frm=frm, subject=f"order {n}"))
    return out


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found += [child, *_children(child)]
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL the Dovecot master and every process it started (login, imap, auth)."""
    for target in [pid, *_children(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


async def _recorded(runtime: Runtime, mailbox_id: str) -> int:
    async with runtime.db.session(write=False) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.mailbox_id == mailbox_id)
        )
    return count or 0


class SyncProcess:
    """`enque sync-emails` for one workspace, in its own process."""

    def __init__(self, env: dict[str, str], workspace_id: str, log: Path) -> None:
        self.env, self.workspace_id, self.log = env, workspace_id, log

    async def run(
        self,
        runtime: Runtime,
        mailbox_id: str,
        rng: random.Random,
        step: int,
        *,
        midway: Callable[[], None] = lambda: None,
        then: Callable[[], None] | None = None,
    ) -> bool:
        """Start a sync; once it has recorded up to `step` more messages call `midway`, then
        SIGKILL it, or call `then` and let it end on its own. True if it was still running
        (the kill landed mid-sync)."""
        start = await _recorded(runtime, mailbox_id)
        target = start + rng.randint(1, step)
        with self.log.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "enque.cli", "sync-emails",
                "--workspace-id", self.workspace_id,
                env=self.env, stdout=log, stderr=log,
            )  # fmt: skip
        half = False
        try:
            while proc.returncode is None:
                done = await _recorded(runtime, mailbox_id)
                if not half and done >= (start + target) / 2:
                    half = True
                    midway()
                if done >= target:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.02)
            if proc.returncode is not None:
                return False
            if then is None:
                proc.send_signal(signal.SIGKILL)
            else:
                then()
            await asyncio.wait_for(proc.wait(), 120)
            return True
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def output(self) -> str:
        return await asyncio.to_thread(self.log.read_text)


def _env(base_env: dict[str, str], database_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, **base_env, "DATABASE_URL": database_url, **extra}


async def _landed(stopped: int, process: SyncProcess) -> None:
    """The kills landed mid-sync (all but perhaps one: a run may finish first)."""
    if stopped < KILLS - 1:
        pytest.fail(f"only {stopped} kills landed:\n" + await process.output())


async def _finish(runtime: Runtime, mailbox_id: str) -> None:
    """Sync in this process until nothing is left and nothing fails."""
    for _ in range(6):
        report = await sync.sync_mailbox(runtime, mailbox_id)
        if report.error is None and report.fetched == 0:
            return
    raise AssertionError(f"the mailbox does not settle: {report.as_dict()}")


async def _assert_exactly_once(
    runtime: Runtime, workspace_id: str, mailbox_id: str, files: dict[str, int]
) -> None:
    """Each message: one ledger row, one ticket or comment, its files linked once; nothing
    stored that nothing links once the sweep has run."""
    rows = await ledger(runtime, mailbox_id)
    by_id = {r.internet_message_id: r for r in rows}
    assert len(rows) == len(files) and set(by_id) == set(files)
    assert all(r.state == "processed" and r.ticket_id for r in rows)
    tickets = await tickets_of(runtime, workspace_id)
    async with runtime.db.session(write=False) as session:
        comments = await session.scalar(
            select(func.count())
            .select_from(Comment)
            .where(Comment.workspace_id == workspace_id, Comment.kind == "customer")
        )
        stored = list(
            await session.scalars(select(Attachment).where(Attachment.workspace_id == workspace_id))
        )
    assert len(tickets) + (comments or 0) == len(files)
    assert len([r for r in rows if r.comment_id]) == comments
    assert len({r.comment_id or r.ticket_id for r in rows}) == len(files)

    linked = [a for a in stored if a.linked_at is not None]
    on_comment: dict[str | None, int] = {}
    on_body: dict[str | None, int] = {}
    for a in linked:
        if a.comment_id:
            on_comment[a.comment_id] = on_comment.get(a.comment_id, 0) + 1
        else:
            on_body[a.ticket_id] = on_body.get(a.ticket_id, 0) + 1
    for mid, row in by_id.items():
        got = on_comment.get(row.comment_id, 0) if row.comment_id else on_body.get(row.ticket_id, 0)
        assert got == files[mid], (mid, got, files[mid])
    assert len(linked) == sum(files.values())

    # What killed ingests stored is linked to nothing: a day later the sweep takes it away.
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Attachment)
            .where(Attachment.workspace_id == workspace_id)
            .values(created_at=Attachment.created_at - 86400 - 5)
        )
    root = Path(storage_of(runtime).description.removeprefix("file://"))
    a_day_ago = time.time() - 86400 - 5  # and the files its writes cut short (`<key>#<n>`)
    for path in (root / workspace_id).rglob("*"):
        if path.is_file():
            os.utime(path, (a_day_ago, a_day_ago))
    await attachments.sweep_orphans(runtime)
    objects = {p.name for p in (root / workspace_id).rglob("*") if p.is_file()}
    assert objects == {a.id for a in linked}


@pytest.fixture
def sync_log() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="enque-sync-log-"))
    yield folder / "sync.log"
    shutil.rmtree(folder, ignore_errors=True)


async def test_sigkill_of_sync_and_imap_server_loses_and_doubles_nothing(
    tenant: Tenant,
    app_runtime: Runtime,
    base_env: dict[str, str],
    database_url: str,
    sync_log: Path,
) -> None:
    require(dovecot_available(), "Dovecot (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="enque-dovecot-kill-"))
    server = Dovecot(root).start()
    try:
        user, password = server.add_user()
        address = f"kill-{tenant.workspace_id[-8:]}@acme.test"
        body = {
            "email": address,
            "displayName": "Support",
            "imap": {"host": "127.0.0.1", "port": server.port, "security": "none",
                     "username": user, "password": password},
            "smtp": {"host": "127.0.0.1", "port": shared_smtp().port, "security": "none",
                     "username": SMTP_USER, "password": SMTP_PASSWORD},
        }  # fmt: skip
        mailbox_id = data(await tenant.post("/v1/mailboxes/imap", json=body), 201)["id"]
        messages = _messages(address, IMAP_MESSAGES, hard=True)
        for raw, _ in messages:
            server.deliver(user, raw)

        def kill_dovecot() -> None:
            assert server.proc is not None
            _kill_tree(server.proc.pid)
            server.proc.wait()

        process = SyncProcess(_env(base_env, database_url), tenant.workspace_id, sync_log)
        rng = random.Random(42)
        stopped = 0
        step = max(2, IMAP_MESSAGES // (KILLS + 2))
        for kill in range(KILLS):
            stopped += await process.run(
                app_runtime, mailbox_id, rng, step, then=kill_dovecot if kill % 2 else None
            )
            if server.proc is None or server.proc.poll() is not None:
                server.start()
        await _landed(stopped, process)
        await _finish(app_runtime, mailbox_id)
        expected = {mid: len(parse_message(raw).attachments) for raw, mid in messages}
        await _assert_exactly_once(app_runtime, tenant.workspace_id, mailbox_id, expected)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_sigkill_of_graph_sync_amid_throttling_loses_and_doubles_nothing(
    tenant: Tenant,
    app_runtime: Runtime,
    microsoft: GraphEmulator,
    base_env: dict[str, str],
    database_url: str,
    sync_log: Path,
) -> None:
    microsoft.inline_attachment_limit = 2000  # the PDFs come through `$value`
    mailbox_id, user = await connect_graph(app_runtime, tenant, microsoft)
    files: dict[str, int] = {}
    for raw, mid in _messages(user.mail, GRAPH_MESSAGES, hard=False):
        files[mid] = len(microsoft.deliver(user, raw).attachments)
    settings = app_runtime.settings
    env = _env(
        base_env, database_url,
        MICROSOFT_CLIENT_ID=str(settings.microsoft_client_id),
        MICROSOFT_CLIENT_SECRET=str(settings.microsoft_client_secret),
        MICROSOFT_TENANT_ID=str(settings.microsoft_tenant_id),
        MICROSOFT_AUTHORITY=settings.microsoft_authority,
        MICROSOFT_GRAPH_URL=settings.microsoft_graph_url,
    )  # fmt: skip
    rng = random.Random(7)

    def trouble() -> None:
        """Mid-round: the next calls are throttled (429) and fail (503), within the retries."""
        microsoft.throttle(rng.randint(1, 2), retry_after=0, path_contains="delta")
        microsoft.burst_503(rng.randint(1, 2), retry_after=0)

    def outage() -> None:
        """Mid-round: more failures in a row than the client retries."""
        microsoft.throttle(8, retry_after=0, status=503, path_contains="/messages")

    process = SyncProcess(env, tenant.workspace_id, sync_log)
    stopped = 0
    step = max(2, GRAPH_MESSAGES // (KILLS + 3))
    for _ in range(KILLS):
        stopped += await process.run(app_runtime, mailbox_id, rng, step, midway=trouble)
    await _landed(stopped, process)
    # an outage the sync gives up on: it ends with the error, what it committed stays. A page
    # commits as a whole: the round above is finished here, and a new one of three pages (the
    # sync process's size) meets the outage once its first page is committed
    await _finish(app_runtime, mailbox_id)
    for raw, mid in _messages(user.mail, 3 * PROCESS_PAGE_SIZE, hard=False):
        files[mid] = len(microsoft.deliver(user, raw).attachments)
    before = len(await process.output())
    await process.run(app_runtime, mailbox_id, rng, step, midway=outage, then=lambda: None)
    [report] = [
        line for line in (await process.output())[before:].splitlines() if mailbox_id in line
    ]
    assert "error: Graph 503" in report
    microsoft.rules.clear()
    await _finish(app_runtime, mailbox_id)
    await _assert_exactly_once(app_runtime, tenant.workspace_id, mailbox_id, files)
    assert microsoft.calls["delta"] > KILLS  # every run asked for delta pages
