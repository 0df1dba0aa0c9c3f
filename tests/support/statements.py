"""Counting the SQL statements a block of code sends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from enque.core.runtime import Runtime


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The queries sent while the block runs (on every engine of the runtime), without
    transaction control statements and the scheduler's own bookkeeping (a background job
    of the same process may renew its lease meanwhile)."""
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split(None, 1)[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            return
        if "job_leases" in statement or "job_runs" in statement:
            return
        seen.append(statement)

    engines = {
        id(e.sync_engine): e.sync_engine for e in (runtime.db.engine, runtime.db.write_engine)
    }
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", listener)
