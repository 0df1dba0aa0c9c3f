"""`enque migrate legacy` end to end: a legacy database on the real MariaDB server, its files
on a real S3-protocol server, loaded into SQLite or PostgreSQL (ENQUE_TEST_DB) and verified."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from enque.app import create_app
from enque.attachments.models import Attachment
from enque.comments.models import Comment
from enque.customers.models import User
from enque.mailboxes.models import EmailMessage
from enque.migrate.command import LegacyOptions, run_legacy, target_engine
from enque.migrate.models import LegacyCheckpoint, LegacyFile, LegacyIdMap
from enque.migrate.report import Report
from enque.tickets.models import Ticket, TicketBody, TicketCounter
from tests.conftest import BACKEND, make_database_url, settings_from
from tests.legacy.generator import EMOJI_TITLE, LEGACY_KEY, RTL_TEXT, Manifest
from tests.support.s3 import S3Server


def options(legacy: Manifest, s3: S3Server, target: str, files: Path, **kw: Any) -> Any:
    return LegacyOptions(
        source_url=legacy.url,
        storage_from=s3.storage_url(legacy.bucket or ""),
        target="target",
        legacy_key=LEGACY_KEY,
        target_url=target,
        storage_to_url=f"file://{files}",
        quiet=True,
        encryption_key="legacy-load-test-key",  # the target's, for the sealed secrets
        **kw,
    )


@pytest.fixture(scope="module")
def target_url(tmp_path_factory: pytest.TempPathFactory, worker_id_suffix: str) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("target")
    url, cleanup = make_database_url(BACKEND, folder, f"enque_migrated_{worker_id_suffix}")
    yield url
    cleanup()


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
async def migrated(
    legacy: Manifest, s3_server: S3Server, target_url: str, files_dir: Path
) -> Report:
    report = await run_legacy(options(legacy, s3_server, target_url, files_dir))
    assert report.exit_code == 0, report.summary()
    return report


@pytest.fixture
async def engine(migrated: Report, target_url: str) -> AsyncIterator[AsyncEngine]:
    engine = target_engine(target_url)
    yield engine
    await engine.dispose()


async def scalar(engine: AsyncEngine, stmt: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(stmt)


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Row counts and the newest change of the migrated tables."""
    found: dict[str, Any] = {}
    async with engine.connect() as conn:
        for table in (
            "workspaces",
            "agents",
            "users",
            "tickets",
            "ticket_bodies",
            "comments",
            "mailboxes",
            "microsoft_apps",
            "canned_replies",
            "workspace_signatures",
            "notification_settings",
            "automations",
        ):
            found[table] = tuple(
                (await conn.execute(text(f"SELECT count(*), max(updated_at) FROM {table}"))).one()
            )
        # sealed secrets are encrypted afresh on every write: a second write would show
        found["secrets"] = (
            await conn.execute(text("SELECT id, credentials FROM mailboxes ORDER BY id"))
        ).all()
        for table in ("email_messages", "legacy_files", "legacy_id_map"):
            found[table] = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
    return found


async def test_every_row_and_file_verified(migrated: Report, legacy: Manifest) -> None:
    checks = migrated.facts["verify"]
    for table in ("tickets", "comments", "users", "agents", "email_ticket_mapping"):
        check = checks[table]
        assert check["sourceRows"] == legacy.counts[table], table
        assert check["found"] == check["targetRowsExpected"] > 0, table
        assert check["missing"] == check["different"] == 0, table
    attachments = checks["ticket_attachments"]
    # every attachment with bytes in the source (one S3 object is missing, placeholders and
    # the orphan are left out)
    assert attachments["files"] >= legacy.counts["ticket_attachments"] - 6
    assert attachments["filesBad"] == 0
    assert migrated.count("missing_object") == 1
    assert migrated.count("placeholder_skipped") == 1
    assert migrated.tables["comments"].skipped == 2  # the placeholder and the orphan


