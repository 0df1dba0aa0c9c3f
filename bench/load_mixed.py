"""Mixed agent workload on the production shape — `enque serve --workers N` (ENV=production) on
PostgreSQL and Redis — its scaling with the worker count, and its behaviour through faults.

    .venv/bin/python -m bench.load_mixed                      # 100 agents, 300 s, 2 workers
    .venv/bin/python -m bench.load_mixed --workers 1,2,4 --seconds 60        # scaling
    .venv/bin/python -m bench.load_mixed --fault redis --fault postgres --fault kill-worker

Each agent of one workspace, with its own token and connection, loops over a weighted mix: the
inbox with filters, a ticket opened (detail and thread), a public reply, an internal note, a
change of status, priority or assignee to the ticket it opened last, sent with the `version` it
saw then (409 CONFLICT when someone changed it meanwhile is an expected outcome: the ticket is
read again, the change retried, and the 409 counted apart), a search, and now and then a new
ticket. A quarter of the tickets picked come from 40 "hot" ones, so agents meet. Each agent
also holds a socket on `/v1/realtime` subscribed to `tickets` (in a second client process, so
fan-out traffic does not slow the agents' event loop), answering the server's pings and
reconnecting with backoff. The workspace is seeded with `enque seed-demo`'s
bulk inserts (agents and 5,000 tickets with their threads).

The ceiling is `GET /v1/auth/me` (token check only) sent by the same agents to the same server
just before the mix. The client runs on the same machine, sharing its CPUs with the server.

Faults (each its own run, during load):
- `redis`: the private Redis is killed (SIGKILL) for `--outage` seconds, then started again;
- `postgres`: the private cluster is stopped with `pg_ctl stop -m immediate` (a crash), then
  started again (crash recovery);
- `kill-worker`: one uvicorn worker gets SIGKILL; the supervisor starts another.
Requests during an outage must answer 503 SERVICE_UNAVAILABLE in the envelope; recovery is timed
from the dependency being back to the first successful request and `/health/ready` 200. Every
write carries a unique marker; afterwards the database must hold every acknowledged write
exactly once, every ambiguous one (5xx, dropped connection) at most once, no refused one, and
no marker twice.

Redis and PostgreSQL are private servers on free ports started by this script (never the
machine's shared ones); `--pg shared` puts the database on the server at 127.0.0.1:5432 instead
(no `postgres` fault then). Everything started is stopped by pid and its folder removed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Server,
    bench_env,
    children,
    cpu_seconds,
    scratch_dir,
    start_enque,
)
from enque.agents.models import AgentWorkspace  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.migrate import upgrade  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.core.security import issue_token  # noqa: E402
from enque.seeding import COMMON, VOCABULARY, seed_workspace  # noqa: E402
from tests.support.private import PrivatePostgres, PrivateRedis  # noqa: E402
from tests.support.services import create_pg_database, drop_pg_database  # noqa: E402

MIX = {"inbox": 30, "open": 20, "update": 15, "reply": 10, "note": 10, "search": 10, "create": 5}
INBOX_FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "Open"},
    {"assigneeId": "me"},
    {"status": ["Open", "In Progress"], "sort": "priority"},
    {"priority": "High"},
    {"tag": "vip"},
    {"status": "With User", "sort": "-createdAt"},
]
CHANGES: list[tuple[str, list[str]]] = [
    ("status", ["Open", "In Progress", "With User", "Closed"]),
    ("priority", ["Low", "Medium", "High", "Critical"]),
    ("assigneeId", []),  # an agent of the workspace
]
HOT_TICKETS = 40  # a quarter of the picks land here: concurrent changes meet (409)
MARKER = re.compile(r"mk[0-9a-f]{32}")
CONTROL = {"ready", "subscribed", "unsubscribed", "ping", "pong", "error", "resync"}
TRANSPORT = -1  # status of a request that got no HTTP answer

INBOX = "GET /v1/tickets"
SEARCH = "GET /v1/tickets?q="
DETAIL = "GET /v1/tickets/{id}"
THREAD = "GET /v1/tickets/{id}/comments"
PATCH = "PATCH /v1/tickets/{id}"
REPLY = "POST /v1/tickets/{id}/reply"
NOTE = "POST /v1/tickets/{id}/notes"
CREATE = "POST /v1/tickets"
ROUTES = [INBOX, SEARCH, DETAIL, THREAD, PATCH, REPLY, NOTE, CREATE]


# ---------------------------------------------------------------- what the client saw


@dataclass(slots=True)
class Call:
    label: str
    start: float  # time.monotonic(), comparable across this machine's processes
    end: float
    status: int
    outcome: str  # ok | conflict | unavailable | transport | error
    detail: str = ""


def classify(label: str, response: httpx.Response) -> tuple[str, str]:
    """(outcome, detail) of one answer; every failure must be an envelope."""
    status = response.status_code
    if status < 300:
        return "ok", ""
    try:
        body = orjson.loads(response.content)
        code = body["error"]["code"]
        envelope = body["success"] is False and isinstance(code, str)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        envelope, code = False, ""
    if not envelope:
        return "error", f"{status} without the envelope"
    if status == 409 and label == PATCH:
        return "conflict", ""
    if status == 503 and code == "SERVICE_UNAVAILABLE":
        return "unavailable", ""
    return "error", f"{status} {code}"


@dataclass
class Shared:
    pool: list[str]  # ticket ids agents work on (open at seeding, and the ones they create)
    agent_ids: list[str]
    calls: list[Call] = field(default_factory=list)
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # kind, marker, state
    gave_up: int = 0  # changes still conflicting after 4 tries

    def pick(self, rng: random.Random) -> str:
        if rng.random() < 0.25:
            return rng.choice(self.pool[:HOT_TICKETS])
        return rng.choice(self.pool)


class Agent:
    """One agent's loop over the mix, on its own connection."""

    def __init__(self, n: int, url: str, token: str, shared: Shared, seed: int) -> None:
        self.n = n
        self.shared = shared
        self.rng = random.Random(seed * 1000 + n)
        self.client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,  # a proxy's usual read timeout (nginx: 60 s)
            # below the server's keep-alive timeout (5 s), so an idle connection is never
            # reused at the moment the server closes it
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=3),
        )
        self.failures = 0
        self.opened: tuple[str, int] | None = None  # the ticket opened last, its version
        self.actions: dict[str, Callable[[], Awaitable[None]]] = {
            "inbox": self.inbox,
            "open": self.open,
            "update": self.update,
            "reply": self.reply,
            "note": self.note,
            "search": self.search,
            "create": self.create,
        }

    async def request(self, label: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.shared.calls.append(
                Call(label, started, time.monotonic(), TRANSPORT, "transport", type(exc).__name__)
            )
            self.failures += 1
            return None
        outcome, detail = classify(label, response)
        self.shared.calls.append(
            Call(label, started, time.monotonic(), response.status_code, outcome, detail)
        )
        self.failures = self.failures + 1 if outcome in ("unavailable", "error") else 0
        return response

    async def run(self, deadline: float) -> None:
        names, weights = list(MIX), list(MIX.values())
        while time.monotonic() < deadline:
            await self.actions[self.rng.choices(names, weights)[0]]()
            if self.failures:  # back off while the server answers errors (an outage)
                await asyncio.sleep(min(1.0, 0.05 * 2**self.failures) * self.rng.uniform(0.5, 1))

    async def ceiling(self, deadline: float, latencies: list[float]) -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await self.client.get("/v1/auth/me")
            assert response.status_code == 200, response.text
            latencies.append(time.monotonic() - started)

    # ------------------------------------------------------------ the mix

    async def inbox(self) -> None:
        params = {"limit": 25, **self.rng.choice(INBOX_FILTERS)}
        await self.request(INBOX, "GET", "/v1/tickets", params=params)

    async def search(self) -> None:
        word = self.rng.choice(COMMON if self.rng.random() < 0.5 else VOCABULARY[10:400])
        await self.request(SEARCH, "GET", "/v1/tickets", params={"q": word, "limit": 25})

    async def open(self) -> None:
        ticket = self.shared.pick(self.rng)
        detail = await self.request(DETAIL, "GET", f"/v1/tickets/{ticket}")
        if detail is not None and detail.status_code == 200:
            self.opened = (ticket, orjson.loads(detail.content)["data"]["version"])
            await self.request(THREAD, "GET", f"/v1/tickets/{ticket}/comments?limit=50")

    async def update(self) -> None:
        """Change the ticket this agent opened last, with the version it saw then (others may
        have changed it since: 409, then the ticket is read again and the change retried)."""
        if self.opened is None:
            await self.open()
        if self.opened is None:
            return
        ticket, version = self.opened
        self.opened = None
        name, values = self.rng.choice(CHANGES)
        value = self.rng.choice(values or self.shared.agent_ids)
        for _ in range(4):
            body = {name: value, "version": version}
            changed = await self.request(PATCH, "PATCH", f"/v1/tickets/{ticket}", json=body)
            if changed is None or changed.status_code != 409:
                return
            current = await self.request(DETAIL, "GET", f"/v1/tickets/{ticket}")
            if current is None or current.status_code != 200:
                return
            version = orjson.loads(current.content)["data"]["version"]
        self.shared.gave_up += 1

    async def reply(self) -> None:
        marker = "mk" + uuid.uuid4().hex
        path = f"/v1/tickets/{self.shared.pick(self.rng)}/reply"
        await self.write("reply", marker, REPLY, path, {"content": f"<p>Reply {marker}</p>"})

    async def note(self) -> None:
        marker = "mk" + uuid.uuid4().hex
        path = f"/v1/tickets/{self.shared.pick(self.rng)}/notes"
        await self.write("note", marker, NOTE, path, {"content": f"<p>Note {marker}</p>"})

    async def create(self) -> None:
        marker = "mk" + uuid.uuid4().hex
        body = {
            "subject": f"Load test {marker}",
            "body": "<p>The printer prints nothing since this morning.</p>",
            "customer": {"email": f"load{self.n}-{self.rng.randrange(20)}@example.com"},
        }
        response = await self.write("ticket", marker, CREATE, "/v1/tickets", body)
        if response is not None and response.status_code == 201:
            self.shared.pool.append(orjson.loads(response.content)["data"]["id"])

    async def write(
        self, kind: str, marker: str, label: str, path: str, body: dict[str, Any]
    ) -> httpx.Response | None:
        """A write carrying `marker`: acknowledged (2xx), refused (4xx) or ambiguous."""
        response = await self.request(label, "POST", path, json=body)
        if response is None or response.status_code >= 500:
            state = "ambiguous"
        else:
            state = "acked" if response.status_code < 300 else "refused"
        self.shared.writes.append((kind, marker, state))
        return response


# ---------------------------------------------------------------- sockets (second process)


@dataclass
class FeedReport:
    events: Counter[str] = field(default_factory=Counter)
    live: bool = False
    reconnects: int = 0
    resyncs: int = 0  # `resync` received (the server closes the socket after it)
    failed_attempts: int = 0  # connection attempts that never reached `subscribed`
    closes: Counter[str] = field(default_factory=Counter)
    gaps: list[float] = field(default_factory=list)  # seconds from a loss to subscribed again
    cpu_s: float = 0.0


async def _feed(url: str, token: str, report: FeedReport, seed: int) -> None:
    """One socket on `tickets`: counts events, answers pings, reconnects with backoff."""
    from websockets.asyncio.client import connect

    rng = random.Random(seed)
    delay = 0.2
    lost_at: float | None = None
    while True:
        try:
            async with connect(
                f"{url}?token={token}", open_timeout=10, ping_interval=None, compression=None
            ) as ws:
                while orjson.loads(await ws.recv())["type"] != "ready":
                    pass
                await ws.send('{"type":"subscribe","channel":"tickets"}')
                while orjson.loads(await ws.recv())["type"] != "subscribed":
                    pass
                report.live = True
                if lost_at is not None:
                    report.reconnects += 1
                    report.gaps.append(time.monotonic() - lost_at)
                    lost_at = None
                delay = 0.2
                async for raw in ws:
                    kind = orjson.loads(raw)["type"]
                    if kind == "ping":
                        await ws.send('{"type":"pong"}')
                    elif kind == "resync":
                        report.resyncs += 1
                    elif kind not in CONTROL:
                        report.events[kind] += 1
                report.closes[str(ws.close_code)] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            report.closes[str(code) if code else type(exc).__name__] += 1
            if not report.live:
                report.failed_attempts += 1
        if report.live:
            lost_at = time.monotonic()
            report.live = False
        await asyncio.sleep(delay * rng.uniform(0.5, 1.5))
        delay = min(5.0, delay * 2)


def feeds_main(url: str, tokens: list[str], pipe: Connection) -> None:
    """The socket process: opens every socket, says `connected`, runs until `stop`."""
    import uvloop

    async def main() -> None:
        reports = [FeedReport() for _ in tokens]
        tasks = [
            asyncio.create_task(_feed(url, token, report, n))
            for n, (token, report) in enumerate(zip(tokens, reports, strict=True))
        ]
        loop = asyncio.get_running_loop()
        for _ in range(1200):  # two minutes for every socket to be subscribed
            if all(r.live for r in reports):
                break
            await asyncio.sleep(0.1)
        pipe.send(sum(r.live for r in reports))
        await loop.run_in_executor(None, pipe.recv)  # "stop"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        total = FeedReport()
        for report in reports:
            total.events.update(report.events)
            total.reconnects += report.reconnects
            total.resyncs += report.resyncs
            total.failed_attempts += report.failed_attempts
            total.closes.update(report.closes)
            total.gaps += report.gaps
        usage = resource.getrusage(resource.RUSAGE_SELF)
        total.cpu_s = usage.ru_utime + usage.ru_stime
        pipe.send(total)

    uvloop.run(main())


# ---------------------------------------------------------------- the stack


class Stack:
    """Private Redis, a PostgreSQL cluster (private, or the shared server), a data folder."""

    def __init__(self, pg: str) -> None:
        self.root = scratch_dir()
        self.redis = PrivateRedis().start()
        self.pg = PrivatePostgres().init().start() if pg == "private" else None
        self.databases: list[str] = []

    def database(self) -> str:
        name = f"enque_load_{secrets.token_hex(4)}"
        self.databases.append(name)
        return self.pg.create_database(name) if self.pg else create_pg_database(name)

    def database_cpu(self) -> float | None:
        """CPU seconds of the private PostgreSQL server's processes so far (None: shared)."""
        if self.pg is None:
            return None
        postmaster = int((self.pg.data / "postmaster.pid").read_text().split()[0])
        return cpu_seconds(postmaster)

    def close(self) -> None:
        self.redis.close()
        if self.pg is not None:
            self.pg.close()
        else:
            for name in self.databases:
                drop_pg_database(name)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Seeded:
    workspace_id: str
    agents: list[tuple[str, str]]  # agent id, token
    tickets: list[str]
    seconds: float


async def seed(settings: Settings, agents: int, tickets: int) -> Seeded:
    """A workspace with `agents` agents (tokens issued) and `tickets` tickets with threads."""
    started = time.monotonic()
    runtime = Runtime.build(settings)
    try:
        async with runtime.db.session() as session:
            _, workspace = await create_workspace_with_admin(
                session,
                email="owner@example.com",
                password="load test password",
                display_name="Owner",
                workspace_name="Load",
                subdomain="load",
            )
        await seed_workspace(runtime, workspace.id, tickets=tickets, agents=agents)
        async with runtime.db.session() as session:
            members = (
                await session.execute(
                    select(AgentWorkspace.agent_id, AgentWorkspace.role).where(
                        AgentWorkspace.workspace_id == workspace.id,
                        AgentWorkspace.role != "admin",
                    )
                )
            ).all()
            open_ids = (
                await session.scalars(
                    text(
                        "SELECT id FROM tickets WHERE workspace_id = :w AND status <> 'Closed' "
                        "ORDER BY number"
                    ),
                    {"w": workspace.id},
                )
            ).all()
    finally:
        await runtime.close()
    secret = settings.resolved_secret_key()
    issued = [
        (
            agent_id,
            issue_token(
                secret=secret,
                agent_id=agent_id,
                workspace_id=workspace.id,
                role=role,
                token_version=0,
                lifetime=86400,
            )[0],
        )
        for agent_id, role in members
    ]
    return Seeded(workspace.id, issued, list(open_ids), time.monotonic() - started)


def worker_pids(server: Server) -> list[int]:
    """The uvicorn worker processes (spawned children of the `enque serve` process)."""
    found = []
    for pid in children(server.proc.pid):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


# ---------------------------------------------------------------- faults


@dataclass
class Fault:
    kind: str
    down_at: float = 0.0
    back_at: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)


