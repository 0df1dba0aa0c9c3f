"""Regenerate `0001_initial.py` from the models (development only, before the first release).

Autogenerates against an empty PostgreSQL database (it renders expression indexes, which the
SQLite comparison skips) in a scratch copy of the migrations folder, so hand-written later
revisions (full-text search…) stay untouched. Needs the local PostgreSQL server.
Run: .venv/bin/python scripts/regen_initial_migration.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "enque" / "migrations"
TARGET = MIGRATIONS / "versions" / "0001_initial.py"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "migrations"
        shutil.copytree(MIGRATIONS, scratch, ignore=shutil.ignore_patterns("__pycache__"))
        for old in (scratch / "versions").glob("*.py"):
            old.unlink()
        cfg = Config()
        cfg.set_main_option("script_location", str(scratch))
        name = f"enque_regen_{os.getpid()}"
        subprocess.run(
            ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
            check=True,
        )
        try:
            cfg.set_main_option("sqlalchemy.url", f"postgresql+asyncpg://postgres@127.0.0.1/{name}")
            command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
        finally:
            subprocess.run(
                ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE {name}"],
                check=True,
            )
        produced = next((scratch / "versions").glob("0001_*.py"))
        source = produced.read_text().replace("astext_type=Text()", "astext_type=sa.Text()")
        TARGET.write_text(source)
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(TARGET)], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "check", "-q", "--fix", str(TARGET)], check=False)
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