async def test_tickets_keep_numbers_text_and_bodies(engine: AsyncEngine, legacy: Manifest) -> None:
    edge = legacy.edge
    async with engine.connect() as conn:
        ticket = (
            (await conn.execute(select(Ticket).where(Ticket.number == edge["ticket_emoji_rtl"])))
            .mappings()
            .one()
        )
        assert ticket["subject"] == EMOJI_TITLE
        body = await conn.scalar(
            select(TicketBody.original_html).where(TicketBody.ticket_id == ticket["id"])
        )
        assert RTL_TEXT in body
        big = await conn.scalar(
            select(func.length(TicketBody.original_html))
            .join(Ticket, Ticket.id == TicketBody.ticket_id)
            .where(Ticket.number == edge["ticket_big_body"])
        )
        assert big > 1_000_000
        zero = (
            (await conn.execute(select(Ticket).where(Ticket.number == edge["ticket_zero_dates"])))
            .mappings()
            .one()
        )
        assert zero["due_at"] is None and zero["created_at"] > 0
        missing_agent = await conn.scalar(
            select(Ticket.assignee_id).where(Ticket.number == edge["ticket_missing_agent"])
        )
        assert missing_agent is None
        merged = await conn.scalar(
            select(Ticket.merged_into_ticket_id).where(Ticket.number == edge["ticket_merged"])
        )
        assert merged == ticket["id"]
        highest = await conn.scalar(select(func.max(TicketCounter.last_number)))
        assert highest >= max(edge["ticket_emoji_rtl"], edge["ticket_legacy_body"])


async def test_comments_customers_and_s3_html(engine: AsyncEngine, legacy: Manifest) -> None:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(LegacyIdMap.old_id, LegacyIdMap.new_id).where(
                LegacyIdMap.source_table == "comments"
            )
        )
        ids: dict[str, str] = {old: new for old, new in result.all()}
        big = (
            (
                await conn.execute(
                    select(Comment).where(Comment.id == ids[str(legacy.edge["comment_s3_big"])])
                )
            )
            .mappings()
            .one()
        )
        assert big["kind"] == "customer" and big["author_type"] == "user"
        assert "🚀" in big["content"] and "original-sender" not in big["content"]
        assert str(legacy.edge["comment_orphan"]) not in ids
        assert str(legacy.edge["comment_placeholder"]) not in ids
        note = await conn.scalar(
            select(Comment.kind).where(Comment.id == ids[str(legacy.edge["comment_null_private"])])
        )
        assert note == "note"
        # the same address in two workspaces: two customers
        dup = await conn.scalar(
            select(func.count()).select_from(User).where(User.email == "dup@shared.example")
        )
        assert dup == 2
        image = await conn.scalar(
            select(Comment.content).where(Comment.id == ids[str(legacy.edge["comment_data_image"])])
        )
        assert "cid:" in image


async def test_files_copied_with_their_hash(
    engine: AsyncEngine, legacy: Manifest, files_dir: Path, s3_server: S3Server
) -> None:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(LegacyFile))).mappings().all()
    by_key = {r["source_key"]: r for r in rows}
    assert str(legacy.edge["attachment_s3_missing"]) not in by_key
    assert str(legacy.edge["attachment_placeholder_1"]) not in by_key
    present = by_key[str(legacy.edge["attachment_s3"])]
    original = await obstore.get_async(
        s3_server.store(legacy.bucket or ""), "documents/present.png"
    )
    data = bytes(await original.bytes_async())
    stored = (files_dir / present["storage_key"]).read_bytes()
    assert stored == data and present["sha256"] == hashlib.sha256(data).hexdigest()
    blob = by_key[str(legacy.edge["attachment_blob"])]
    assert blob["file_name"] == "résumé 😀.txt"
    assert (files_dir / blob["storage_key"]).read_bytes() == ("Ünïcödé résumé 😀 " * 200).encode()
    inline = [r for r in rows if r["is_inline"]]
    assert inline and all(r["content_id"].endswith("@legacy.enque") for r in inline)


