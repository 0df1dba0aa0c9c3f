"""The legacy database builder makes every edge case of the migration spec."""

from __future__ import annotations

from typing import Any

import obstore

from enque.core.security import verify_password
from enque.migrate.legacy_schema import TABLES
from enque.migrate.report import Report, RowContext
from enque.migrate.transform import LegacySecrets, looks_fernet
from tests.legacy.generator import (
    EMOJI_TITLE,
    LEGACY_KEY,
    MISSING_ID,
    PLACEHOLDER,
    ZERO_DATE,
    Manifest,
    Server,
)
from tests.support.s3 import S3Server


async def query(server: Server, m: Manifest, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await server.connect(m.database)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())
    finally:
        conn.close()


async def one(server: Server, m: Manifest, sql: str, *args: Any) -> Any:
    return (await query(server, m, sql, *args))[0][0]


async def test_every_table_is_filled(mariadb: Server, legacy: Manifest) -> None:
    for table in TABLES:
        count = await one(mariadb, legacy, f"SELECT COUNT(*) FROM `{table}`")
        assert count == legacy.counts[table] > 0, table


async def test_every_nullable_column_holds_a_null(mariadb: Server, legacy: Manifest) -> None:
    for table, columns in TABLES.items():
        for name, column in columns.items():
            if column.nullable:
                nulls = await one(
                    mariadb, legacy, f"SELECT COUNT(*) FROM `{table}` WHERE `{name}` IS NULL"
                )
                assert nulls > 0, f"{table}.{name}"


async def test_zero_and_partial_dates_are_stored(mariadb: Server, legacy: Manifest) -> None:
    created, updated = (
        await query(
            mariadb,
            legacy,
            "SELECT created_at, updated_at FROM tickets WHERE id = %s",
            legacy.edge["ticket_zero_dates"],
        )
    )[0]
    assert created == ZERO_DATE
    assert updated == "2019-00-10 00:00:00"
    zero_comments = await one(
        mariadb, legacy, "SELECT COUNT(*) FROM comments WHERE created_at = %s", ZERO_DATE
    )
    assert zero_comments >= 1


async def test_four_byte_utf8_and_rtl_round_trip(mariadb: Server, legacy: Manifest) -> None:
    title = await one(
        mariadb, legacy, "SELECT title FROM tickets WHERE id = %s", legacy.edge["ticket_emoji_rtl"]
    )
    assert title == EMOJI_TITLE
    name = await one(
        mariadb, legacy, "SELECT name FROM users WHERE id = %s", legacy.edge["user_rtl"]
    )
    assert name == "دانا כהן"


async def test_multi_megabyte_body(mariadb: Server, legacy: Manifest) -> None:
    size = await one(
        mariadb,
        legacy,
        "SELECT LENGTH(email_body) FROM ticket_bodies WHERE ticket_id = %s",
        legacy.edge["ticket_big_body"],
    )
    assert size > 3_000_000


async def test_orphans(mariadb: Server, legacy: Manifest) -> None:
    ticket = await one(
        mariadb,
        legacy,
        "SELECT ticket_id FROM comments WHERE id = %s",
        legacy.edge["comment_orphan"],
    )
    assert ticket == MISSING_ID
    assert await one(mariadb, legacy, "SELECT COUNT(*) FROM tickets WHERE id = %s", MISSING_ID) == 0
    assignee = await one(
        mariadb,
        legacy,
        "SELECT assignee_id FROM tickets WHERE id = %s",
        legacy.edge["ticket_missing_agent"],
    )
    assert await one(mariadb, legacy, "SELECT COUNT(*) FROM agents WHERE id = %s", assignee) == 0


async def test_customer_email_in_two_workspaces(mariadb: Server, legacy: Manifest) -> None:
    rows = await query(
        mariadb,
        legacy,
        "SELECT workspace_id FROM users WHERE email = 'dup@shared.example' UNION ALL "
        "SELECT workspace_id FROM unassigned_users WHERE email = 'dup@shared.example'",
    )
    assert sorted(r[0] for r in rows) == [1, 2]


async def test_invalid_enum_is_stored_empty(mariadb: Server, legacy: Manifest) -> None:
    status = await one(
        mariadb,
        legacy,
        "SELECT status FROM tickets WHERE id = %s",
        legacy.edge["ticket_bad_status"],
    )
    assert status == ""


async def test_agent_passwords_are_old_bcrypt(mariadb: Server, legacy: Manifest) -> None:
    rows = dict(
        await query(
            mariadb, legacy, "SELECT email, password FROM agents WHERE password IS NOT NULL"
        )
    )
    prefixes = {rows[email][:4] for email in legacy.passwords}
    assert prefixes == {"$2b$", "$2y$"}
    assert any(len(p.encode()) > 72 for p in legacy.passwords.values())
    for email, password in legacy.passwords.items():
        assert verify_password(password, rows[email]), email
        assert not verify_password(password + "x", rows[email]), email


async def test_secrets_encrypted_the_old_way(mariadb: Server, legacy: Manifest) -> None:
    rows = await query(mariadb, legacy, "SELECT id, access_token FROM microsoft_tokens ORDER BY id")
    encrypted = [value for _, value in rows if looks_fernet(value)]
    plaintext = [value for _, value in rows if not looks_fernet(value)]
    assert encrypted and plaintext
    ctx = RowContext(Report(source="test"), "microsoft_tokens")
    revealed = [LegacySecrets(LEGACY_KEY).reveal(v, ctx, "access_token") for v in encrypted]
    assert all(v and v.startswith("access-token-") for v in revealed)


async def test_comment_shapes(mariadb: Server, legacy: Manifest) -> None:
    markers = await one(
        mariadb, legacy, "SELECT COUNT(*) FROM comments WHERE content LIKE '<original-sender>%%'"
    )
    in_s3 = await one(
        mariadb, legacy, "SELECT COUNT(*) FROM comments WHERE s3_html_url IS NOT NULL"
    )
    placeholder = await one(
        mariadb,
        legacy,
        "SELECT content FROM comments WHERE id = %s",
        legacy.edge["comment_placeholder"],
    )
    images = await one(
        mariadb,
        legacy,
        "SELECT content FROM comments WHERE id = %s",
        legacy.edge["comment_data_image"],
    )
    assert markers > 5 and in_s3 >= 2 and placeholder == PLACEHOLDER
    assert "data:image/png;base64," in images


async def test_attachments_inline_and_in_s3(
    mariadb: Server, legacy: Manifest, s3_server: S3Server
) -> None:
    blobs = await one(
        mariadb, legacy, "SELECT COUNT(*) FROM ticket_attachments WHERE content_bytes IS NOT NULL"
    )
    urls = [
        r[0]
        for r in await query(
            mariadb, legacy, "SELECT s3_url FROM ticket_attachments WHERE s3_url IS NOT NULL"
        )
    ]
    assert blobs > 0 and len(urls) > 1
    store = s3_server.store(legacy.bucket or "")
    listed = {meta["path"] async for chunk in obstore.list(store) for meta in chunk}
    assert set(legacy.s3_objects) == listed
    assert legacy.missing_s3_key not in listed
    assert legacy.inline_image_key in listed
    assert any(url.endswith(legacy.missing_s3_key or "?") for url in urls)