async def inject(kind: str, stack: Stack, server: Server, outage: float, fault: Fault) -> None:
    fault.down_at = time.monotonic()
    if kind == "redis":
        await asyncio.to_thread(stack.redis.stop)
        await asyncio.sleep(outage)
        await asyncio.to_thread(stack.redis.start)
        fault.back_at = time.monotonic()
    elif kind == "postgres":
        assert stack.pg is not None
        await asyncio.to_thread(stack.pg.stop, "immediate")
        fault.notes["pg_ctl stop -m immediate"] = f"{time.monotonic() - fault.down_at:.2f} s"
        await asyncio.sleep(outage)
        began = time.monotonic()
        await asyncio.to_thread(stack.pg.start)
        fault.back_at = time.monotonic()
        fault.notes["pg_ctl start (crash recovery)"] = f"{fault.back_at - began:.2f} s"
    else:
        before = worker_pids(server)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        fault.notes["killed worker"] = f"pid {victim} of {len(before)}"
        while True:
            await asyncio.sleep(0.05)
            now = worker_pids(server)
            if len(now) == len(before) and set(now) - set(before):
                break
            if time.monotonic() - fault.down_at > 60:
                fault.notes["replacement"] = "none within 60 s"
                return
        fault.back_at = time.monotonic()
        fault.notes["replacement worker up after"] = f"{fault.back_at - fault.down_at:.2f} s"


