"""A process killed while writing to local disk leaves `<key>#<n>`; the sweep removes those
once they are old, and nothing else."""

from __future__ import annotations

import os
import time
from pathlib import Path

from enque.core.storage import open_storage


async def test_old_partial_writes_go_and_nothing_else(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}")
    await storage.put_bytes("ws/kept", b"data")
    old, recent = tmp_path / "ws" / "gone#1", tmp_path / "ws" / "young#2"
    named = tmp_path / "ws" / "name#with-hash"
    for path in (old, recent, named):
        path.write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    for path in (old, named, tmp_path / "ws" / "kept"):
        os.utime(path, (two_days_ago, two_days_ago))
    assert await storage.remove_partial_writes(86400) == 1
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == [
        "kept",
        "name#with-hash",
        "young#2",
    ]
    assert await open_storage("s3://bucket?region=eu-west-1").remove_partial_writes(0) == 0