async def test_files_of_comments_are_attachments_of_their_thread(
    engine: AsyncEngine, legacy: Manifest
) -> None:
    async with engine.connect() as conn:
        files = (await conn.execute(select(LegacyFile))).mappings().all()
        attachments = {
            a["id"]: a for a in (await conn.execute(select(Attachment))).mappings().all()
        }
        ticket_of = dict((await conn.execute(select(Comment.id, Comment.ticket_id))).all())
    of_comments = [f for f in files if f["comment_id"] in ticket_of]
    assert of_comments
    for file in of_comments:
        attachment = attachments[file["id"]]
        assert attachment["comment_id"] == file["comment_id"]
        assert attachment["ticket_id"] == ticket_of[file["comment_id"]]
        assert (attachment["storage_key"], attachment["sha256"], attachment["size"]) == (
            file["storage_key"],
            file["sha256"],
            file["size"],
        )
        assert attachment["linked_at"] is not None  # never taken for an orphan upload


async def test_ingested_mail_is_in_the_ledger(engine: AsyncEngine, legacy: Manifest) -> None:
    async with engine.connect() as conn:
        providers = set((await conn.execute(select(EmailMessage.provider_id))).scalars().all())
    assert "AAMkAD-edge-zero" in providers
    assert len(providers) == legacy.counts["email_ticket_mapping"]


async def test_second_run_changes_nothing(
    engine: AsyncEngine,
    legacy: Manifest,
    s3_server: S3Server,
    target_url: str,
    files_dir: Path,
) -> None:
    before = await snapshot(engine)
    report = await run_legacy(options(legacy, s3_server, target_url, files_dir))
    assert report.exit_code == 0, report.summary()
    assert await snapshot(engine) == before
    async with engine.connect() as conn:
        done = await conn.scalar(
            select(func.count())
            .select_from(LegacyCheckpoint)
            .where(LegacyCheckpoint.done_at.is_(None))
        )
    assert done == 0


async def test_verify_finds_changed_rows_and_files(
    engine: AsyncEngine,
    legacy: Manifest,
    s3_server: S3Server,
    target_url: str,
    files_dir: Path,
) -> None:
    async with engine.begin() as conn:
        victim = await conn.scalar(
            select(Comment.id).where(Comment.kind == "reply").order_by(Comment.id).limit(1)
        )
        old, old_at = (
            await conn.execute(
                select(Comment.content, Comment.updated_at).where(Comment.id == victim)
            )
        ).one()
        await conn.execute(
            Comment.__table__.update().where(Comment.id == victim).values(content="tampered")
        )
        stored = (await conn.execute(select(LegacyFile.storage_key).limit(1))).scalar_one()
    path = files_dir / stored
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    try:
        report = await run_legacy(
            options(legacy, s3_server, target_url, files_dir, verify_only=True)
        )
        assert report.exit_code == 1
        assert report.count("row_differs") == 1 and report.count("file_differs") == 1
        assert "content, updated_at differ" in report.summary()
    finally:
        path.write_bytes(data)
        async with engine.begin() as conn:
            await conn.execute(
                Comment.__table__.update()
                .where(Comment.id == victim)
                .values(content=old, updated_at=old_at)
            )
    report = await run_legacy(options(legacy, s3_server, target_url, files_dir, verify_only=True))
    assert report.exit_code == 0, report.summary()


async def test_old_passwords_sign_in(
    engine: AsyncEngine, legacy: Manifest, target_url: str, base_env: dict[str, str]
) -> None:
    """Runs last: signing in upgrades the stored hash, which a verify would then report."""
    app = create_app(settings_from(base_env, database_url=target_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as http:
            for email, password in legacy.passwords.items():
                response = await http.post(
                    "/v1/auth/login", json={"email": email, "password": password}
                )
                assert response.status_code == 200, (email, response.text)
            wrong = await http.post(
                "/v1/auth/login", json={"email": "admin@legacy1.test", "password": "nope-nope"}
            )
            assert wrong.status_code == 401