async def prober(
    url: str, path: str, token: str | None, samples: list[tuple[float, int]], stop: asyncio.Event
) -> None:
    """GET `path` every 100 ms: (start time, status) with TRANSPORT for no answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = await client.get(path)
                outcome, _ = classify(path, response)
                status = response.status_code if outcome != "error" else -2
            except httpx.HTTPError:
                status = TRANSPORT
            samples.append((started, status))
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------- one run


@dataclass
class Result:
    workers: int
    fault: Fault | None
    agents: int
    seconds: float
    calls: list[Call]
    writes: list[tuple[str, str, str]]
    found: Counter[str]
    gave_up: int
    feeds: FeedReport
    sockets: int
    counted_sockets: float  # `enque_websocket_connections` at the end
    ceiling_rps: float
    ceiling_p99: float
    server_cpu: float
    database_cpu: float | None
    client_cpu: float
    ready: list[tuple[float, int]]
    api: list[tuple[float, int]]
    seeded: Seeded
    logged_errors: Counter[str]
    load: tuple[float, float]


async def run(opts: argparse.Namespace, stack: Stack, workers: int, kind: str | None) -> Result:
    database_url = stack.database()
    env = bench_env(
        stack.root,
        ENV="production",
        PUBLIC_URL="https://help.example.test",
        DATABASE_URL=database_url,
        REDIS_URL=stack.redis.url,
        REDIS_PREFIX=f"load{secrets.token_hex(3)}:",
        LOG_JSON="true",
    )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        secret_key=env["SECRET_KEY"],
        encryption_key=env["ENCRYPTION_KEY"],
        data_dir=stack.root,
    )
    await upgrade(settings)
    seeded = await seed(settings, opts.agents, opts.tickets)
    print(
        f"  seeded {opts.agents} agents and {opts.tickets:,} tickets in {seeded.seconds:.1f} s",
        file=sys.stderr,
    )
    log = stack.root / f"server-{workers}-{kind or 'none'}.log"
    server = start_enque(env, workers=workers, log=log)
    ws_url = server.url.replace("http://", "ws://") + "/v1/realtime"
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    tokens = [token for _, token in seeded.agents]
    feeder = context.Process(target=feeds_main, args=(ws_url, tokens, theirs), daemon=True)
    shared = Shared(pool=seeded.tickets, agent_ids=[a for a, _ in seeded.agents])
    agents = [
        Agent(n, server.url, token, shared, opts.seed) for n, (_, token) in enumerate(seeded.agents)
    ]
    try:
        latencies: list[float] = []
        began = time.monotonic()
        ceiling_for = min(10.0, opts.seconds / 5)
        await asyncio.gather(*(a.ceiling(began + ceiling_for, latencies) for a in agents))
        ceiling_rps = len(latencies) / (time.monotonic() - began)
        latencies.sort()
        ceiling_p99 = latencies[int(len(latencies) * 0.99)] * 1000

        feeder.start()
        sockets = await asyncio.to_thread(ours.recv)
        stop = asyncio.Event()
        ready: list[tuple[float, int]] = []
        api: list[tuple[float, int]] = []
        probes = [
            asyncio.create_task(prober(server.url, "/health/ready", None, ready, stop)),
            asyncio.create_task(prober(server.url, "/v1/tickets?limit=1", tokens[0], api, stop)),
        ]
        load_before = os.getloadavg()[0]
        server_cpu = cpu_seconds(server.proc.pid)
        database_cpu = stack.database_cpu()
        client_cpu = time.process_time()
        started = time.monotonic()
        wall_started = int(time.time()) - 1
        deadline = started + opts.seconds
        fault = Fault(kind) if kind else None
        injector = None
        if fault is not None:
            fault_at = opts.fault_at if opts.fault_at is not None else opts.seconds / 3

            async def later() -> None:
                await asyncio.sleep(fault_at)
                await inject(fault.kind, stack, server, opts.outage, fault)

            injector = asyncio.create_task(later())
        await asyncio.gather(*(a.run(deadline) for a in agents))
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(server.proc.pid) - server_cpu
        if database_cpu is not None and kind != "postgres":  # a restarted cluster starts at 0
            database_cpu = (stack.database_cpu() or 0) - database_cpu
        else:
            database_cpu = None
        client_cpu = time.process_time() - client_cpu
        load_after = os.getloadavg()[0]
        if injector is not None:
            await injector
        await asyncio.sleep(2)  # events of the last writes reach the sockets
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            scraped = (await client.get("/metrics")).text
        gauge = re.search(r"^enque_websocket_connections (\S+)$", scraped, re.M)
        counted = float(gauge.group(1)) if gauge else float("nan")
        stop.set()
        await asyncio.gather(*probes)
        ours.send("stop")
        feeds: FeedReport = await asyncio.to_thread(ours.recv)
        found = await markers(database_url, seeded.workspace_id, wall_started)
    finally:
        for agent in agents:
            await agent.client.aclose()
        if feeder.is_alive():
            feeder.kill()
        feeder.join(timeout=10)
        server.stop()
    logged = log_errors(log)
    if opts.logs:
        os.makedirs(opts.logs, exist_ok=True)
        shutil.copy(log, os.path.join(opts.logs, log.name))
    return Result(
        workers=workers,
        fault=fault,
        agents=len(agents),
        seconds=elapsed,
        calls=shared.calls,
        writes=shared.writes,
        found=found,
        gave_up=shared.gave_up,
        feeds=feeds,
        sockets=sockets,
        counted_sockets=counted,
        ceiling_rps=ceiling_rps,
        ceiling_p99=ceiling_p99,
        server_cpu=server_cpu,
        database_cpu=database_cpu,
        client_cpu=client_cpu + feeds.cpu_s,
        ready=ready,
        api=api,
        seeded=seeded,
        logged_errors=logged,
        load=(load_before, load_after),
    )


def log_errors(log: Path) -> Counter[str]:
    """Server log lines at level error, by message and the last line of their exception."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if '"level":"error"' not in line:
            continue
        entry = orjson.loads(line)
        last = [part for part in str(entry.get("exc", "")).splitlines() if part.strip()][-1:]
        found[f"{entry['message']}: {last[0].strip()[:120] if last else ''}"] += 1
    return found


