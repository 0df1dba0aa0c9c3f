"""A migration killed with SIGKILL at random points, then run again, ends complete and
verified, with no duplicates; `--since` copies what changed after the cut-off."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from enque.activity.models import Activity
from enque.automations.models import Automation
from enque.canned.models import CannedReply
from enque.comments.models import Comment
from enque.core.crypto import Cipher
from enque.core.secrets import unseal
from enque.mailboxes.models import Mailbox
from enque.migrate.command import target_engine
from enque.migrate.models import LegacyCheckpoint, LegacyFile
from enque.notifications.models import NotificationSetting
from enque.scheduled_replies.models import ScheduledReply
from enque.tickets.models import Ticket
from tests.conftest import BACKEND, make_database_url
from tests.legacy.generator import LEGACY_KEY, Manifest, Server
from tests.support.s3 import S3Server

# the target's key, given to every run (the server would read the secrets with it)
ENCRYPTION_KEY = "resume-test-encryption-key"
ENV = {**os.environ, "ENCRYPTION_KEY": ENCRYPTION_KEY}


def command(legacy: Manifest, s3: S3Server, target: str, files: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from enque.cli import main; main()",
        "migrate",
        "legacy",
        "--from",
        legacy.url,
        "--files",
        s3.storage_url(legacy.bucket or ""),
        "--to",
        target,
        "--storage-to",
        f"file://{files}",
        "--legacy-encryption-key",
        LEGACY_KEY,
        *extra,
    ]


async def run(cmd: list[str]) -> tuple[int, str]:
    """Run a command to its end: exit code and output (stdout then stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def progress(target: str) -> int:
    """Source rows the committed batches have covered so far (0 before the first)."""
    engine = target_engine(target)
    try:
        async with engine.connect() as conn:
            exists = await conn.run_sync(
                lambda sync: sync.dialect.has_table(sync, "legacy_checkpoints")
            )
            if not exists:
                return 0
            return int(await conn.scalar(select(func.coalesce(func.sum(LegacyCheckpoint.rows), 0))))
    finally:
        await engine.dispose()


async def reached(target: str, table: str) -> bool:
    """Whether a batch of `table` has been committed (its checkpoint exists)."""
    engine = target_engine(target)
    try:
        async with engine.connect() as conn:
            exists = await conn.run_sync(
                lambda sync: sync.dialect.has_table(sync, "legacy_checkpoints")
            )
            if not exists:
                return False
            found = await conn.scalar(
                select(func.count())
                .select_from(LegacyCheckpoint)
                .where(LegacyCheckpoint.source_table == table)
            )
            return bool(found)
    finally:
        await engine.dispose()


async def count(target: str, model: object) -> int:
    engine = target_engine(target)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(model)))  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def test_killed_in_each_new_table_resumes_to_a_verified_copy(
    legacy: Manifest,
    s3_server: S3Server,
    tmp_path: Path,
    worker_id_suffix: str,
) -> None:
    """One row per batch; each run is killed right after its first committed batch of the
    next table (mailboxes and what folds into them, scheduled replies, settings, rules, the
    audit log), then a run completes."""
    target, cleanup = make_database_url(BACKEND, tmp_path, f"enque_resume_new_{worker_id_suffix}")
    files = tmp_path / "files"
    cmd = command(legacy, s3_server, target, files, "--batch-size", "1")
    try:
        kills = 0
        for table in (
            "mailbox_connections",
            "microsoft_tokens",
            "scheduled_comments",
            "canned_replies",
            "notification_settings",
            "automations",
            "automation_actions",
            "workflows",
            "activities",
        ):
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=ENV,
            )
            deadline = time.monotonic() + 180
            while proc.returncode is None and time.monotonic() < deadline:
                if await reached(target, table):
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
                    break
                await asyncio.sleep(0.01)
            code = await asyncio.wait_for(proc.wait(), timeout=60)
            assert code in (0, -signal.SIGKILL), code
        assert kills >= 7, "the runs finished before they could be killed"
        code, output = await run(cmd)
        assert code == 0, output
        again, output = await run([*cmd, "--verify-only"])
        assert again == 0, output
        # every row once (derived ids: a batch written again adds nothing)
        assert await count(target, Mailbox) == legacy.counts["mailbox_connections"]
        assert await count(target, CannedReply) == legacy.counts["canned_replies"]
        rules = await count(target, Automation)
        settings = await count(target, NotificationSetting)
        later = await count(target, ScheduledReply)
        log = await count(target, Activity)
    finally:
        cleanup()
    clean, clean_cleanup = make_database_url(
        BACKEND, tmp_path, f"enque_resume_clean_{worker_id_suffix}"
    )
    try:
        code, output = await run(command(legacy, s3_server, clean, tmp_path / "clean"))
        assert code == 0, output
        assert (
            await count(clean, Automation),
            await count(clean, NotificationSetting),
            await count(clean, ScheduledReply),
            await count(clean, Activity),
        ) == (rules, settings, later, log)
    finally:
        clean_cleanup()


