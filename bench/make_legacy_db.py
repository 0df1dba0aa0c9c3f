"""Build a legacy (old-Enque) database at benchmark scale and report how fast it was made.

Needs MariaDB/MySQL on 127.0.0.1:3306 (root, no password); starts its own S3 server.
The ceiling, measured in the same run, is the server's bulk insert rate for rows of the same
shape as the comments, prepared in advance (what the generator could reach if making the
rows cost nothing).

    .venv/bin/python bench/make_legacy_db.py                   # 100,000 tickets, 1M comments
    .venv/bin/python bench/make_legacy_db.py --tickets 20000   # a fifth of it
    .venv/bin/python bench/make_legacy_db.py --keep            # keep the database afterwards
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.legacy.generator import BENCHMARK, Server, benchmark_scale, build, drop_database
from tests.support.s3 import S3Server

CEILING_ROWS = 200_000


async def ceiling(server: Server, name: str) -> float:
    """Rows/s of bulk inserts of ready-made comment-like rows into an empty table."""
    conn = await server.connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            await cur.execute(f"CREATE DATABASE `{name}`")
            await cur.execute(
                f"CREATE TABLE `{name}`.comments (id int PRIMARY KEY, ticket_id int NOT NULL, "
                "workspace_id int NOT NULL, content text, is_private tinyint(1), "
                "created_at datetime, KEY (ticket_id), KEY (workspace_id))"
            )
        content = "<div><p>" + "word " * 150 + "</p></div>"
        rows = [
            (i, i // 10 + 1, 1, content, 0, "2023-01-01 00:00:00")
            for i in range(1, CEILING_ROWS + 1)
        ]
        await conn.autocommit(False)
        started = time.perf_counter()
        for start in range(0, len(rows), 5000):
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO `{name}`.comments VALUES (%s, %s, %s, %s, %s, %s)",
                    rows[start : start + 5000],
                )
            await conn.commit()
        elapsed = time.perf_counter() - started
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE `{name}`")
        return CEILING_ROWS / elapsed
    finally:
        conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=BENCHMARK.tickets)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    scale = benchmark_scale(args.tickets)
    server = Server()
    name = f"enque_legacy_bench_{os.getpid()}"
    ceiling_rate = await ceiling(server, name + "_ceiling")
    with S3Server() as s3:
        s3.create_bucket("legacy-bench")
        started = time.perf_counter()
        manifest = await build(server, name, scale, s3=(s3, "legacy-bench"))
        elapsed = time.perf_counter() - started
    rows = sum(manifest.counts.values())
    print(
        f"scale: {scale.tickets:,} tickets x {scale.comments_per_ticket} comments, "
        f"{scale.attachments:,} attachments, {scale.workspaces} workspaces"
    )
    for table in ("tickets", "comments", "ticket_attachments", "ticket_bodies", "activities"):
        print(f"  {table:<20}{manifest.counts[table]:>12,}")
    print(f"  {'all tables':<20}{rows:>12,}")
    print(f"  {'S3 objects':<20}{len(manifest.s3_objects):>12,}")
    print(f"build:   {elapsed:8.1f} s   {rows / elapsed:>10,.0f} rows/s (database + S3 uploads)")
    print(f"ceiling: {'':8}     {ceiling_rate:>10,.0f} rows/s (bulk insert of ready-made rows)")
    if args.keep:
        print(f"kept: {manifest.url}")
    else:
        await drop_database(server, name)


if __name__ == "__main__":
    asyncio.run(main())