async def markers(database_url: str, workspace_id: str, since: int) -> Counter[str]:
    """How many times each marker is stored: comments' text and tickets' subjects."""
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    found: Counter[str] = Counter()
    try:
        async with engine.connect() as conn:
            for sql in (
                "SELECT text FROM comments WHERE workspace_id = :w AND created_at >= :t",
                "SELECT subject FROM tickets WHERE workspace_id = :w AND created_at >= :t",
            ):
                for value in (await conn.scalars(text(sql), {"w": workspace_id, "t": since})).all():
                    found.update(MARKER.findall(value or ""))
    finally:
        await engine.dispose()
    return found


# ---------------------------------------------------------------- report


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(v * 1000 for v in values)
    return pct(ordered, 0.5), pct(ordered, 0.95), pct(ordered, 0.99)


def route_table(result: Result) -> list[str]:
    lines = [
        "| route | requests | 2xx | 409 conflict | 503 | no answer | other errors "
        "| p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in ROUTES:
        calls = [c for c in result.calls if c.label == label]
        count = Counter(c.outcome for c in calls)
        p50, p95, p99 = ms([c.end - c.start for c in calls if c.outcome in ("ok", "conflict")])
        lines.append(
            f"| `{label}` | {len(calls):,} | {count['ok']:,} | {count['conflict']:,} "
            f"| {count['unavailable']:,} | {count['transport']:,} | {count['error']:,} "
            f"| {p50:.1f} | {p95:.1f} | {p99:.1f} |"
        )
    answered = [c.end - c.start for c in result.calls if c.outcome in ("ok", "conflict")]
    p50, p95, p99 = ms(answered)
    count = Counter(c.outcome for c in result.calls)
    lines.append(
        f"| **all** | {len(result.calls):,} | {count['ok']:,} | {count['conflict']:,} "
        f"| {count['unavailable']:,} | {count['transport']:,} | {count['error']:,} "
        f"| {p50:.1f} | {p95:.1f} | {p99:.1f} |"
    )
    return lines


def write_table(result: Result) -> tuple[list[str], bool]:
    """Acknowledged writes stored exactly once, ambiguous ones at most once, refused never."""
    lines = [
        "| write | acknowledged | stored once | missing | duplicated | ambiguous | of which "
        "stored | refused (4xx) stored |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sent = {marker for _, marker, _ in result.writes}
    ok = True
    for kind in ("reply", "note", "ticket"):
        rows = [(m, s) for k, m, s in result.writes if k == kind]
        acked = [m for m, s in rows if s == "acked"]
        ambiguous = [m for m, s in rows if s == "ambiguous"]
        refused = [m for m, s in rows if s == "refused"]
        once = sum(1 for m in acked if result.found[m] == 1)
        missing = sum(1 for m in acked if result.found[m] == 0)
        duplicated = sum(1 for m in acked + ambiguous if result.found[m] > 1)
        landed = sum(1 for m in ambiguous if result.found[m] == 1)
        refused_stored = sum(1 for m in refused if result.found[m])
        ok &= missing == 0 and duplicated == 0 and refused_stored == 0
        lines.append(
            f"| {kind} | {len(acked):,} | {once:,} | {missing} | {duplicated} | {len(ambiguous)} "
            f"| {landed} | {refused_stored} |"
        )
    strangers = sum(1 for m in result.found if m not in sent)
    twice = sum(1 for count in result.found.values() if count > 1)
    ok &= strangers == 0 and twice == 0
    lines.append(f"\nMarkers stored twice: {twice}; markers never sent: {strangers}.")
    return lines, ok


def first(samples: list[tuple[float, int]], after: float, good: Callable[[int], bool]) -> float:
    """Seconds from `after` to the first sample started after it that is `good`."""
    for at, status in samples:
        if at >= after and good(status):
            return at - after
    return float("nan")


def fault_lines(result: Result) -> tuple[list[str], bool]:
    fault = result.fault
    assert fault is not None
    calls = result.calls
    lines = [f"Fault `{fault.kind}`: " + "; ".join(f"{k}: {v}" for k, v in fault.notes.items())]
    gaps = sorted(result.feeds.gaps)
    lines.append(
        f"- sockets ({result.sockets}): `resync` received {result.feeds.resyncs}, reconnects "
        f"{result.feeds.reconnects} (time to subscribed again: p50 "
        f"{pct(gaps, 0.5):.2f} s, max {gaps[-1] if gaps else float('nan'):.2f} s)"
    )
    ok = True
    if fault.kind == "kill-worker":

        def near(c: Call) -> bool:  # in flight when the worker died, or just after on its socket
            return c.start <= fault.down_at + 0.5 and c.end >= fault.down_at - 0.5

        lost = [c for c in calls if c.outcome == "transport" and near(c)]
        failed = [c for c in calls if c.outcome in ("error", "unavailable")]
        outside = [c for c in calls if c.outcome == "transport" and not near(c)]
        served = sum(
            1 for c in calls if fault.down_at <= c.end <= fault.down_at + 5 and c.outcome == "ok"
        )
        lines += [
            f"- requests that lost their connection to the killed worker (in flight, or sent "
            f"on a kept-alive connection to it): "
            f"{len(lost)} ({', '.join(sorted({c.detail for c in lost})) or 'none'})",
            f"- requests without an answer at other times: {len(outside)}; "
            f"answers in error: {len(failed)}",
            f"- requests answered in the 5 s after the kill: {served:,}",
        ]
        lines.append(
            f"- `enque_websocket_connections` at the end: {result.counted_sockets:.0f} "
            f"(sockets open: {result.sockets})"
        )
        ok = not outside and not failed and len(lost) <= result.agents
        ok &= result.counted_sockets == result.sockets
        return lines, ok
    red = first(result.ready, fault.down_at, lambda s: s == 503)
    green = first(result.ready, fault.back_at, lambda s: s == 200)
    api_ok = first(result.api, fault.back_at, lambda s: 200 <= s < 300)
    agents_ok = min(
        (c.end - fault.back_at for c in calls if c.outcome == "ok" and c.start >= fault.back_at),
        default=float("nan"),
    )
    recovered = fault.back_at + max(green, api_ok)

    def inside(c: Call) -> bool:
        return c.end >= fault.down_at and c.start <= recovered + 1

    during = [c for c in calls if inside(c)]
    outside = [c for c in calls if not inside(c) and c.outcome not in ("ok", "conflict")]
    unavailable = [c for c in during if c.outcome == "unavailable"]
    errors = Counter(c.detail for c in during if c.outcome in ("error", "transport"))
    strays = Counter(
        f"{c.detail or c.outcome} at {c.start - fault.back_at:+.1f} s" for c in outside
    )
    bare_ready = sum(1 for _, s in result.ready if s == -2)
    sent = [c.end - c.start for c in unavailable if c.start >= fault.down_at]
    p50_503, _, p99_503 = ms(sent)
    slowest_503 = max(sent, default=0.0)
    caught = len(unavailable) - len(sent)  # sent before the failure, still in flight
    lines += [
        f"- outage: {fault.back_at - fault.down_at:.1f} s; `/health/ready` answered 503 "
        f"{red:.2f} s after the failure",
        f"- recovery after the dependency was back: `/health/ready` 200 after {green:.2f} s, "
        f"first successful `GET /v1/tickets` (probe every 100 ms) after {api_ok:.2f} s, "
        f"first successful agent request after {agents_ok:.2f} s (agents back off up to 1 s)",
        f"- during the outage: {len(unavailable):,} answers 503 SERVICE_UNAVAILABLE in the "
        f"envelope: {len(sent):,} to requests sent during it (p50 {p50_503:.0f} ms, p99 "
        f"{p99_503:.0f} ms, slowest {slowest_503 * 1000:.0f} ms), {caught} to requests in "
        f"flight when it began; other failures: {dict(errors) or 'none'}",
        f"- failures outside the outage: {len(outside)} ({dict(strays) or 'none'}); "
        f"readiness answers without the envelope: {bare_ready}",
    ]
    ok = not outside and not errors and bare_ready == 0
    ok &= not math.isnan(green) and not math.isnan(api_ok)
    return lines, ok


def cpu_per_request(result: Result) -> float:
    """Milliseconds of server CPU (every worker) per request of the mix."""
    return result.server_cpu * 1000 / max(len(result.calls), 1)


def logged(result: Result) -> str:
    if not result.logged_errors:
        return "none"
    return "; ".join(f"{n} × {what}" for what, n in result.logged_errors.most_common(6))


def report(result: Result) -> bool:
    title = f"{result.workers} worker(s)" + (
        f", fault `{result.fault.kind}`" if result.fault else ""
    )
    rps = len(result.calls) / result.seconds
    print(f"\n### {result.agents} agents, {result.seconds:.0f} s, {title}\n")
    database = (
        f"PostgreSQL {result.database_cpu / result.seconds:.2f}, "
        if result.database_cpu is not None
        else ""
    )
    print(
        f"Load average {result.load[0]:.2f} before, {result.load[1]:.2f} after, on "
        f"{os.cpu_count()} CPUs. CPU used (cores): server {result.server_cpu / result.seconds:.2f}"
        f", {database}client {result.client_cpu / result.seconds:.2f}. Server CPU per request: "
        f"{cpu_per_request(result):.1f} ms (the load-independent cost of this mix).\n"
    )
    print("\n".join(route_table(result)))
    print(
        f"\nOverall: **{rps:,.0f} requests/s** ({len(result.calls):,} in {result.seconds:.0f} s); "
        f"ceiling `GET /v1/auth/me` by the same agents: {result.ceiling_rps:,.0f} requests/s, "
        f"p99 {result.ceiling_p99:.1f} ms. Changes still conflicting after 4 tries: "
        f"{result.gave_up}."
    )
    feeds = result.feeds
    writes = [m for k, m, s in result.writes if k in ("reply", "note") and s == "acked"]
    expected = len(writes) * result.sockets
    print(
        f"\nWebSockets: {result.sockets} subscribed; {sum(feeds.events.values()):,} events "
        f"received ({', '.join(f'{k} {v:,}' for k, v in feeds.events.most_common())}); "
        f"`comment.created` {feeds.events['comment.created']:,} of {expected:,} "
        f"(acknowledged replies and notes × sockets) = "
        f"{feeds.events['comment.created'] / max(expected, 1):.1%}; `resync` received "
        f"{feeds.resyncs}; reconnects {feeds.reconnects}; closes "
        f"{dict(feeds.closes) or 'none'}; `enque_websocket_connections` at the end "
        f"{result.counted_sockets:.0f}.\n"
    )
    lines, data_ok = write_table(result)
    print("\n".join(lines))
    if result.fault is None:
        bad = [c for c in result.calls if c.outcome not in ("ok", "conflict")]
        fault_ok = True
        print(f"\nServer log lines at level error: {logged(result)}.")
        verdict = not bad and not result.logged_errors
        details = Counter(c.detail or c.outcome for c in bad)
        print(f"Zero errors: {'yes' if verdict else 'NO'} ({dict(details) or 'none'})")
    else:
        lines, fault_ok = fault_lines(result)
        print("\n" + "\n".join(lines))
        print(f"- server log lines at level error: {logged(result)}")
        verdict = True
    print(f"Data check (every acknowledged write once, none twice): {'yes' if data_ok else 'NO'}")
    if result.fault is not None:
        print(f"Fault behaviour as expected: {'yes' if fault_ok else 'NO'}")
    return verdict and data_ok and fault_ok


def scaling(results: list[Result]) -> None:
    base = len(results[0].calls) / results[0].seconds
    print(f"\n### Scaling ({results[0].agents} agents, {results[0].seconds:.0f} s each)\n")
    print(
        "| workers | requests/s | × 1 worker | p99 ms | errors | ceiling req/s | server cores "
        "| server CPU ms/request |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        rps = len(result.calls) / result.seconds
        answered = [c.end - c.start for c in result.calls if c.outcome in ("ok", "conflict")]
        bad = sum(1 for c in result.calls if c.outcome not in ("ok", "conflict"))
        print(
            f"| {result.workers} | {rps:,.0f} | {rps / base:.2f} | {ms(answered)[2]:.1f} "
            f"| {bad} | {result.ceiling_rps:,.0f} | {result.server_cpu / result.seconds:.2f} "
            f"| {cpu_per_request(result):.1f} |"
        )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--workers", default="2", help="a count, or several: 1,2,4")
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument(
        "--fault", action="append", choices=["redis", "postgres", "kill-worker"], default=[]
    )
    parser.add_argument("--fault-at", type=float, help="seconds into the run (default: 1/3)")
    parser.add_argument("--outage", type=float, default=10, help="seconds a dependency is down")
    parser.add_argument("--pg", choices=["private", "shared"], default="private")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", help="a folder to keep the server logs in")
    opts = parser.parse_args()
    workers = [int(w) for w in opts.workers.split(",")]
    if "postgres" in opts.fault and opts.pg == "shared":
        parser.error("the postgres fault needs --pg private")
    plan: list[tuple[int, str | None]] = (
        [(workers[0], f) for f in opts.fault] if opts.fault else [(w, None) for w in workers]
    )
    print(
        f"Mixed workload: {opts.agents} agents, {opts.seconds:.0f} s, {opts.tickets:,} tickets; "
        f"runs {plan}; load average {os.getloadavg()[0]:.2f}; command: "
        f"`python -m bench.load_mixed {' '.join(sys.argv[1:])}`"
    )
    stack = Stack(opts.pg)
    results: list[Result] = []
    passed = True
    try:
        for count, kind in plan:
            result = await run(opts, stack, count, kind)
            passed &= report(result)
            results.append(result)
    finally:
        stack.close()
    if len(results) > 1 and not opts.fault:
        scaling(results)
    print(f"\nAll checks passed: {'yes' if passed else 'NO'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