async def test_killed_runs_resume_to_a_verified_copy(
    legacy: Manifest,
    s3_server: S3Server,
    tmp_path: Path,
    worker_id_suffix: str,
) -> None:
    target, cleanup = make_database_url(BACKEND, tmp_path, f"enque_resume_{worker_id_suffix}")
    files = tmp_path / "files"
    rng = random.Random(int(os.environ.get("RESUME_SEED", "11")))
    cmd = command(legacy, s3_server, target, files, "--batch-size", "3", "--resume")
    try:
        kills = 0
        done = 0
        for _ in range(4):
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=ENV,
            )
            goal = done + rng.randint(10, 120)
            deadline = time.monotonic() + 120
            while proc.returncode is None and time.monotonic() < deadline:
                done = await progress(target)
                if done >= goal:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
                    break
                await asyncio.sleep(0.02)
            code = await asyncio.wait_for(proc.wait(), timeout=60)
            if code == 0:
                break
            assert code == -signal.SIGKILL, code
        assert kills >= 2, "the runs finished before they could be killed"
        code, output = await run(cmd)
        assert code == 0, output
        assert "result: ok" in output
        engine = target_engine(target)
        try:
            async with engine.connect() as conn:
                tickets = await conn.scalar(select(func.count()).select_from(Ticket))
                numbers = await conn.scalar(select(func.count(func.distinct(Ticket.number))))
                comments = await conn.scalar(select(func.count()).select_from(Comment))
                copied = await conn.scalar(select(func.count()).select_from(LegacyFile))
                pending = await conn.scalar(
                    select(func.count())
                    .select_from(LegacyCheckpoint)
                    .where(LegacyCheckpoint.done_at.is_(None))
                )
        finally:
            await engine.dispose()
        # every source row once: the orphan comment and the placeholder are left out
        assert tickets == numbers == legacy.counts["tickets"]
        assert comments == legacy.counts["comments"] - 2
        assert copied > 0 and pending == 0
        code, output = await run([*cmd, "--verify-only"])
        assert code == 0, output
    finally:
        cleanup()


