"""What one inbox page costs the server with requests in flight, in measures machine load
does not move much: CPU time of the event loop's thread and of SQLite's threads per request,
collector runs, waits for the driver's thread and for a pooled connection.

Clients call the app in-process (ASGI, no sockets), `--concurrency` at a time, on the database
`bench/ticket_list.py --keep` seeded (run it once with `--seed-only`):

    .venv/bin/python bench/ticket_list.py --tickets 100000 --search --keep --seed-only
    .venv/bin/python bench/inbox_cpu.py --tickets 100000 --concurrency 10 --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import bench_env  # noqa: E402
from bench.ticket_list import prepare  # noqa: E402
from enque.app import serving_app  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core import pool  # noqa: E402


@dataclass
class Counts:
    """What the server did while the measured requests ran."""

    handoffs: int = 0  # calls the event loop awaited on a connection's thread
    pool_waits: int = 0  # checkouts that found no free connection
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    collector_cpu: float = 0.0
    _started: float = 0.0

    def watch(self) -> None:
        execute = aiosqlite.Connection._execute
        get = pool.FairAsyncQueue.get

        async def counted_execute(conn: aiosqlite.Connection, fn: Any, *a: Any, **k: Any) -> Any:
            self.handoffs += 1
            return await execute(conn, fn, *a, **k)

        def counted_get(queue: Any, block: bool = True, timeout: float | None = None) -> Any:
            if queue._waiters or queue._queue.empty():
                self.pool_waits += 1
            return get(queue, block, timeout)

        aiosqlite.Connection._execute = counted_execute  # type: ignore[method-assign]
        pool.FairAsyncQueue.get = counted_get  # type: ignore[method-assign]
        gc.callbacks.append(self._collected)

    def _collected(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.collections[info["generation"]] += 1
            self.collector_cpu += time.thread_time() - self._started


def other_threads_cpu() -> float:
    """CPU seconds of this process's threads but the calling one (from /proc)."""
    me = str(threading.get_native_id())
    ticks = 0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        if task.name != me:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def call(app: Any, path: str, query: bytes, token: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def run(settings: Settings, token: str, concurrency: int, requests: int) -> None:
    app = serving_app(settings)
    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm: connections opened, statements cached
            assert await call(app, "/v1/tickets", b"", token) == 200
        counts = Counts()
        counts.watch()
        left = requests

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                assert await call(app, "/v1/tickets", b"", token) == 200

        loop_cpu, others, wall = time.thread_time(), other_threads_cpu(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        loop_cpu = time.thread_time() - loop_cpu
        others, wall = other_threads_cpu() - others, time.perf_counter() - wall
    per = 1000 / requests
    print(
        f"{requests} first pages, {concurrency} in flight, {wall:.1f} s; load {os.getloadavg()}\n"
        f"  event loop thread CPU   {loop_cpu * per:.3f} ms/request\n"
        f"  SQLite threads CPU      {others * per:.3f} ms/request\n"
        f"  collector               {counts.collector_cpu * per:.3f} ms/request, runs by "
        f"generation {counts.collections}\n"
        f"  awaited hand-offs       {counts.handoffs / requests:.2f} per request\n"
        f"  waits for a connection  {counts.pool_waits / requests:.2f} per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    name = f"enque_bench_tickets_{args.tickets}_search"
    data_dir = Path(tempfile.gettempdir()) / name
    if not (data_dir / f"{name}.db").exists():
        raise SystemExit(f"seed it first: bench/ticket_list.py --tickets {args.tickets} --search "
                         "--keep --seed-only")  # fmt: skip
    env = bench_env(data_dir, DATABASE_URL=f"sqlite:///{data_dir / name}.db")
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    token, _, _ = asyncio.run(prepare(settings, args.tickets, True))
    asyncio.run(run(settings, token, args.concurrency, args.requests))


if __name__ == "__main__":
    main()
