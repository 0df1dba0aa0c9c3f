"""A migration killed with SIGKILL at random points, then run again, ends complete and
verified, with no duplicates; `--since` copies what changed after the cut-off."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from enque.comments.models import Comment
from enque.migrate.command import target_engine
from enque.migrate.models import LegacyCheckpoint, LegacyFile
from enque.tickets.models import Ticket
from tests.conftest import BACKEND, make_database_url
from tests.legacy.generator import LEGACY_KEY, Manifest, Server
from tests.legacy.s3server import MotoS3Server


def command(legacy: Manifest, s3: MotoS3Server, target: str, files: Path, *extra: str) -> list[str]:
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
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
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


async def test_killed_runs_resume_to_a_verified_copy(
    legacy: Manifest,
    s3_server: MotoS3Server,
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
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
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
    s3_server: MotoS3Server,
    tmp_path: Path,
    worker_id_suffix: str,
    mariadb: Server,
) -> None:
    target, cleanup = make_database_url(BACKEND, tmp_path, f"enque_since_{worker_id_suffix}")
    files = tmp_path / "files"
    cmd = command(legacy, s3_server, target, files)
    conn = await mariadb.connect(legacy.database)
    try:
        code, output = await run(cmd)
        assert code == 0, output
        async with conn.cursor() as cur:
            await cur.execute("SELECT title, updated_at FROM tickets WHERE id = 1")
            title, updated = await cur.fetchone()
            await cur.execute(
                "UPDATE tickets SET title = 'Changed during cut-over', "
                "updated_at = '2031-01-01 00:00:00' WHERE id = 1"
            )
        code, output = await run([*cmd, "--since", "2030-12-31T00:00:00Z"])
        assert code == 0, output
        engine = target_engine(target)
        try:
            async with engine.connect() as c:
                subject = await c.scalar(select(Ticket.subject).where(Ticket.number == 1))
                rows = await c.scalar(text("SELECT count(*) FROM tickets"))
        finally:
            await engine.dispose()
        assert subject == "Changed during cut-over"
        assert rows == legacy.counts["tickets"]
    finally:
        async with conn.cursor() as cur:
            await cur.execute(
                "UPDATE tickets SET title = %s, updated_at = %s WHERE id = 1", (title, updated)
            )
        conn.close()
        cleanup()


@pytest.fixture(autouse=True)
def _module_uses_the_session_database(legacy: Manifest) -> None:
    """Both tests read the session's legacy database (the second restores what it changes)."""
