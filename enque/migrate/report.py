"""The migration report: every finding of every step, as JSON and as a readable summary."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Level = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Issue:
    """One finding: what (code), where (table, row, column), how bad (level)."""

    code: str
    message: str
    table: str | None = None
    row_id: int | str | None = None
    column: str | None = None
    level: Level = "warning"


@dataclass
class TableStats:
    source_rows: int = 0
    changed_rows: int | None = None  # with --since: rows changed after the cut-off
    migrated: int = 0
    skipped: int = 0


@dataclass
class Report:
    """Collects issues per (table, code): exact counts, the first `sample_limit` in full."""

    source: str
    target: str | None = None
    dry_run: bool = False
    since: int | None = None
    sample_limit: int = 1000
    started_at: int = field(default_factory=lambda: int(time.time()))
    finished_at: int | None = None
    steps: list[str] = field(default_factory=list)
    tables: dict[str, TableStats] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    _issues: list[Issue] = field(default_factory=list)
    _counts: Counter[tuple[str | None, str, Level]] = field(default_factory=Counter)

    def add(self, issue: Issue) -> None:
        key = (issue.table, issue.code, issue.level)
        self._counts[key] += 1
        if self._counts[key] <= self.sample_limit:
            self._issues.append(issue)

    def issue(self, code: str, message: str, *, level: Level = "warning", **where: Any) -> None:
        self.add(Issue(code=code, message=message, level=level, **where))

    def note_peak_memory(self, phase: str) -> None:
        """The process's peak memory so far (MiB), once `phase` is done: the phase that
        raised it is the first whose figure is higher than the one before."""
        self.facts.setdefault("peak_rss_mib", {})[phase] = peak_rss_mib()

    def table(self, name: str) -> TableStats:
        return self.tables.setdefault(name, TableStats())

    @property
    def issues(self) -> list[Issue]:
        return list(self._issues)

    def count(self, code: str | None = None, *, level: Level | None = None) -> int:
        return sum(
            n
            for (_, c, lv), n in self._counts.items()
            if (code is None or c == code) and (level is None or lv == level)
        )

    @property
    def exit_code(self) -> int:
        """Non-zero when anything is missing or broken (any error-level finding)."""
        return 1 if self.count(level="error") else 0

    def finish(self) -> None:
        self.finished_at = int(time.time())

    def to_dict(self) -> dict[str, Any]:
        counts = [
            {"table": table, "code": code, "level": level, "count": n}
            for (table, code, level), n in sorted(
                self._counts.items(), key=lambda kv: (kv[0][2], kv[0][0] or "", kv[0][1])
            )
        ]
        return {
            "source": self.source,
            "target": self.target,
            "dryRun": self.dry_run,
            "since": self.since,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "steps": self.steps,
            "exitCode": self.exit_code,
            "tables": {name: asdict(stats) for name, stats in sorted(self.tables.items())},
            "facts": self.facts,
            "counts": counts,
            "issues": [asdict(issue) for issue in self._issues],
        }

    def write_json(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))

    def summary(self) -> str:
        """A readable account: tables, counts per finding, then the errors in full."""
        lines = [f"source: {self.source}"]
        if self.target:
            lines.append(f"target: {self.target}")
        lines.append(
            f"steps: {', '.join(self.steps) or 'none'}" + (" (dry run)" if self.dry_run else "")
        )
        if self.tables:
            lines.append("")
            lines.append(f"{'table':<28}{'rows':>12}" + (f"{'changed':>12}" if self.since else ""))
            for name, stats in sorted(self.tables.items()):
                changed = f"{stats.changed_rows:>12}" if self.since else ""
                lines.append(f"{name:<28}{stats.source_rows:>12}{changed}")
        for key, value in self.facts.items():
            lines.append(f"{key}: {value}")
        if self._counts:
            lines.append("")
            lines.append("findings:")
            for (table, code, level), n in sorted(
                self._counts.items(), key=lambda kv: ("ewi".index(kv[0][2][0]), kv[0][0] or "")
            ):
                lines.append(f"  {level:<8}{code:<28}{table or '-':<26}{n:>8}")
        errors = [i for i in self._issues if i.level == "error"]
        if errors:
            lines.append("")
            lines.append("errors:")
            for issue in errors[:50]:
                where = ".".join(str(p) for p in (issue.table, issue.column) if p)
                row = f" #{issue.row_id}" if issue.row_id is not None else ""
                lines.append(f"  {issue.code}: {where}{row}: {issue.message}")
            if len(errors) > 50:
                lines.append(f"  … {len(errors) - 50} more in the JSON report")
        lines.append("")
        lines.append("result: " + ("FAILED (see errors)" if self.exit_code else "ok"))
        return "\n".join(lines)


def peak_rss_mib() -> int | None:
    """The peak resident memory of this process so far (None where it cannot be read).

    On Linux the process's own high-water mark (`VmHWM`): `ru_maxrss` also counts what the
    parent process held when it started this one."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) >> 10
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak >> (20 if sys.platform == "darwin" else 10)  # bytes on macOS, KiB elsewhere


class RowContext:
    """Where a transform runs (table and row), so it can report what it had to change.

    (A plain class: one or more is made for every legacy row, and a frozen dataclass costs
    several times as much to create.)"""

    __slots__ = ("report", "row_id", "table")

    def __init__(self, report: Report, table: str, row_id: int | str | None = None) -> None:
        self.report = report
        self.table = table
        self.row_id = row_id

    def issue(self, column: str | None, code: str, message: str, level: Level = "warning") -> None:
        self.report.add(
            Issue(
                code=code,
                message=message,
                table=self.table,
                row_id=self.row_id,
                column=column,
                level=level,
            )
        )

    def at(self, row_id: int | str | None) -> RowContext:
        return RowContext(self.report, self.table, row_id)
