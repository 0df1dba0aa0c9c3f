"""How fast `enque migrate legacy` moves a generated legacy database, beside two ceilings
measured in the same run on the same data:

- SELECT ceiling: the legacy comments streamed (server-side cursor, keyset chunks) and
  dropped: the fastest the source can be read.
- bare copy: the same comments read and inserted untransformed into a table of the same
  shape in the target (batches of 1,000, one transaction each): read + write, no transform.

The migration runs as its own process (`enque migrate legacy`, load then verify). Its peak
memory is the one its report records after each table's load and verify (on Linux its own
high-water mark, VmHWM), printed where it rose; the ru_maxrss of the child, printed beside it,
also counts this process's memory at the spawn (the legacy database was built here).

Needs MariaDB on 127.0.0.1:3306 (root) and, for the PostgreSQL target, PostgreSQL on
127.0.0.1:5432; starts its own S3 server.

    .venv/bin/python bench/migrate_bench.py --tickets 10000            # 100,000 comments
    .venv/bin/python bench/migrate_bench.py --tickets 100000 --targets sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text

from enque.migrate.command import target_engine
from enque.migrate.source import LegacySource, SourceUrl
from tests.legacy.generator import LEGACY_KEY, Server, benchmark_scale, build, drop_database
from tests.support.s3 import S3Server
from tests.support.services import create_pg_database, drop_pg_database


async def select_ceiling(url: str) -> tuple[int, float]:
    async with LegacySource(SourceUrl.parse(url)) as source:
        started = time.perf_counter()
        rows = 0
        async for batch in source.stream("comments"):
            rows += len(batch)
        return rows, rows / (time.perf_counter() - started)


async def bare_copy(url: str, target: str) -> tuple[float, float]:
    """Rows/s of comments read and inserted as they are (no transform, no id mapping), and
    the CPU seconds of this process per row."""
    meta = MetaData()
    table = Table(
        "bare_comments",
        meta,
        Column("id", BigInteger, primary_key=True),
        Column("ticket_id", BigInteger),
        Column("agent_id", BigInteger),
        Column("user_id", BigInteger),
        Column("to_recipients", Text),
        Column("other_destinaries", Text),
        Column("bcc_recipients", Text),
        Column("workspace_id", BigInteger),
        Column("content", Text),
        Column("s3_html_url", Text),
        Column("is_private", Integer),
        Column("created_at", Text),
        Column("updated_at", Text),
    )
    engine = target_engine(target)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.drop_all)
            await conn.run_sync(meta.create_all)
        rows = 0
        async with LegacySource(SourceUrl.parse(url)) as source:
            started, cpu_started = time.perf_counter(), time.process_time()
            async for batch in source.stream("comments"):
                values = [
                    {**r, "created_at": str(r["created_at"]), "updated_at": str(r["updated_at"])}
                    for r in batch
                ]
                async with engine.begin() as conn:
                    await conn.execute(table.insert(), values)
                rows += len(batch)
            rate = rows / (time.perf_counter() - started)
            cpu = (time.process_time() - cpu_started) / rows
        async with engine.begin() as conn:
            await conn.run_sync(meta.drop_all)
        return rate, cpu
    finally:
        await engine.dispose()


def rises(peaks: dict[str, int]) -> str:
    """The phases (load or verify of a table) after which the peak RSS was higher, in MiB."""
    shown, before = [], 0
    for phase, peak in peaks.items():
        if peak > before:
            shown.append(f"{phase} {peak}")
            before = peak
    return ", ".join(shown)


def migrate(url: str, storage: str, target: str, files: Path, report: Path) -> tuple[float, int]:
    """Run the CLI in a child process: wall seconds and peak RSS (KiB)."""
    cmd = [
        sys.executable,
        "-c",
        "from enque.cli import main; main()",
        "migrate",
        "legacy",
        "--from",
        url,
        "--files",
        storage,
        "--to",
        target,
        "--storage-to",
        f"file://{files}",
        "--legacy-encryption-key",
        LEGACY_KEY,
        "--report",
        str(report),
    ]
    started = time.perf_counter()
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    env = {"ENCRYPTION_KEY": "migrate-bench-key", **os.environ}  # secrets are sealed with it
    pid = os.posix_spawn(sys.executable, cmd, env, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"  migration exited {os.waitstatus_to_exitcode(status)} (see {report})")
    return elapsed, usage.ru_maxrss


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--targets", default="sqlite,postgres")
    args = parser.parse_args()
    scale = benchmark_scale(args.tickets)
    server = Server()
    name = f"enque_legacy_mbench_{os.getpid()}"
    with S3Server() as s3, tempfile.TemporaryDirectory() as tmp:
        s3.create_bucket("legacy-mbench")
        started = time.perf_counter()
        manifest = await build(server, name, scale, s3=(s3, "legacy-mbench"))
        print(f"legacy database built in {time.perf_counter() - started:.0f} s")
        try:
            source_rows = sum(manifest.counts.values())
            print(
                f"scale: {manifest.counts['tickets']:,} tickets, "
                f"{manifest.counts['comments']:,} comments, "
                f"{manifest.counts['ticket_attachments']:,} attachments, "
                f"{source_rows:,} rows in all tables"
            )
            load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
            print(f"load average before (1, 5, 15 min): {load}")
            _, select_rate = await select_ceiling(manifest.url)
            print(f"SELECT ceiling (comments streamed): {select_rate:>10,.0f} rows/s")
            for kind in args.targets.split(","):
                db = f"enque_mbench_{kind}_{os.getpid()}"
                if kind == "postgres":
                    target = create_pg_database(db)
                else:
                    target = f"sqlite:///{Path(tmp) / (db + '.db')}"
                try:
                    bare, bare_cpu = await bare_copy(manifest.url, target)
                    report_path = Path(tmp) / f"report-{kind}.json"
                    elapsed, rss = migrate(
                        manifest.url,
                        s3.storage_url("legacy-mbench"),
                        target,
                        Path(tmp) / f"files-{kind}",
                        report_path,
                    )
                    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
                    facts = report["facts"]
                    migrated = sum(
                        t["source_rows"]
                        for name_, t in report["tables"].items()
                        if name_ in facts["load_seconds_by_table"]
                    )
                    load_s = facts["load_seconds"]
                    comments_s = facts["load_seconds_by_table"]["comments"]
                    comments_rate = manifest.counts["comments"] / comments_s
                    comments_cpu = (
                        facts["load_cpu_seconds_by_table"]["comments"] / manifest.counts["comments"]
                    )
                    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
                    print(f"\n[{kind}] exit {report['exitCode']}, wall {elapsed:.1f} s")
                    print(f"  load average after (1, 5, 15 min): {load}")
                    print(
                        f"  load, all migrated tables: {migrated / load_s:>10,.0f} rows/s "
                        f"({migrated:,} rows in {load_s:.1f} s)"
                    )
                    print(f"  load, comments:            {comments_rate:>10,.0f} rows/s")
                    print(f"  bare copy of comments:     {bare:>10,.0f} rows/s  (ceiling)")
                    print(f"  comments vs bare copy:     {comments_rate / bare:>10.2f}")
                    print(
                        f"  CPU per comment:           {comments_cpu * 1e6:>10.1f} µs "
                        f"(bare copy {bare_cpu * 1e6:.1f} µs; the process, all its threads)"
                    )
                    overall = migrated / load_s
                    print(f"  all tables vs bare copy:   {overall / bare:>10.2f}")
                    print(f"  verify:                    {facts['verify_seconds']:>10.1f} s")
                    phases = ", ".join(
                        f"{k} {v:.1f}s" for k, v in facts["load_phase_seconds"]["comments"].items()
                    )
                    print(f"  comments, phases:          {phases}")
                    peak = max(facts["peak_rss_mib"].values())
                    print(
                        f"  peak memory (RSS):         {peak:>10} MiB (its own; ru_maxrss "
                        f"{rss / 1024:.0f} MiB also counts this process at the spawn)"
                    )
                    print(f"  peak memory rose at:       {rises(facts['peak_rss_mib'])}")
                finally:
                    if kind == "postgres":
                        drop_pg_database(db)
        finally:
            await drop_database(server, name)


if __name__ == "__main__":
    asyncio.run(main())
