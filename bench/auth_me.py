"""`GET /v1/auth/me` under load beside a bare FastAPI endpoint measured in the same run.

    .venv/bin/python -m bench.auth_me [--seconds 10] [--db postgres]

1 worker each; wrk with 2 threads at 50 (and 10) concurrent connections.
"""

from __future__ import annotations

import argparse

import httpx

from bench.harness import bench_env, scratch_dir, start_bare, start_enque, wrk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    overrides = {}
    if args.db == "postgres":
        from tests.support.services import create_pg_database

        overrides["DATABASE_URL"] = create_pg_database("enque_bench_auth_me")
    env = bench_env(scratch_dir(), **overrides)
    enque = start_enque(env)
    bare = start_bare()
    try:
        response = httpx.post(
            enque.url + "/v1/auth/register",
            json={
                "email": "bench@example.com",
                "password": "benchmark password",
                "displayName": "Bench",
                "workspaceName": "Bench",
                "subdomain": "bench",
            },
        )
        token = response.json()["data"]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(enque.url + "/v1/auth/me", headers=auth).status_code == 200
        print(f"database: {args.db}, 1 worker, wrk -t2, {args.seconds}s per row\n")
        print("| endpoint | requests/s | p50 ms | p99 ms | errors |")
        print("| --- | --- | --- | --- | --- |")
        results = {}
        for connections in (50, 10):
            wrk(bare.url + "/bare", connections=connections, seconds=2)  # warm up
            ceiling = wrk(bare.url + "/bare", connections=connections, seconds=args.seconds)
            wrk(enque.url + "/v1/auth/me", connections=connections, seconds=2, headers=auth)
            me = wrk(
                enque.url + "/v1/auth/me",
                connections=connections,
                seconds=args.seconds,
                headers=auth,
            )
            print(ceiling.row(f"bare FastAPI, {connections} conns"))
            print(me.row(f"GET /v1/auth/me, {connections} conns"))
            results[connections] = me.requests_per_s / ceiling.requests_per_s
        for connections, ratio in results.items():
            print(f"\nratio /auth/me ÷ bare at {connections} connections: {ratio:.2f}")
    finally:
        enque.stop()
        bare.stop()


if __name__ == "__main__":
    main()