async def test_since_copies_changed_rows(
    legacy: Manifest,
    s3_server: S3Server,
    tmp_path: Path,
    worker_id_suffix: str,
    mariadb: Server,
) -> None:
    """During the cut-over the old system keeps working: a ticket is edited, a mailbox token
    refreshed, a canned reply renamed, a rule's action changed (its row has no change time:
    rules are read whole). The `--since` run brings each over, and nothing else."""
    target, cleanup = make_database_url(BACKEND, tmp_path, f"enque_since_{worker_id_suffix}")
    files = tmp_path / "files"
    cmd = command(legacy, s3_server, target, files)
    token = legacy.edge["token_plaintext"]
    later = "2031-01-01 00:00:00"
    conn = await mariadb.connect(legacy.database)
    saved: dict[str, tuple[object, ...]] = {}
    try:
        code, output = await run(cmd)
        assert code == 0, output
        async with conn.cursor() as cur:
            for name, sql in (
                ("ticket", "SELECT title, updated_at FROM tickets WHERE id = 1"),
                (
                    "token",
                    f"SELECT access_token, updated_at FROM microsoft_tokens WHERE id = {token}",
                ),
                ("canned", "SELECT name, updated_at FROM canned_replies WHERE id = 1"),
                ("action", "SELECT action_value FROM automation_actions WHERE id = 1"),
            ):
                await cur.execute(sql)
                saved[name] = tuple(await cur.fetchone())
            await cur.execute(
                f"UPDATE tickets SET title = 'Changed during cut-over', updated_at = '{later}' "
                "WHERE id = 1"
            )
            await cur.execute(
                f"UPDATE microsoft_tokens SET access_token = 'rotated-access-token', "
                f"updated_at = '{later}' WHERE id = {token}"
            )
            await cur.execute(
                f"UPDATE canned_replies SET name = 'Renamed', updated_at = '{later}' WHERE id = 1"
            )
            await cur.execute("UPDATE automation_actions SET action_value = 'Low' WHERE id = 1")
        code, output = await run([*cmd, "--since", "2030-12-31T00:00:00Z"])
        assert code == 0, output
        engine = target_engine(target)
        try:
            async with engine.connect() as c:
                subject = await c.scalar(select(Ticket.subject).where(Ticket.number == 1))
                rows = await c.scalar(text("SELECT count(*) FROM tickets"))
                names = set((await c.execute(select(CannedReply.name))).scalars())
                mailboxes = [
                    Mailbox(**row)
                    for row in (await c.execute(select(Mailbox.__table__))).mappings()
                ]
                actions = [
                    a for r in (await c.execute(select(Automation.actions))).scalars() for a in r
                ]
        finally:
            await engine.dispose()
        assert subject == "Changed during cut-over"
        assert rows == legacy.counts["tickets"]
        assert "Renamed" in names
        cipher = Cipher(ENCRYPTION_KEY)
        tokens = {m.email: unseal(cipher, m, "credentials") for m in mailboxes}
        assert tokens["support@legacy2.test"]["access_token"] == "rotated-access-token"  # type: ignore[index]
        assert tokens["support@legacy1.test"]["access_token"] == "access-token-mailbox-1"  # type: ignore[index]
        assert {"type": "set_priority", "value": "Low"} in actions
    finally:
        async with conn.cursor() as cur:
            if "ticket" in saved:
                await cur.execute(
                    "UPDATE tickets SET title = %s, updated_at = %s WHERE id = 1", saved["ticket"]
                )
            if "token" in saved:
                await cur.execute(
                    "UPDATE microsoft_tokens SET access_token = %s, updated_at = %s WHERE id = %s",
                    (*saved["token"], token),
                )
            if "canned" in saved:
                await cur.execute(
                    "UPDATE canned_replies SET name = %s, updated_at = %s WHERE id = 1",
                    saved["canned"],
                )
            if "action" in saved:
                await cur.execute(
                    "UPDATE automation_actions SET action_value = %s WHERE id = 1", saved["action"]
                )
        conn.close()
        cleanup()


