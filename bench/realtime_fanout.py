"""Real-time fan-out: one change reaching many sockets, memory per idle socket, Redis hop.

    .venv/bin/python -m bench.realtime_fanout [--sockets 1000] [--rounds 30] [--idle 5000]
        [--skip-redis] [--skip-memory]

1. Latency to 1,000 sockets on 1 worker (embedded: SQLite, in-process broker). Each round
   changes one ticket with `PATCH /v1/tickets/{id}` and times, on every socket, the arrival of
   its `ticket.updated` from the moment the request was sent; the commit happens inside that
   request, so these figures bound commit→receipt from above. Printed beside the same
   measured with a single socket subscribed (the ceiling: no fan-out) and the request alone.
2. Memory per idle socket with 5,000 sockets on 1 worker: server RSS before and after,
   beside a bare FastAPI WebSocket endpoint on the same server stack that only holds sockets.
3. Two workers sharing Redis and PostgreSQL: the change is made through worker A, sockets sit
   on worker A (through Redis, same worker) and on worker B (across workers).

The client runs in this process on the same machine (2 cores shared with the server).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.harness import ROOT, Server, bench_env, free_port, scratch_dir, start_enque, wait_healthy

ROUND = itertools.count()
LOST: list[int] = []  # receipts missing after 30 s, per round that had any


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_ms(pid: int) -> float:
    """User + system CPU time a process has used, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Fleet:
    """Many client sockets; each records when a `ticket.updated` reaches it."""

    def __init__(self, compression: str | None = "deflate") -> None:
        self.compression = compression
        self.sockets: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.t0 = 0.0
        self.arrivals: list[float] = []
        self.expected = 0
        self.done = asyncio.Event()
        self.marker = '"ticket.updated"'
        self.got: set[int] = set()  # sockets that received the current round
        self.last: dict[int, str] = {}

    async def open(self, url: str, token: str, count: int, channel: str | None = "tickets") -> None:
        async def one() -> None:
            ws = await connect(
                f"{url}?token={token}",
                open_timeout=60,
                ping_interval=None,
                compression=self.compression,  # type: ignore[arg-type]
            )
            while '"ready"' not in await ws.recv():  # a `ping` may come first
                pass
            if channel:
                await ws.send(f'{{"type":"subscribe","channel":"{channel}"}}')
                while '"subscribed"' not in await ws.recv():
                    pass
            self.sockets.append(ws)
            self.tasks.append(asyncio.create_task(self._read(ws)))

        for start in range(0, count, 250):
            await asyncio.gather(*(one() for _ in range(min(250, count - start))))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.last[id(ws)] = str(raw)[:120]
                if self.marker in raw:  # type: ignore[operator]
                    self.got.add(id(ws))
                    self.arrivals.append(time.perf_counter() - self.t0)
                    if len(self.arrivals) >= self.expected:
                        self.done.set()
                elif '"type":"ping"' in raw:  # type: ignore[operator]
                    await ws.send('{"type":"pong"}')
        except Exception as exc:
            print("reader failed:", repr(exc), file=sys.stderr)
            return

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.sockets, self.tasks = [], []


