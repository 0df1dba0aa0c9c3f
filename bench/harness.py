"""Shared pieces of the benchmarks: a server process on a fresh database, and `wrk`."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment of a benchmark server: a new SQLite file, limits that never refuse."""
    return {
        **os.environ,
        "ENV": "development",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'bench.db'}",
        "STORAGE_URL": f"file://{data_dir / 'files'}",
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "RATE_LIMIT_ENABLED": "true",  # the limiter runs, with limits the load never reaches
        "RATE_LIMIT_READ": "100000000/minute",
        "RATE_LIMIT_WRITE": "100000000/minute",
        "RATE_LIMIT_AUTH": "100000000/minute",
        "SCHEDULER_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
    """Seconds until `GET /health` answers 200."""
    started = time.perf_counter()
    # one client for all the attempts: making one (its TLS context) costs more CPU than an
    # attempt, CPU the server being timed would share on a small machine
    with httpx.Client(timeout=0.5) as client:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            try:
                if client.get(url + "/health").status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                time.sleep(0.005)
    raise RuntimeError("server not healthy in time")


def start_enque(env: dict[str, str], workers: int = 1, log: Path | None = None) -> Server:
    """`enque serve` on a free port; its output goes to `log` when given."""
    port = free_port()
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enque.cli",
            "serve",
            "--port",
            str(port),
            "--no-demo",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(proc, f"http://127.0.0.1:{port}")
    wait_healthy(server.url, proc)
    return server


def children(pid: int) -> list[int]:
    """The direct child processes of `pid` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # the process ended meanwhile
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children(pid))


def start_bare(page_file: Path | None = None) -> Server:
    """A bare FastAPI app on the same server stack: the ceiling (`/bare`, and `/page` serving
    the bytes of `page_file` precomputed)."""
    port = free_port()
    env = {**os.environ, **({"BARE_PAGE_FILE": str(page_file)} if page_file else {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(proc, f"http://127.0.0.1:{port}")
    wait_healthy(server.url, proc)
    return server


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.requests_per_s:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} "
            f"| {self.errors} |"
        )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str,
    *,
    connections: int,
    seconds: int = 10,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> Load:
    """Run wrk (Debian package `wrk`) and read requests/s and latency percentiles."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+)"):
        found = re.search(pattern, out)
        errors += int(found.group(1)) if found else 0
    return Load(rps, p50, p99, errors)


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="enque-bench-"))


def psql(sql: str) -> None:
    """One statement on the development PostgreSQL server, as `postgres`."""
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", sql],
        check=True,
        capture_output=True,
    )


@contextmanager
def bench_database(db: str, data_dir: Path, name: str, *, keep: bool = False) -> Iterator[str]:
    """The URL of a benchmark database: a SQLite file in `data_dir`, or a PostgreSQL database
    `name` (created when missing; dropped afterwards unless `keep`)."""
    if db != "postgres":
        yield f"sqlite:///{data_dir / (name + '.db')}"
        return
    exists = subprocess.run(
        ["psql", "-tA", "-h", "127.0.0.1", "-U", "postgres", "-c",
         f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if not exists:
        psql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        if not keep:
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def get(path: str) -> Request:
    async def send(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.get(path)

    return send


async def measure(
    url: str, token: str, request: Request, concurrency: int, requests: int
) -> dict[str, float]:
    """p50, p99 (ms) and requests/s of `requests` calls made by `concurrency` clients of one
    Python process (for requests wrk cannot make, such as POSTs with distinct bodies)."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:
        for n in range(20):  # warm-up
            response = await request(client, -1 - n)
            assert response.status_code < 300, response.text
        latencies: list[float] = []
        queue = iter(range(requests))

        async def worker() -> None:
            for n in queue:
                started = time.perf_counter()
                response = await request(client, n)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code < 300, response.text

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": requests / elapsed,
    }
