"""Webhook delivery: throughput and latency from commit to receipt, beside ceilings.

A real server (`enque serve`, SQLite) with one subscription to `ticket.created` pointing at a
receiver on 127.0.0.1 (allowed by `WEBHOOK_ALLOWED_HOSTS`). `--tickets` tickets are created
by `--concurrency` clients; each delivery's latency is its arrival at the receiver minus the
moment the creating request was sent (an upper bound: the commit comes later) and minus the
moment its response arrived (the delivery may beat the response: the send starts at commit).
Ceilings measured in the same run:
- ticket creation with no subscription (what the deliveries ride on),
- direct POSTs to the receiver at the same concurrency (what the receiver can take).

Run: .venv/bin/python bench/webhooks.py [--tickets 1000] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
import uuid
from pathlib import Path

import httpx
import orjson
import uvicorn

from bench.harness import bench_env, scratch_dir, start_enque


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}  # ticket id → arrival (perf_counter)
        self.count = 0

    async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        moment = time.perf_counter()
        self.count += 1
        if body:
            payload = orjson.loads(body)
            ticket_id = payload.get("payload", {}).get("id")
            if ticket_id:
                self.arrivals[ticket_id] = moment
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def serve_receiver(receiver: Receiver) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        receiver, log_level="warning", lifespan="off", access_log=False, interface="asgi3"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return server, task, port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def create_tickets(
    client: httpx.AsyncClient, count: int, concurrency: int
) -> tuple[float, dict[str, tuple[float, float]]]:
    """Seconds taken, and each ticket's (request sent, response received) perf_counter times."""
    done: dict[str, tuple[float, float]] = {}
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            body = {
                "subject": f"Load {n}",
                "body": "<p>x</p>",
                "customer": {"email": f"c{n}@load.test", "name": "Load"},
            }
            sent = time.perf_counter()
            response = await client.post("/v1/tickets", json=body)
            assert response.status_code == 201, response.text
            done[response.json()["data"]["id"]] = (sent, time.perf_counter())

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, done


async def direct_posts(port: int, count: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        queue = iter(range(count))
        body = orjson.dumps({"type": "ceiling", "payload": {}})

        async def worker() -> None:
            for _ in queue:
                response = await client.post(f"http://127.0.0.1:{port}/hook", content=body)
                assert response.status_code == 204

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - began)


async def run(data_dir: Path, tickets: int, concurrency: int) -> None:
    receiver = Receiver()
    rserver, rtask, port = await serve_receiver(receiver)
    server = start_enque(bench_env(data_dir, WEBHOOK_ALLOWED_HOSTS="127.0.0.1"))
    try:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            name = "b" + uuid.uuid4().hex[:10]
            registered = await client.post(
                "/v1/auth/register",
                json={
                    "email": f"{name}@bench.test",
                    "password": "a bench password 123",
                    "displayName": "Bench",
                    "workspaceName": name,
                    "subdomain": name,
                },
            )
            assert registered.status_code == 201, registered.text
            client.headers["Authorization"] = f"Bearer {registered.json()['data']['token']}"
            for _ in range(2):  # warm up
                await create_tickets(client, 20, concurrency)
            plain_s, _ = await create_tickets(client, tickets, concurrency)
            hook = await client.post(
                "/v1/webhooks",
                json={"url": f"http://127.0.0.1:{port}/hook", "events": ["ticket.created"]},
            )
            assert hook.status_code == 201, hook.text
            with_s, done = await create_tickets(client, tickets, concurrency)
            deadline = time.perf_counter() + 120
            while len([t for t in done if t in receiver.arrivals]) < tickets:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.05)
            arrived = [t for t in done if t in receiver.arrivals]
            last = max(receiver.arrivals[t] for t in arrived)
            first_start = min(sent for sent, _ in done.values())
            from_sent = [(receiver.arrivals[t] - done[t][0]) * 1000 for t in arrived]
            from_answer = [(receiver.arrivals[t] - done[t][1]) * 1000 for t in arrived]
        direct = await direct_posts(port, tickets, concurrency)
    finally:
        server.stop()
        rserver.should_exit = True
        await rtask
    print(f"tickets: {tickets}, concurrency {concurrency}, SQLite, one worker")
    print(f"ceiling: ticket creation without a webhook   {tickets / plain_s:8.1f} tickets/s")
    print(f"ceiling: direct POSTs to the receiver          {direct:8.1f} requests/s")
    print(f"ticket creation with a webhook                 {tickets / with_s:8.1f} tickets/s")
    print(f"deliveries received                            {len(arrived)} of {tickets}")
    print(
        f"delivery throughput (first request → last)     "
        f"{len(arrived) / (last - first_start):8.1f} deliveries/s"
    )
    # the commit lies between the request being sent and its answer: two bounds
    for label, values in (
        ("request sent → receipt", from_sent),
        ("response → receipt    ", from_answer),
    ):
        print(
            f"{label}  p50 {statistics.median(values):7.1f} ms   "
            f"p99 {percentile(values, 0.99):7.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(scratch_dir(), args.tickets, args.concurrency))


if __name__ == "__main__":
    main()