async def register(client: httpx.AsyncClient) -> tuple[str, str]:
    name = "b" + secrets.token_hex(4)
    response = await client.post(
        "/v1/auth/register",
        json={
            "email": f"{name}@example.com",
            "password": "benchmark password",
            "displayName": "Bench",
            "workspaceName": "Bench",
            "subdomain": name,
        },
    )
    token = response.json()["data"]["token"]
    ticket = await client.post(
        "/v1/tickets",
        json={"subject": "Fan-out", "body": "x", "customer": {"email": f"c-{name}@example.com"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    return token, ticket.json()["data"]["id"]


async def rounds(
    fleets: list[Fleet], change: httpx.AsyncClient, token: str, ticket_id: str, count: int
) -> tuple[list[float], list[float]]:
    """(latency of every socket in every round, duration of each PATCH), both in ms."""
    latencies: list[float] = []
    requests: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    priorities = ["High", "Low", "Medium"]  # each round changes it (no change, no event)
    for n in range(count + 2):  # the first 2 rounds warm up
        await asyncio.sleep(0.05)
        for fleet in fleets:
            fleet.got = set()
            fleet.arrivals = []
            fleet.expected = len(fleet.sockets)
            fleet.done.clear()
        t0 = time.perf_counter()
        for fleet in fleets:
            fleet.t0 = t0
        response = await change.patch(
            f"/v1/tickets/{ticket_id}",
            json={"priority": priorities[next(ROUND) % 3]},
            headers=headers,
        )
        took = time.perf_counter() - t0
        assert response.status_code == 200, response.text
        try:
            await asyncio.wait_for(asyncio.gather(*(f.done.wait() for f in fleets)), 30)
        except TimeoutError:
            for f in fleets:
                lost = [ws for ws in f.sockets if id(ws) not in f.got]
                LOST.append(len(lost))
                closed = sum(1 for ws in lost if ws.close_code is not None)
                print(
                    f"round {n}: {len(lost)} sockets without the event after 30 s "
                    f"({closed} closed); their last messages: "
                    f"{[f.last.get(id(ws)) for ws in lost[:3]]}",
                    file=sys.stderr,
                )
        if n >= 2:
            requests.append(took * 1000)
            for fleet in fleets:
                latencies.extend(a * 1000 for a in fleet.arrivals)
    return latencies, requests


def row(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {len(values):,} | {statistics.median(values):.1f} "
        f"| {pct(values, 0.99):.1f} | {max(values):.1f} |"
    )


async def presence_rounds(
    fleet: Fleet, sender: ClientConnection, ticket_id: str, count: int
) -> list[float]:
    """Latency (ms) of a `presence` change sent by one socket to every socket of `fleet`."""
    fleet.marker = '"type":"presence"'
    latencies: list[float] = []
    for n in range(count + 2):
        await asyncio.sleep(0.05)
        fleet.arrivals, fleet.expected = [], len(fleet.sockets)
        fleet.done.clear()
        state = ("viewing", "typing")[n % 2]
        fleet.t0 = time.perf_counter()
        await sender.send(f'{{"type":"presence","ticketId":"{ticket_id}","state":"{state}"}}')
        await asyncio.wait_for(fleet.done.wait(), 60)
        if n >= 2:
            latencies.extend(a * 1000 for a in fleet.arrivals)
    fleet.marker = '"ticket.updated"'
    return latencies


async def fanout(server: Server, sockets: int, count: int, compression: str | None) -> float:
    ws_url = server.url.replace("http", "ws") + "/v1/realtime"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        token, ticket_id = await register(client)
        channel = f"ticket:{ticket_id}"
        sender = await connect(f"{ws_url}?token={token}", ping_interval=None)
        await sender.recv()
        single = Fleet(compression)
        await single.open(ws_url, token, 1, channel)
        ceiling, requests = await rounds([single], client, token, ticket_id, count)
        presence_one = await presence_rounds(single, sender, ticket_id, count)
        await single.close()
        many = Fleet(compression)
        await many.open(ws_url, token, sockets, channel)
        latencies, requests_many = await rounds([many], client, token, ticket_id, count)
        cpu_before, client_before = cpu_ms(server.proc.pid), time.process_time()
        presence_many = await presence_rounds(many, sender, ticket_id, count)
        server_cpu = (cpu_ms(server.proc.pid) - cpu_before) / (count + 2)
        client_cpu = (time.process_time() - client_before) * 1000 / (count + 2)
        await many.close()
        await sender.close()
    mode = "clients offer permessage-deflate" if compression else "no compression"
    print(f"\n## Fan-out, 1 worker, embedded (SQLite, in-process broker), {mode}, {count} rounds\n")
    print("| measured from the client's action | receipts | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(row("PATCH → `ticket.updated`, 1 socket (ceiling: no fan-out)", ceiling))
    print(row(f"PATCH → `ticket.updated`, {sockets:,} sockets", latencies))
    print(row("`presence` sent → received, 1 socket (ceiling)", presence_one))
    print(row(f"`presence` sent → received, {sockets:,} sockets", presence_many))
    print(row("the PATCH request alone (1 socket open)", requests))
    print(row(f"the PATCH request alone ({sockets:,} sockets open)", requests_many))
    print(
        f"\nCPU per `presence` fan-out to {sockets:,} sockets: server {server_cpu:.1f} ms, "
        f"client {client_cpu:.1f} ms "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return statistics.median(presence_one)


def start_bare_ws() -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_ws_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--ws-ping-interval",
            "0",
            "--ws-per-message-deflate",
            "false",  # as `enque serve`
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(proc, f"http://127.0.0.1:{port}")
    wait_healthy(server.url, proc)
    return server


async def idle_memory(
    server: Server, sockets: int, token: str | None, compression: str | None
) -> tuple[int, int]:
    """Server RSS (kB) before and after `sockets` idle sockets (subscribed to `tickets`)."""
    ws_url = server.url.replace("http", "ws") + "/v1/realtime"
    fleet = Fleet(compression)
    await fleet.open(ws_url, token or "x", 20)  # warm up: code paths loaded, pools made
    await asyncio.sleep(1)
    before = rss_kb(server.proc.pid)
    await fleet.open(ws_url, token or "x", sockets)
    await asyncio.sleep(3)
    after = rss_kb(server.proc.pid)
    await fleet.close()
    gc.collect()
    return before, after


async def memory(env: dict[str, str], sockets: int, compression: str | None) -> None:
    bare = start_bare_ws()
    try:
        bare_before, bare_after = await idle_memory(bare, sockets, None, compression)
    finally:
        bare.stop()
    server = start_enque(env)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            token, _ = await register(client)
        before, after = await idle_memory(server, sockets, token, compression)
    finally:
        server.stop()
    mode = "clients offer permessage-deflate" if compression else "no compression"
    print(f"\n## Memory per idle socket, {sockets:,} sockets, 1 worker, {mode}\n")
    print("| server | RSS before MB | RSS after MB | per socket KB |")
    print("| --- | ---: | ---: | ---: |")
    for name, (b, a) in (
        ("bare WebSocket endpoint (ceiling)", (bare_before, bare_after)),
        ("enque (authenticated, subscribed to `tickets`)", (before, after)),
    ):
        print(f"| {name} | {b / 1024:.0f} | {a / 1024:.0f} | {(a - b) / sockets:.1f} |")


async def redis_hop(
    base: dict[str, str], sockets: int, count: int, compression: str | None
) -> float:
    from tests.support.services import REDIS_TEST_URL, create_pg_database, drop_pg_database

    name = f"enque_bench_rt_{secrets.token_hex(3)}"
    env = {
        **base,
        "DATABASE_URL": create_pg_database(name),
        "REDIS_URL": REDIS_TEST_URL,
        "REDIS_PREFIX": f"enque-bench-{secrets.token_hex(4)}:",
    }
    first = start_enque(env)
    second = start_enque(env)
    results: dict[str, list[float]] = {}
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=60) as client:
            token, ticket_id = await register(client)
            channel = f"ticket:{ticket_id}"
            ws_a = first.url.replace("http", "ws") + "/v1/realtime"
            sender = await connect(f"{ws_a}?token={token}", ping_interval=None)
            await sender.recv()
            for label, server in (("A", first), ("B", second)):
                url = server.url.replace("http", "ws") + "/v1/realtime"
                one = Fleet(compression)
                await one.open(url, token, 1, channel)
                results[f"presence 1 {label}"] = await presence_rounds(
                    one, sender, ticket_id, count
                )
                await one.close()
                fleet = Fleet(compression)
                await fleet.open(url, token, sockets, channel)
                results[f"patch {label}"], requests = await rounds(
                    [fleet], client, token, ticket_id, count
                )
                results[f"presence {label}"] = await presence_rounds(
                    fleet, sender, ticket_id, count
                )
                results["requests"] = results.get("requests", []) + requests
                await fleet.close()
            await sender.close()
    finally:
        second.stop()
        first.stop()
        drop_pg_database(name)
    print(f"\n## Through Redis: 2 workers sharing Redis and PostgreSQL, {count} rounds\n")
    print(
        "| measured from the client's action (on worker A) | receipts | p50 ms | p99 ms | max ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, where in (("A", "worker A (through Redis)"), ("B", "worker B (across workers)")):
        print(row(f"`presence` → 1 socket on {where}", results[f"presence 1 {label}"]))
        print(row(f"`presence` → {sockets:,} sockets on {where}", results[f"presence {label}"]))
        print(row(f"PATCH → {sockets:,} sockets on {where}", results[f"patch {label}"]))
    print(row("the PATCH request alone (PostgreSQL)", results["requests"]))
    return statistics.median(results["presence 1 B"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-fanout", action="store_true")
    parser.add_argument(
        "--compression", choices=["deflate", "none"], default="deflate", help="of the clients"
    )
    args = parser.parse_args()
    env = bench_env(scratch_dir(), RATE_LIMIT_ENABLED="false")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores shared by client and server")
    compression = None if args.compression == "none" else "deflate"
    embedded = None
    if not args.skip_fanout:
        server = start_enque(env)
        try:
            embedded = await fanout(server, args.sockets, args.rounds, compression)
        finally:
            server.stop()
    if LOST:
        print(f"\n!!! {sum(LOST)} receipts did not arrive within 30 s ({len(LOST)} rounds)")
    if not args.skip_memory:
        await memory(bench_env(scratch_dir(), RATE_LIMIT_ENABLED="false"), args.idle, compression)
    if not args.skip_redis:
        across = await redis_hop(
            bench_env(scratch_dir(), RATE_LIMIT_ENABLED="false"),
            args.sockets,
            args.rounds,
            compression,
        )
        if embedded is not None:
            print(
                f"\nadded by Redis across workers (`presence` to 1 socket, p50): "
                f"{across - embedded:.1f} ms ({embedded:.1f} embedded → {across:.1f} ms)"
            )


if __name__ == "__main__":
    asyncio.run(main())
