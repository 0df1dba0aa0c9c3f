"""The plan step: the source's schema against the known legacy schema, and what will move.

Unknown tables are reported (not migrated); unknown columns of known tables are reported
and kept in the target's `legacy_extra` JSON; missing tables count as empty; a missing
column that the legacy schema declares NOT NULL is an error (the rows cannot be read
faithfully), a missing nullable one a warning (read as NULL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enque.migrate.legacy_schema import FOREIGN_KEYS, LOAD_ORDER, TABLES
from enque.migrate.report import Issue, Report, RowContext
from enque.migrate.source import ColumnInfo, LegacySource, quote
from enque.migrate.transform import LegacySecrets, looks_fernet

# A known type → types the source may report instead without any loss.
_COMPATIBLE = {
    "json": {"json", "longtext"},
    "text": {"text", "mediumtext", "longtext"},
    "blob": {"blob", "mediumblob", "longblob"},
    "int": {"int", "bigint"},
}


@dataclass
class SchemaDiff:
    unknown_tables: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    unknown_columns: dict[str, list[str]] = field(default_factory=dict)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    type_changes: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (
            self.unknown_tables
            or self.missing_tables
            or self.unknown_columns
            or self.missing_columns
            or self.type_changes
        )


def compare(actual: dict[str, dict[str, ColumnInfo]]) -> SchemaDiff:
    """What differs between the source's tables and the known legacy schema."""
    diff = SchemaDiff()
    diff.unknown_tables = sorted(set(actual) - set(TABLES))
    diff.missing_tables = [t for t in LOAD_ORDER if t not in actual]
    for table in LOAD_ORDER:
        if table not in actual:
            continue
        known, found = TABLES[table], actual[table]
        extra = [c for c in found if c not in known]
        missing = [c for c in known if c not in found]
        if extra:
            diff.unknown_columns[table] = extra
        if missing:
            diff.missing_columns[table] = missing
        for name, column in known.items():
            if name in found and not _same_type(column.type, found[name].type):
                diff.type_changes.setdefault(table, {})[name] = (column.type, found[name].type)
    return diff


def _same_type(known: str, found: str) -> bool:
    if known == found:
        return True
    if known.startswith("varchar(") and found.startswith("varchar("):
        return int(found[8:-1]) >= int(known[8:-1])
    return found in _COMPATIBLE.get(known, set())


def record_diff(diff: SchemaDiff, report: Report) -> None:
    """One report line per difference, with the level the module docstring gives."""
    for table in diff.unknown_tables:
        report.add(
            Issue("unknown_table", "not part of the legacy schema: not migrated", table=table)
        )
    for table in diff.missing_tables:
        report.add(Issue("missing_table", "absent from the source: migrated as empty", table=table))
    for table, columns in diff.unknown_columns.items():
        for column in columns:
            report.add(
                Issue(
                    "unknown_column",
                    "not part of the legacy schema: kept in legacy_extra",
                    table=table,
                    column=column,
                    level="info",
                )
            )
    for table, columns in diff.missing_columns.items():
        for column in columns:
            required = not TABLES[table][column].nullable
            report.add(
                Issue(
                    "missing_column",
                    "required by the legacy schema" if required else "read as NULL",
                    table=table,
                    column=column,
                    level="error" if required else "warning",
                )
            )
    for table, changes in diff.type_changes.items():
        for column, (known, found) in changes.items():
            report.add(
                Issue(
                    "type_changed",
                    f"expected {known}, found {found}",
                    table=table,
                    column=column,
                )
            )


async def run_plan(source: LegacySource, report: Report, *, since: int | None = None) -> SchemaDiff:
    """Compare schemas, count the rows of every table that will be migrated, find orphans."""
    report.steps.append("plan")
    report.facts["server"] = await source.server_version()
    columns = await source.columns()
    diff = compare(columns)
    record_diff(diff, report)
    await check_orphans(source, columns, report)
    for table in LOAD_ORDER:
        if table in diff.missing_tables:
            continue
        stats = report.table(table)
        stats.source_rows = await source.count(table)
        if since is not None:
            stats.changed_rows = await source.count(table, since=since)
    return diff


async def check_orphans(
    source: LegacySource, columns: dict[str, dict[str, ColumnInfo]], report: Report
) -> None:
    """One finding per foreign key whose values point at rows that no longer exist.

    The old schema did not always cascade (a comment can outlive its ticket, a ticket its
    agent): the load sets such references to NULL where the target allows it.
    """
    for table, column, parent in FOREIGN_KEYS:
        if column not in columns.get(table, {}) or "id" not in columns.get(parent, {}):
            continue
        sql = (
            f"SELECT COUNT(*) FROM {quote(table)} c LEFT JOIN {quote(parent)} p "
            f"ON p.id = c.{quote(column)} WHERE c.{quote(column)} IS NOT NULL AND p.id IS NULL"
        )
        orphans = (await source.fetch(sql))[0][0]
        if orphans:
            report.add(
                Issue(
                    "orphan_reference",
                    f"{orphans} row(s) point to a missing {parent} row",
                    table=table,
                    column=column,
                )
            )


# Columns where the old system may have stored a Fernet token (or, before it encrypted
# anything, the plaintext).
SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "agents": ("microsoft_refresh_token",),
    "microsoft_integration": ("client_secret",),
    "microsoft_tokens": ("access_token", "refresh_token"),
}


async def check_secrets(source: LegacySource, secrets: LegacySecrets, report: Report) -> None:
    """Count plaintext and encrypted secrets; every one that will not decrypt is an error."""
    counts = {"plaintext": 0, "encrypted": 0, "decrypted": 0}
    present = await source.columns()
    for table, columns in SECRET_COLUMNS.items():
        usable = [c for c in columns if c in present.get(table, {})]
        if not usable:
            continue
        async for rows in source.stream(table):
            for row in rows:
                ctx = RowContext(report, table, row["id"])
                for column in usable:
                    value = row[column]
                    if not value:
                        continue
                    if not looks_fernet(value):
                        counts["plaintext"] += 1
                        continue
                    counts["encrypted"] += 1
                    if secrets.reveal(value, ctx, column) is not None:
                        counts["decrypted"] += 1
    report.facts["secrets"] = counts
