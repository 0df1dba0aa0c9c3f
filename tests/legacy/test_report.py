"""The report: exact counts with bounded samples, exit code, JSON and summary."""

from __future__ import annotations

from pathlib import Path

import orjson

from enque.migrate.report import Issue, Report, RowContext


def test_counts_are_exact_and_samples_bounded() -> None:
    report = Report(source="mysql://root@db:3306/old", sample_limit=3)
    ctx = RowContext(report, "comments")
    for n in range(10):
        ctx.at(n).issue("created_at", "invalid_date", "became NULL")
    report.add(Issue("bad_email", "not an address", table="users", row_id=4, level="error"))
    assert report.count("invalid_date") == 10
    assert len([i for i in report.issues if i.code == "invalid_date"]) == 3
    assert report.count(level="error") == 1 and report.exit_code == 1


def test_json_and_summary(tmp_path: Path) -> None:
    report = Report(source="mysql://root@db:3306/old", target="sqlite:///x.db", since=1_700_000_000)
    report.steps.append("plan")
    report.table("tickets").source_rows = 1042
    report.table("tickets").changed_rows = 12
    report.issue(
        "unknown_column", "kept in legacy_extra", table="tickets", column="sla", level="info"
    )
    report.issue("missing_column", "required", table="users", column="email", level="error")
    report.finish()
    path = tmp_path / "report.json"
    report.write_json(path)
    data = orjson.loads(path.read_bytes())
    assert data["exitCode"] == 1 and data["steps"] == ["plan"]
    assert data["tables"]["tickets"] == {
        "source_rows": 1042,
        "changed_rows": 12,
        "migrated": 0,
        "skipped": 0,
    }
    assert {c["code"]: c["count"] for c in data["counts"]} == {
        "unknown_column": 1,
        "missing_column": 1,
    }
    assert data["issues"][1]["column"] == "email"
    text = report.summary()
    assert "tickets" in text and "1042" in text and "12" in text
    assert "missing_column: users.email: required" in text
    assert text.rstrip().endswith("FAILED (see errors)")
    assert Report(source="x").summary().rstrip().endswith("result: ok")
