"""`enque migrate legacy` runs the plan step against a real source and records it."""

from __future__ import annotations

import gc
from pathlib import Path

import orjson
from click.testing import CliRunner

from enque.cli import main
from enque.migrate.command import GC_YOUNG_THRESHOLD, fewer_collections, parse_since
from tests.legacy.generator import LEGACY_KEY, Manifest
from tests.support.s3 import S3Server


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [
            "migrate",
            "legacy",
            "--to",
            "sqlite:///target.db",
            "--storage-to",
            "file://./files",
            *args,
        ],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_since_forms() -> None:
    assert parse_since("1700000000") == 1700000000
    assert parse_since("2023-11-14T22:13:20Z") == 1700000000
    assert parse_since("2023-11-14 22:13:20") == 1700000000
    assert parse_since("2023-11-15T00:13:20+02:00") == 1700000000


def test_plan_with_key_and_storage(legacy: Manifest, s3_server: S3Server, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    code, output = run(
        "--from",
        legacy.url,
        "--storage-from",
        s3_server.storage_url(legacy.bucket or ""),
        "--legacy-encryption-key",
        LEGACY_KEY,
        "--dry-run",
        "--since",
        "2023-06-01",
        "--report",
        str(path),
    )
    assert code == 0, output
    assert "steps: plan (dry run)" in output and "result: ok" in output
    data = orjson.loads(path.read_bytes())
    assert data["tables"]["comments"]["source_rows"] == legacy.counts["comments"]
    assert 0 < data["tables"]["tickets"]["changed_rows"] < legacy.counts["tickets"]
    assert data["facts"]["storage_from"] == "reachable"
    assert data["target"] == "sqlite:///target.db"
    assert data["since"] == parse_since("2023-06-01")


def test_encrypted_secrets_without_key_fail(legacy: Manifest) -> None:
    code, output = run("--from", legacy.url)
    assert code == 1
    assert "encrypted_secret" in output and "pass --legacy-encryption-key" in output


def test_unreachable_source_and_storage(legacy: Manifest, s3_server: S3Server) -> None:
    code, output = run("--from", "mysql://root@127.0.0.1:1/nothing")
    assert code == 1 and "cannot read the source" in output
    code, output = run("--from", "postgresql://x@h/db")
    assert code == 1 and "mysql://" in output
    code, output = run(
        "--from",
        legacy.url,
        "--legacy-encryption-key",
        LEGACY_KEY,
        "--storage-from",
        s3_server.storage_url("no-such-bucket"),
    )
    assert code == 1 and "storage_unreachable" in output


def test_the_collector_is_restored_after_the_rows_are_moved() -> None:
    """Started less often and without the objects made before while rows move; as it was
    after, even when the migration fails."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        with fewer_collections():
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
            assert gc.get_freeze_count() > frozen
            raise RuntimeError("the load failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == frozen
