"""Login throughput: meant to be slow (argon2id), shown beside the hash cost measured here.

.venv/bin/python -m bench.login [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx

from bench.harness import bench_env, scratch_dir, start_enque, wrk
from enque.core import security

LUA = """
wrk.method = "POST"
wrk.body = '{"email": "bench@example.com", "password": "benchmark password"}'
wrk.headers["Content-Type"] = "application/json"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    hasher = security._hasher
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        security.hash_password("benchmark password")
        samples.append(time.perf_counter() - started)
    hash_ms = statistics.median(samples) * 1000
    print(
        f"argon2id: time_cost={hasher.time_cost}, memory_cost={hasher.memory_cost} KiB, "
        f"parallelism={hasher.parallelism}; one hash here: {hash_ms:.1f} ms "
        f"(ceiling on 2 cores ≈ {2000 / hash_ms:.0f} hashes/s)"
    )
    folder = scratch_dir()
    server = start_enque(bench_env(folder))
    try:
        httpx.post(
            server.url + "/v1/auth/register",
            json={
                "email": "bench@example.com",
                "password": "benchmark password",
                "displayName": "Bench",
                "workspaceName": "Bench",
                "subdomain": "bench",
            },
        ).raise_for_status()
        script = Path(folder) / "login.lua"
        script.write_text(LUA)
        load = wrk(
            server.url + "/v1/auth/login", connections=10, seconds=args.seconds, script=script
        )
        print("| endpoint | requests/s | p50 ms | p99 ms | errors |")
        print("| --- | --- | --- | --- | --- |")
        print(load.row("POST /v1/auth/login, 10 conns"))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
