"""The plan step: the embedded legacy schema, schema drift reported, rows counted."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from enque.migrate.legacy_schema import (
    FOREIGN_KEYS,
    LOAD_ORDER,
    TABLES,
    enum_values,
    normalize_type,
)
from enque.migrate.plan import check_secrets, compare, run_plan
from enque.migrate.report import Report
from enque.migrate.source import ColumnInfo, LegacySource, SourceUrl
from enque.migrate.transform import LegacySecrets
from tests.legacy.generator import LEGACY_KEY, Manifest, Server, create_database, drop_database

SCHEMA = Path(__file__).with_name("mysql-schema.sql")


def test_embedded_schema_is_the_shipped_dump() -> None:
    text = SCHEMA.read_text()
    tables = dict(re.findall(r"CREATE TABLE `(\w+)` \((.*?)\n\) ENGINE", text, re.S))
    assert set(tables) == set(TABLES) == set(LOAD_ORDER)
    for table, body in tables.items():
        columns = re.findall(r"^\s+`(\w+)` (\w+(?:\([^)]*\))?(?: unsigned)?)(.*?),?$", body, re.M)
        assert [c[0] for c in columns] == list(TABLES[table]), table
        for name, column_type, rest in columns:
            known = TABLES[table][name]
            assert known.nullable == ("NOT NULL" not in rest), f"{table}.{name}"
            assert known.type == normalize_type(column_type, json_check="json_valid" in rest), (
                f"{table}.{name}"
            )


def test_embedded_foreign_keys_are_the_shipped_ones() -> None:
    found = re.findall(
        r"CREATE TABLE `(\w+)`|FOREIGN KEY \(`(\w+)`\) REFERENCES `(\w+)` \(`id`\)",
        SCHEMA.read_text(),
    )
    keys, table = [], ""
    for created, column, parent in found:
        if created:
            table = created
        else:
            keys.append((table, column, parent))
    assert tuple(keys) == FOREIGN_KEYS
    order = {name: n for n, name in enumerate(LOAD_ORDER)}
    late = {(t, c) for t, c, p in FOREIGN_KEYS if order[p] >= order[t]}
    assert late == {("companies", "primary_contact_id"), ("tickets", "merged_to_ticket_id")}


def test_type_normalisation() -> None:
    assert normalize_type("int(11)") == "int"
    assert normalize_type("TINYINT(1)") == "tinyint(1)"
    assert normalize_type("bigint(20) unsigned") == "bigint unsigned"
    assert normalize_type("longtext", json_check=True) == "json"
    assert normalize_type("enum('With User','Open')") == "enum('With User','Open')"
    assert enum_values("enum('With User','O''Neil')") == ("With User", "O''Neil")


def _columns(table: str) -> dict[str, ColumnInfo]:
    return {n: ColumnInfo(n, c.type, c.nullable, n == "id") for n, c in TABLES[table].items()}


def test_compare_pure() -> None:
    actual = {t: _columns(t) for t in TABLES}
    assert compare(actual).clean
    del actual["schedule"]
    actual["tickets"]["sla_level"] = ColumnInfo("sla_level", "varchar(20)", True, False)
    del actual["tickets"]["description"]
    actual["users"]["phone"] = ColumnInfo("phone", "varchar(20)", True, False)
    actual["users"]["name"] = ColumnInfo("name", "varchar(500)", False, False)  # wider: fine
    actual["workflows"]["conditions"] = ColumnInfo("conditions", "longtext", True, False)  # fine
    actual["legacy_custom"] = {"id": ColumnInfo("id", "int", False, True)}
    diff = compare(actual)
    assert diff.missing_tables == ["schedule"]
    assert diff.unknown_tables == ["legacy_custom"]
    assert diff.unknown_columns == {"tickets": ["sla_level"]}
    assert diff.missing_columns == {"tickets": ["description"]}
    assert diff.type_changes == {"users": {"phone": ("varchar(50)", "varchar(20)")}}


async def test_plan_of_the_generated_database_is_clean(legacy: Manifest) -> None:
    report = Report(source="test")
    async with LegacySource(SourceUrl.parse(legacy.url)) as source:
        diff = await run_plan(source, report)
        await check_secrets(source, LegacySecrets(LEGACY_KEY), report)
    assert diff.clean, diff
    assert report.exit_code == 0
    assert {(i.code, i.table, i.column) for i in report.issues} == {
        ("orphan_reference", "comments", "ticket_id"),
        ("orphan_reference", "tickets", "assignee_id"),
        ("orphan_reference", "tickets", "sent_from_id"),
        ("orphan_reference", "ticket_attachments", "comment_id"),
        ("orphan_reference", "canned_replies", "created_by_agent_id"),
        ("orphan_reference", "scheduled_comments", "ticket_id"),
        ("orphan_reference", "scheduled_comments", "agent_id"),
        ("orphan_reference", "activities", "agent_id"),
    }
    assert {t: s.source_rows for t, s in report.tables.items()} == legacy.counts
    assert report.facts["secrets"]["encrypted"] == report.facts["secrets"]["decrypted"] > 0
    assert report.facts["secrets"]["plaintext"] > 0


async def test_secrets_without_the_key_are_errors(legacy: Manifest) -> None:
    report = Report(source="test")
    async with LegacySource(SourceUrl.parse(legacy.url)) as source:
        await check_secrets(source, LegacySecrets(None), report)
    assert report.count("encrypted_secret") == report.facts["secrets"]["encrypted"] > 0
    assert report.exit_code == 1


@pytest.fixture
async def drifted(mariadb: Server, worker_id_suffix: str) -> AsyncIterator[str]:
    """An empty legacy database whose schema has drifted from the known one."""
    name = f"enque_legacy_drift_{worker_id_suffix}_{os.getpid()}"
    await create_database(mariadb, name)
    conn = await mariadb.connect(name)
    try:
        async with conn.cursor() as cur:
            await cur.execute("ALTER TABLE tickets ADD COLUMN sla_level varchar(20) DEFAULT NULL")
            await cur.execute("ALTER TABLE companies DROP COLUMN logo_url")
            await cur.execute("ALTER TABLE ticket_attachments DROP COLUMN file_name")
            await cur.execute("ALTER TABLE users MODIFY phone varchar(20) DEFAULT NULL")
            await cur.execute("CREATE TABLE custom_fields (id int PRIMARY KEY, label text)")
            await cur.execute("DROP TABLE `schedule`")
            await cur.execute("INSERT INTO workspaces (subdomain) VALUES ('a'), ('b')")
    finally:
        conn.close()
    yield mariadb.url(name)
    await drop_database(mariadb, name)


async def test_plan_reports_schema_drift(drifted: str) -> None:
    report = Report(source="test")
    async with LegacySource(SourceUrl.parse(drifted)) as source:
        diff = await run_plan(source, report)
    assert diff.unknown_columns == {"tickets": ["sla_level"]}
    found = {(i.code, i.table, i.column, i.level) for i in report.issues}
    assert found == {
        ("unknown_column", "tickets", "sla_level", "info"),
        ("missing_column", "companies", "logo_url", "warning"),
        ("missing_column", "ticket_attachments", "file_name", "error"),
        ("type_changed", "users", "phone", "warning"),
        ("unknown_table", "custom_fields", None, "warning"),
        ("missing_table", "schedule", None, "warning"),
    }
    assert report.exit_code == 1
    assert report.tables["workspaces"].source_rows == 2 and "schedule" not in report.tables
