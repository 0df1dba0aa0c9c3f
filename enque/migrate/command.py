"""`enque migrate legacy`: the steps in order, each recording into one report."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from enque.migrate import files
from enque.migrate.plan import check_secrets, run_plan
from enque.migrate.report import Report
from enque.migrate.source import LegacySource, SourceUrl
from enque.migrate.transform import LegacySecrets


@dataclass(frozen=True)
class LegacyOptions:
    source_url: str
    storage_from: str | None = None
    target: str | None = None
    storage_to: str | None = None
    legacy_key: str | None = None
    dry_run: bool = False
    since: int | None = None
    report_path: Path | None = None


def parse_since(value: str) -> int:
    """`--since`: Unix seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--since {value!r}: give Unix seconds or an ISO date/time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


async def run_legacy(options: LegacyOptions) -> Report:
    """Run the migration steps against the source and return their report.

    Steps: plan (schemas compared, rows counted, legacy secrets checked against the key,
    the legacy file store reached).
    """
    url = SourceUrl.parse(options.source_url)
    report = Report(
        source=url.redacted(),
        target=options.target,
        dry_run=options.dry_run,
        since=options.since,
    )
    if options.storage_to:
        report.facts["storage_to"] = options.storage_to
    async with LegacySource(url) as source:
        diff = await run_plan(source, report, since=options.since)
        if "microsoft_tokens" not in diff.missing_tables:
            await check_secrets(source, LegacySecrets(options.legacy_key), report)
    if options.storage_from:
        try:
            await files.reachable(files.open_store(options.storage_from))
            report.facts["storage_from"] = "reachable"
        except Exception as exc:
            report.issue("storage_unreachable", f"{type(exc).__name__}: {exc}", level="error")
    report.finish()
    if options.report_path is not None:
        report.write_json(options.report_path)
    return report
