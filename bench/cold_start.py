"""Cold start: process launch to the first 200 from `/health`, median of 5.

    .venv/bin/python -m bench.cold_start [--runs 5] [--compare DIR]

Each run starts `enque serve` on a new, already-migrated SQLite database (the first start of a
deployment also migrates; that is timed separately on the first run). The ceiling is the bare
FastAPI app on the same server stack, started alternately with Enque so both see the same load
on a shared machine. Besides the wall time, the CPU time the process used from launch to its
first 200 is read from /proc: it depends much less than the wall time on what else the machine
is doing. `--compare DIR` also starts the Enque of another source tree (e.g. an older commit
from `git archive`) in turn with this one, on the same database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.harness import ROOT, bench_env, cpu_seconds, free_port, scratch_dir, wait_healthy

# routes are analysed on first use (enque.core.api.DomainRoute): what the first request pays
FIRST_ROUTE = "/v1/tickets"


def launch(
    args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the process from launch to its first 200."""
    wall, cpu, _ = launch_and_ask(args, env, cwd)
    return wall, cpu


def launch_and_ask(
    args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, path: str | None = None
) -> tuple[float, float, tuple[float, float]]:
    """`launch`, then the milliseconds of the first two requests for `path` (when given)."""
    started = time.perf_counter()
    port = free_port()
    proc = subprocess.Popen(
        [*args, "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(proc.pid)
        asked = (0.0, 0.0)
        if path is not None:
            with httpx.Client() as client:
                client.get(f"http://127.0.0.1:{port}/health")  # the connection, made once
                asked = (time_get(client, port, path), time_get(client, port, path))
        return wall, cpu, asked
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def time_get(client: httpx.Client, port: int, path: str) -> float:
    started = time.perf_counter()
    client.get(f"http://127.0.0.1:{port}{path}")
    return (time.perf_counter() - started) * 1000


def summary(name: str, runs: list[tuple[float, float]]) -> str:
    walls = [wall for wall, _ in runs]
    cpus = [cpu for _, cpu in runs]
    return (
        f"{name}: wall median {statistics.median(walls):.3f} s {[round(w, 3) for w in walls]}"
        f"; CPU median {statistics.median(cpus):.2f} s, best {min(cpus):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another source tree of Enque to time")
    options = parser.parse_args()
    count = options.runs
    # as deployed: the scheduler starts with the server (the other benches turn it off)
    env = {**bench_env(scratch_dir()), "SCHEDULER_ENABLED": "true"}
    enque = [sys.executable, "-m", "enque.cli", "serve", "--no-demo"]
    bare = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--log-level", "warning"]
    other = options.compare.resolve() if options.compare else None
    other_env = {**env, "PYTHONPATH": str(other)} if other else env
    print(f"load average at launch: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    first, first_cpu = launch(enque, env)  # creates and migrates the database
    if other:
        launch(enque, other_env, other)  # its migrations, if they differ
    runs: list[tuple[float, float]] = []
    compared: list[tuple[float, float]] = []
    ceiling: list[tuple[float, float]] = []
    asked: list[tuple[float, float]] = []
    for _ in range(count):
        wall, cpu, first_two = launch_and_ask(enque, env, path=FIRST_ROUTE)
        runs.append((wall, cpu))
        asked.append(first_two)
        if other:
            compared.append(launch(enque, other_env, other))
        ceiling.append(launch(bare))
    print(f"first start (with migrations): {first:.3f} s, CPU {first_cpu:.2f} s")
    print(summary(f"enque serve,  {count} runs", runs))
    if other:
        print(summary(f"{other.name}, {count} runs", compared))
    print(summary(f"bare FastAPI, {count} runs", ceiling))
    first_ms = statistics.median(first for first, _ in asked)
    again_ms = statistics.median(again for _, again in asked)
    print(
        f"enque serve, first request of a route after the start (GET {FIRST_ROUTE}, 401; "
        f"builds the route): median {first_ms:.1f} ms; the same request again {again_ms:.1f} ms"
    )
    ratio = statistics.median(w for w, _ in runs) / statistics.median(w for w, _ in ceiling)
    cpu_ratio = statistics.median(c for _, c in runs) / statistics.median(c for _, c in ceiling)
    print(f"ratio to the bare start: wall {ratio:.2f}×, CPU {cpu_ratio:.2f}×")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
