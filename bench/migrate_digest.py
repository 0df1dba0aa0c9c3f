"""Whether a change leaves every row `enque migrate legacy` writes as it was: the same
generated legacy database migrated by this checkout and by another one (`--other`, e.g. an
export of the commit before), into SQLite and PostgreSQL, compared table by table.

Each migration runs as its own process (`enque migrate legacy`, the checkout's code) into a
fresh target whose id space is fixed beforehand (the same namespace and epoch for both, so
both derive the same ids). Each table's rows are read back in a fixed order and digested
(sha256). Left out, as they differ between any two runs of the same code: the migration's
own id (`migration_id`, `legacy_migrations`), the checkpoints' `done_at`, and sealed secrets
(encrypted afresh with a random nonce on each write). Exits 1 when a table differs.

    git archive <commit> | tar -x -C /some/dir
    PYTHONPATH=. .venv/bin/python bench/migrate_digest.py --tickets 5000 --other /some/dir

Needs MariaDB on 127.0.0.1:3306 (root) and PostgreSQL on 127.0.0.1:5432; starts its own S3
server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

from enque import domains
from enque.config import Settings
from enque.core.migrate import upgrade
from enque.migrate.command import target_engine
from enque.migrate.models import LegacyMigration
from enque.migrate.source import SourceUrl
from tests.legacy.generator import LEGACY_KEY, Server, benchmark_scale, build, drop_database
from tests.support.s3 import S3Server
from tests.support.services import create_pg_database, drop_pg_database

HERE = Path(__file__).resolve().parent.parent  # this checkout
NAMESPACE = "0193a1b2-c3d4-4e5f-8a6b-7c8d9e0f1a2b"
EPOCH_MS = 1_760_000_000_000
LEFT_OUT = {"migration_id", "done_at", "credentials", "client_secret"}


async def fix_id_space(target: str, source_url: str) -> None:
    """The target's schema, and the source's migration row with a fixed namespace and epoch
    (which `IdMap.open` finds instead of making a random one)."""
    await upgrade(Settings(database_url=target))
    source = SourceUrl.parse(source_url)
    engine = target_engine(target)
    try:
        async with AsyncSession(engine) as session:
            session.add(
                LegacyMigration(
                    source=f"{source.host}:{source.port}/{source.database}",
                    namespace=NAMESPACE,
                    epoch_ms=EPOCH_MS,
                )
            )
            await session.commit()
    finally:
        await engine.dispose()


def migrate(code: Path, source: str, storage: str, target: str, folder: Path) -> int:
    """`enque migrate legacy` of the checkout at `code`, as its own process: its exit code."""
    cmd = [
        sys.executable,
        "-c",
        "from enque.cli import main; main()",
        "migrate",
        "legacy",
        "--from",
        source,
        "--files",
        storage,
        "--to",
        target,
        "--storage-to",
        f"file://{folder / 'files'}",
        "--legacy-encryption-key",
        LEGACY_KEY,
        "--report",
        str(folder / "report.json"),
    ]
    env = {**os.environ, "PYTHONPATH": str(code), "ENCRYPTION_KEY": "migrate-digest-key"}
    done = subprocess.run(cmd, env=env, cwd=code, capture_output=True, check=False)
    return done.returncode


def _columns(sync: Connection) -> dict[str, list[str]]:
    """Each table's columns, but those left out."""
    found = inspect(sync)
    return {
        table: [c["name"] for c in found.get_columns(table) if c["name"] not in LEFT_OUT]
        for table in found.get_table_names()
        if table not in ("legacy_migrations", "alembic_version")
    }


async def digests(target: str) -> dict[str, str]:
    """Table → `rows sha256` (every table but `legacy_migrations`)."""
    found = {}
    engine = target_engine(target)
    try:
        async with engine.connect() as conn:
            for table, columns in sorted((await conn.run_sync(_columns)).items()):
                kept = ", ".join(f'"{c}"' for c in columns)
                digest, count = hashlib.sha256(), 0
                rows = await conn.stream(text(f'SELECT {kept} FROM "{table}" ORDER BY {kept}'))
                async for row in rows:
                    digest.update(repr(tuple(row)).encode())
                    count += 1
                found[table] = f"{count} {digest.hexdigest()[:16]}"
    finally:
        await engine.dispose()
    return found


async def compare(kind: str, other: Path, source: str, storage: str, tmp: Path) -> bool:
    results = []
    for n, code in enumerate((other, HERE)):
        folder = tmp / f"{kind}-{n}"
        folder.mkdir()
        db = f"enque_mdigest_{os.getpid()}_{n}"
        target = (
            create_pg_database(db) if kind == "postgres" else f"sqlite:///{folder / 'target.db'}"
        )
        try:
            await fix_id_space(target, source)
            print(f"[{kind}] {code}: exit {migrate(code, source, storage, target, folder)}")
            results.append(await digests(target))
        finally:
            if kind == "postgres":
                drop_pg_database(db)
    before, after = results
    same = True
    for table in sorted(before.keys() | after.keys()):
        a, b = before.get(table, "absent"), after.get(table, "absent")
        same = same and a == b
        print(f"  {table:<28} {a:<26} {'same' if a == b else 'DIFFERS: ' + b}")
    return same


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=5_000)
    parser.add_argument("--targets", default="sqlite,postgres")
    parser.add_argument("--other", type=Path, required=True, help="the other checkout")
    args = parser.parse_args()
    domains.load_models()
    scale = benchmark_scale(args.tickets)
    server, name = Server(), f"enque_legacy_mdigest_{os.getpid()}"
    same = True
    with S3Server() as s3, tempfile.TemporaryDirectory() as tmp:
        s3.create_bucket("legacy-mdigest")
        manifest = await build(server, name, scale, s3=(s3, "legacy-mdigest"))
        try:
            for kind in args.targets.split(","):
                storage = s3.storage_url("legacy-mdigest")
                found = await compare(kind, args.other.resolve(), manifest.url, storage, Path(tmp))
                same = same and found
        finally:
            await drop_database(server, name)
    print("every table the same" if same else "some tables differ")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    asyncio.run(main())