async def test_since_copies_changed_scheduled_replies_and_audit_entries(
    legacy: Manifest,
    s3_server: S3Server,
    tmp_path: Path,
    worker_id_suffix: str,
    mariadb: Server,
) -> None:
    """During the cut-over an agent cancels a scheduled reply and schedules another, and the
    feed records two actions (the old code left `updated_at` empty on some). The `--since`
    run brings those four rows over, reads no other row of the two tables, and verifies."""
    target, cleanup = make_database_url(BACKEND, tmp_path, f"enque_since_log_{worker_id_suffix}")
    cmd = command(legacy, s3_server, target, tmp_path / "files")
    later = "2031-01-01 00:00:00"
    cancelled = legacy.edge["scheduled_future"]
    conn = await mariadb.connect(legacy.database)
    saved: tuple[object, ...] | None = None
    added: dict[str, list[int]] = {"scheduled_comments": [], "activities": []}
    try:
        code, output = await run(cmd)
        assert code == 0, output
        before = await count(target, ScheduledReply), await count(target, Activity)
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT content, status, updated_at FROM scheduled_comments WHERE id = %s",
                (cancelled,),
            )
            saved = tuple(await cur.fetchone())
            await cur.execute(
                "UPDATE scheduled_comments SET content = '<p>Not needed</p>', "
                "status = 'cancelled', updated_at = %s WHERE id = %s",
                (later, cancelled),
            )
            await cur.execute(
                "SELECT ticket_id, agent_id, workspace_id FROM scheduled_comments WHERE id = %s",
                (cancelled,),
            )
            ticket, agent, workspace = await cur.fetchone()
            await cur.execute(
                "INSERT INTO scheduled_comments (ticket_id, agent_id, workspace_id, content, "
                "is_private, scheduled_send_at, status, created_at, updated_at, retry_count) "
                "VALUES (%s, %s, %s, '<p>Scheduled during cut-over</p>', 0, "
                "'2042-01-01 09:00:00', 'pending', %s, %s, 0)",
                (ticket, agent, workspace, later, later),
            )
            added["scheduled_comments"].append(cur.lastrowid)
            for action, updated in (
                ("closed ticket during cut-over", later),
                ("assigned ticket during cut-over", None),
            ):
                await cur.execute(
                    "INSERT INTO activities (agent_id, action, source_type, source_id, "
                    "workspace_id, created_at, updated_at) "
                    "VALUES (%s, %s, 'Ticket', %s, %s, %s, %s)",
                    (agent, action, ticket, workspace, later, updated),
                )
                added["activities"].append(cur.lastrowid)
        code, output = await run([*cmd, "--since", "2030-12-31T00:00:00Z"])
        assert code == 0, output
        assert "result: ok" in output
        engine = target_engine(target)
        try:
            async with engine.connect() as c:
                read = dict(
                    (
                        await c.execute(
                            select(LegacyCheckpoint.source_table, LegacyCheckpoint.rows).where(
                                LegacyCheckpoint.source_table.in_(added)
                            )
                        )
                    ).all()
                )
                replies = {
                    r.content: r for r in (await c.execute(select(ScheduledReply.__table__))).all()
                }
                verbs = {
                    a["legacyAction"]: verb
                    for verb, a in (await c.execute(select(Activity.verb, Activity.after))).all()
                }
        finally:
            await engine.dispose()
        # only the changed rows were read again
        assert read == {"scheduled_comments": 2, "activities": 2}
        assert (await count(target, ScheduledReply), await count(target, Activity)) == (
            before[0] + 1,
            before[1] + 2,
        )
        assert replies["<p>Not needed</p>"].status == "cancelled"
        assert replies["<p>Not needed</p>"].cancelled_at == int(
            datetime(2031, 1, 1, tzinfo=UTC).timestamp()
        )
        assert replies["<p>Scheduled during cut-over</p>"].status == "pending"
        assert verbs["closed ticket during cut-over"] == "ticket.status_changed"
        assert verbs["assigned ticket during cut-over"] == "ticket.assigned"
    finally:
        async with conn.cursor() as cur:
            if saved is not None:
                await cur.execute(
                    "UPDATE scheduled_comments SET content = %s, status = %s, updated_at = %s "
                    "WHERE id = %s",
                    (*saved, cancelled),
                )
            for table, ids in added.items():
                for new in ids:
                    await cur.execute(f"DELETE FROM {table} WHERE id = %s", (new,))
        conn.close()
        cleanup()


@pytest.fixture(autouse=True)
def _module_uses_the_session_database(legacy: Manifest) -> None:
    """Both tests read the session's legacy database (the second restores what it changes)."""
