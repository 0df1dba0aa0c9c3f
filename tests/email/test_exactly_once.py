"""Exactly once, proven: the IMAP server is killed (SIGKILL) at random moments during syncs and
restarted; in the end every message produced exactly one ticket or comment."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from enque.comments.models import Comment
from enque.core.runtime import Runtime
from enque.mailboxes import sync
from tests.email import corpus
from tests.email.dovecot import Dovecot, dovecot_available
from tests.email.mailflow import ledger, mail, tickets_of
from tests.email.servers import SMTP_PASSWORD, SMTP_USER, shared_smtp
from tests.support.api import Tenant, data
from tests.support.services import require

MESSAGES = 300
KILLS = 4


def _messages(address: str) -> list[tuple[bytes, str]]:
    """New tickets, replies to earlier ones, files and hard encodings, each its own identity."""
    rng = random.Random(6)
    hard = [corpus.shift_jis, corpus.rfc2231_filename, corpus.html_only, corpus.bad_base64,
            corpus.forwarded, corpus.inline_image, corpus.calendar_invitation]  # fmt: skip
    out: list[tuple[bytes, str]] = []
    for n in range(MESSAGES):
        if n % 10 == 7:
            mid = f"hard{n}@customer.test"
            raw = hard[n % len(hard)]().replace(b"m1@customer.test", mid.encode())
            out.append((raw.replace(b"support@acme.test", address.encode()), mid))
        elif n % 3 == 2 and out:
            parent = out[rng.randrange(len(out))][1]
            out.append(
                mail(
                    to=address,
                    frm=f"c{n % 17}@customer.test",
                    subject=f"Re: order {n}",
                    body=f"reply {n}\n\n> quoted\n",
                    headers={"In-Reply-To": f"<{parent}>", "References": f"<{parent}>"},
                )
            )
        else:
            out.append(mail(to=address, frm=f"c{n % 17}@customer.test", subject=f"order {n}"))
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


async def test_sigkill_during_sync_loses_and_doubles_nothing(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_settings = sync.imap_settings
    monkeypatch.setattr(
        sync, "imap_settings", lambda r, m: dataclasses.replace(real_settings(r, m), timeout=3)
    )
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
        messages = _messages(address)
        for raw, _ in messages:
            server.deliver(user, raw)

        rng = random.Random(42)
        interrupted = 0
        for _ in range(KILLS):
            task = asyncio.create_task(sync.sync_mailbox(app_runtime, mailbox_id))
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            assert server.proc is not None
            _kill_tree(server.proc.pid)
            server.proc.wait()
            report = await task
            interrupted += report.error is not None
            await asyncio.sleep(0.2)
            server.start()
        assert interrupted >= 1  # at least one kill landed mid-sync
        for _ in range(5):
            report = await sync.sync_mailbox(app_runtime, mailbox_id)
            if report.error is None and report.fetched == 0:
                break
        assert report.error is None

        rows = await ledger(app_runtime, mailbox_id)
        by_id = {r.internet_message_id: r for r in rows}
        assert len(rows) == MESSAGES and set(by_id) == {mid for _, mid in messages}
        assert all(r.state == "processed" and r.ticket_id for r in rows)
        tickets = await tickets_of(app_runtime, tenant.workspace_id)
        async with app_runtime.db.session(write=False) as session:
            comments = await session.scalar(
                select(func.count())
                .select_from(Comment)
                .where(Comment.workspace_id == tenant.workspace_id, Comment.kind == "customer")
            )
        assert len(tickets) + (comments or 0) == MESSAGES
        assert len([r for r in rows if r.comment_id]) == comments
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
