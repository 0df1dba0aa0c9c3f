"""Cold start: process launch to the first 200 from `/health`, median of 5.

    .venv/bin/python -m bench.cold_start

Each run starts `enque serve` on a new, already-migrated SQLite database (the first start of a
deployment also migrates; that is timed separately on the first run). The ceiling is the bare
FastAPI app on the same server stack.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.harness import ROOT, bench_env, free_port, scratch_dir, wait_healthy


def launch(args: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    port = free_port()
    proc = subprocess.Popen(
        [*args, "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    env = bench_env(scratch_dir())
    enque = [sys.executable, "-m", "enque.cli", "serve", "--no-demo"]
    bare = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--log-level", "warning"]
    first = launch(enque, env)  # creates and migrates the database
    runs = [launch(enque, env) for _ in range(5)]
    ceiling = [launch(bare) for _ in range(5)]
    print(f"first start (with migrations): {first:.3f} s")
    print(
        f"enque serve, median of 5:      {statistics.median(runs):.3f} s",
        [round(r, 3) for r in runs],
    )
    print(f"bare FastAPI, median of 5:     {statistics.median(ceiling):.3f} s")
    print(f"ratio: {statistics.median(runs) / statistics.median(ceiling):.2f}× the bare start")


if __name__ == "__main__":
    main()
