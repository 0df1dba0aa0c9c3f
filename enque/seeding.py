"""`enque seed-demo`: a realistic workspace built with bulk inserts, fast enough for a million
tickets. Agents, teams, companies with email domains, customers, categories, tickets across
statuses with consistent timestamps, comment threads (customer messages, replies, notes), tags
and search documents. Deterministic for a given seed, so benchmarks are repeatable."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import JSON, Column, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.schema import ColumnDefault

from enque.agents.models import Agent, AgentWorkspace
from enque.categories.models import Category
from enque.comments.models import Comment
from enque.core.db import Base, new_id, now
from enque.core.runtime import Runtime
from enque.customers.models import Company, CompanyDomain, User
from enque.teams.models import Team, TeamMember
from enque.tickets.models import (
    PRIORITY_WEIGHT,
    Ticket,
    TicketBody,
    TicketCounter,
    TicketTag,
)
from enque.tickets.search import MAX_DOCUMENT, fold, is_sqlite, write_documents

BATCH = 5000
SEARCH_INDEX = "ix_tickets_search_document"  # PostgreSQL's GIN index of the documents
YEAR = 365 * 86400
STATUSES = (
    ["Closed"] * 70 + ["Open"] * 10 + ["In Progress"] * 7 + ["With User"] * 8 + ["Unread"] * 5
)
PRIORITIES = ["Low"] * 3 + ["Medium"] * 5 + ["High"] * 2 + ["Critical"]
TAGS = ["vip", "billing", "bug", "refund", "outage", "feature-request", "onboarding"]
CATEGORIES = ["Billing", "Technical", "Account", "Shipping", "Feedback"]
TEAMS = ["Support", "Billing", "Escalations"]
FIRST = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST = [
    "Smith",
    "Garcia",
    "Müller",
    "Rossi",
    "Nowak",
    "Silva",
    "Kim",
    "Dubois",
    "Jensen",
    "Costa",
    "Novak",
    "Ahmed",
    "Tanaka",
    "Okafor",
    "Larsen",
    "Moreau",
]
# Words with a Zipf distribution, as in real mail: a few are in nearly every ticket, most are
# rare. The made-up ones give the search benchmark words of every frequency.
COMMON = [
    "printer",
    "invoice",
    "login",
    "password",
    "refund",
    "shipping",
    "laptop",
    "vpn",
    "email",
    "outage",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "nu",
    "pe",
    "ra",
    "si",
    "to",
    "vu",
    "ze",
    "ba",
    "do",
    "fi",
    "gu",
    "ha",
    "je",
]
VOCABULARY = COMMON + [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES][:2990]
WEIGHTS = list(itertools.accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))
RARE_WORD = VOCABULARY[1500]


def _table(model: type[Base]) -> Table:
    """The Core table of a model: bulk inserts through it skip the ORM's per-row work."""
    return cast(Table, model.__table__)


@dataclass
class SeedReport:
    workspace_id: str
    tickets: int
    comments: int
    customers: int
    companies: int


@dataclass
class _Cast:
    agents: list[str]
    teams: list[str]
    categories: list[str]
    users: list[tuple[str, str | None]]  # customer id, company id
    contacts: dict[str, tuple[str, str]]  # customer id: name, email


class _Words:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, k: int) -> str:
        return " ".join(self.rng.choices(VOCABULARY, cum_weights=WEIGHTS, k=k))


async def seed_workspace(
    runtime: Runtime,
    workspace_id: str,
    *,
    tickets: int,
    comments_per_ticket: float = 5.0,
    agents: int = 10,
    search: bool = True,
    seed: int = 42,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Add `tickets` tickets (and their people) to a workspace, numbered after its last one."""
    rng = random.Random(seed)
    words = _Words(rng)
    async with runtime.db.transaction() as session:
        cast = await _cast(session, workspace_id, rng, agents, customers=max(1, tickets // 20))
        first_number = await _reserve_numbers(session, workspace_id, tickets)
    companies = len({c for _, c in cast.users if c})
    comment_count = 0
    started = now() - YEAR

    def build(start: int) -> _TicketBatch:
        rows = _TicketBatch(workspace_id, cast, rng, words, comments_per_ticket, search=search)
        for offset in range(start, min(tickets, start + BATCH)):
            created = started + offset * (YEAR // max(tickets, 1)) + rng.randint(0, 60)
            rows.add(first_number + offset, created)
        return rows

    # The next batch is made on a thread while the database stores this one (the random
    # generator is used by one batch at a time, in order, so the data stays the same).
    starts = range(0, tickets, BATCH)
    upcoming = asyncio.ensure_future(asyncio.to_thread(build, 0)) if starts else None
    try:
        for start in starts:
            assert upcoming is not None
            rows = await upcoming
            upcoming = None
            if start + BATCH < tickets:
                upcoming = asyncio.ensure_future(asyncio.to_thread(build, start + BATCH))
            async with runtime.db.transaction() as session:
                await _bulk_session(session)
                await _bulk_insert(session, _table(Ticket), rows.tickets)
                await _bulk_insert(session, _table(TicketBody), rows.bodies)
                await _bulk_insert(session, _table(TicketTag), rows.tags)
                await _bulk_insert(session, _table(Comment), rows.comments)
                if search:
                    await _write_documents(session, workspace_id, rows.documents)
            comment_count += len(rows.comments)
            if progress:
                progress(min(tickets, start + BATCH))
    finally:
        if upcoming is not None:  # a failed batch: let the thread finish before returning
            await asyncio.wait([upcoming])
    async with runtime.db.session() as session:
        if search and not runtime.db.is_sqlite:  # merge what the batches left pending
            await session.execute(text(f"SELECT gin_clean_pending_list('{SEARCH_INDEX}')"))
        await session.execute(text("ANALYZE"))
        await session.commit()
    return SeedReport(workspace_id, tickets, comment_count, len(cast.users), companies)


async def _bulk_session(session: AsyncSession) -> None:
    """PostgreSQL: begin the batch's transaction (COPY runs on the driver's connection, inside
    the transaction SQLAlchemy has begun), which commits without waiting for its WAL flush (demo
    data: a crash loses the last batches, never consistency), and let the GIN index keep the
    batch's documents in its pending list, merged in bulk (and once more at the end)."""
    if not is_sqlite(session):
        await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        await session.execute(text("SET LOCAL gin_pending_list_limit = '64MB'"))


def _records(table: Table, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and value tuples of `rows` (dicts with the same keys in the same order),
    with the Python-side defaults the Core insert would add and JSON values as text (as the
    driver's JSONB codec takes them)."""
    given = list(rows[0])
    missing = [c for c in table.columns if c.name not in rows[0] and c.default is not None]
    as_json = [i for i, name in enumerate(given) if isinstance(table.c[name].type, JSON)]
    records = []
    for row in rows:
        values = list(row.values())
        for i in as_json:
            values[i] = json.dumps(values[i])
        records.append((*values, *(_default(c) for c in missing)))
    return given + [c.name for c in missing], records


def _default(column: Column[Any]) -> Any:
    default = cast(ColumnDefault, column.default)
    # a callable default is wrapped by SQLAlchemy to take the execution context
    return default.arg if default.is_scalar else default.arg(None)


async def _bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` in the session's transaction (begun by an earlier statement): PostgreSQL
    copies them (COPY through asyncpg); SQLite runs the Core insert, one prepared statement for
    all rows."""
    if not rows:
        return
    if is_sqlite(session):
        for start in range(0, len(rows), BATCH):
            await session.execute(insert(table), rows[start : start + BATCH])
        return
    columns, records = _records(table, rows)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name, records=records, columns=columns
    )


async def _write_documents(
    session: AsyncSession, workspace_id: str, documents: list[tuple[str, str]]
) -> None:
    """The search documents of new tickets. PostgreSQL copies the folded texts into a
    temporary table and turns them all into tsvectors in one statement."""
    if is_sqlite(session):
        await write_documents(session, workspace_id, documents)
        return
    await session.execute(
        text(
            "CREATE TEMPORARY TABLE seed_documents (ticket_id VARCHAR(36), document TEXT) "
            "ON COMMIT DROP"
        )
    )
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "seed_documents", records=documents
    )
    await session.execute(
        text(
            "INSERT INTO ticket_search (ticket_id, workspace_id, document) "
            "SELECT ticket_id, :workspace_id, to_tsvector('simple', document) FROM seed_documents"
        ),
        {"workspace_id": workspace_id},
    )


async def _reserve_numbers(session: AsyncSession, workspace_id: str, count: int) -> int:
    """Take `count` ticket numbers from the workspace counter; return the first."""
    counter = await session.get(TicketCounter, workspace_id, with_for_update=True)
    if counter is None:
        last = await session.scalar(
            select(func.coalesce(func.max(Ticket.number), 0)).where(
                Ticket.workspace_id == workspace_id
            )
        )
        counter = TicketCounter(workspace_id=workspace_id, last_number=int(last or 0))
        session.add(counter)
    first = counter.last_number + 1
    counter.last_number += count
    return first


async def _cast(
    session: AsyncSession, ws: str, rng: random.Random, agent_count: int, customers: int
) -> _Cast:
    tag = new_id()[-6:]  # keeps names unique when a workspace is seeded twice
    agents = [new_id() for _ in range(agent_count)]
    await session.execute(
        insert(_table(Agent)),
        [
            {
                "id": a,
                "email": f"agent{i}.{tag}@demo.enque.local",
                "display_name": f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}",
            }
            for i, a in enumerate(agents)
        ],
    )
    await session.execute(
        insert(_table(AgentWorkspace)),
        [
            {"workspace_id": ws, "agent_id": a, "role": "manager" if i == 0 else "agent"}
            for i, a in enumerate(agents)
        ],
    )
    teams = [new_id() for _ in TEAMS]
    await session.execute(
        insert(_table(Team)),
        [
            {"id": t, "workspace_id": ws, "name": f"{n} {tag}"}
            for t, n in zip(teams, TEAMS, strict=True)
        ],
    )
    await session.execute(
        insert(_table(TeamMember)),
        [
            {"workspace_id": ws, "team_id": teams[i % len(teams)], "agent_id": a}
            for i, a in enumerate(agents)
        ],
    )
    categories = [new_id() for _ in CATEGORIES]
    await session.execute(
        insert(_table(Category)),
        [
            {"id": c, "workspace_id": ws, "name": f"{n} {tag}"}
            for c, n in zip(categories, CATEGORIES, strict=True)
        ],
    )
    company_ids = [new_id() for _ in range(max(1, customers // 25))]
    domains = [f"company{i}-{tag}.example" for i in range(len(company_ids))]
    await _bulk_insert(
        session,
        _table(Company),
        [
            {"id": c, "workspace_id": ws, "name": f"Company {i}", "email_domains": [domains[i]]}
            for i, c in enumerate(company_ids)
        ],
    )
    await _bulk_insert(
        session,
        _table(CompanyDomain),
        [
            {"workspace_id": ws, "company_id": c, "domain": domains[i]}
            for i, c in enumerate(company_ids)
        ],
    )
    users: list[tuple[str, str | None]] = []
    contacts: dict[str, tuple[str, str]] = {}
    rows = []
    for i in range(customers):
        company = rng.randrange(len(company_ids)) if rng.random() < 0.6 else None
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = domains[company] if company is not None else "mail.example"
        user_id = new_id()
        company_id = company_ids[company] if company is not None else None
        users.append((user_id, company_id))
        name, email = f"{first} {last}", f"{first}.{last}.{i}.{tag}@{domain}".lower()
        contacts[user_id] = (name, email)
        rows.append(
            {
                "id": user_id,
                "workspace_id": ws,
                "name": name,
                "email": email,
                "company_id": company_id,
            }
        )
    await _bulk_insert(session, _table(User), rows)
    return _Cast(agents, teams, categories, users, contacts)


class _TicketBatch:
    """Rows of one batch of tickets with their bodies, tags and threads."""

    def __init__(
        self,
        ws: str,
        cast: _Cast,
        rng: random.Random,
        words: _Words,
        per_ticket: float,
        *,
        search: bool,
    ) -> None:
        self.ws, self.cast, self.rng, self.words = ws, cast, rng, words
        self.per_ticket, self.search = per_ticket, search
        self.tickets: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.tags: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.documents: list[tuple[str, str]] = []  # ticket id, folded search document

    def add(self, number: int, created: int) -> None:
        rng = self.rng
        ticket_id = new_id()
        status = rng.choice(STATUSES)
        priority = rng.choice(PRIORITIES)
        user_id, company_id = rng.choice(self.cast.users)
        assignee = (
            None if status == "Unread" and rng.random() < 0.7 else rng.choice(self.cast.agents)
        )
        ticket_tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))
        thread = self._thread(ticket_id, created, status, assignee, user_id)
        replies = [c for c in thread if c["kind"] == "reply"]
        customer_msgs = [c for c in thread if c["kind"] == "customer"]
        last = thread[-1]["created_at"] if thread else created
        closed = last + rng.randint(60, 86400) if status == "Closed" else None
        self.tickets.append(
            {
                "id": ticket_id,
                "workspace_id": self.ws,
                "number": number,
                "subject": self.words(rng.randint(3, 8)).capitalize(),
                "status": status,
                "priority": priority,
                "priority_weight": PRIORITY_WEIGHT[priority],
                "user_id": user_id,
                "company_id": company_id,
                "assignee_id": assignee,
                "team_id": rng.choice([*self.cast.teams, None]),
                "category_id": rng.choice([*self.cast.categories, None]),
                "tags": ticket_tags,
                "cc": [],
                "due_at": rng.choice([None, None, None, created + rng.randint(1, 14) * 86400]),
                "is_read": status != "Unread",
                "first_response_at": replies[0]["created_at"] if replies else None,
                "last_agent_reply_at": replies[-1]["created_at"] if replies else None,
                "last_customer_reply_at": (
                    customer_msgs[-1]["created_at"] if customer_msgs else created
                ),
                "resolved_at": closed,
                "closed_at": closed,
                "version": 1,
                "created_at": created,
                "updated_at": closed or last,
            }
        )
        body = self.words(rng.randint(20, 80))
        self.bodies.append(
            {
                "id": new_id(),
                "workspace_id": self.ws,
                "ticket_id": ticket_id,
                "original_html": f"<p>{body}</p>",
                "sanitized_html": f"<p>{body}</p>",
                "plain_text": body,
            }
        )
        self.tags += [
            {"id": new_id(), "workspace_id": self.ws, "ticket_id": ticket_id, "tag": t}
            for t in ticket_tags
        ]
        self.comments += thread
        if self.search:  # the document `reindex_tickets` builds, from the rows at hand
            name, email = self.cast.contacts[user_id]
            parts = [str(number), self.tickets[-1]["subject"], name, email, body]
            parts += [c["text"] for c in thread]  # in time order, as the index reads them
            self.documents.append((ticket_id, fold(" ".join(parts))[:MAX_DOCUMENT]))

    def _thread(
        self, ticket_id: str, created: int, status: str, assignee: str | None, user_id: str
    ) -> list[dict[str, Any]]:
        rng = self.rng
        if status == "Unread":
            return []
        count = max(1, round(rng.expovariate(1 / self.per_ticket))) if self.per_ticket else 0
        at = created
        thread: list[dict[str, Any]] = []
        agent = assignee or rng.choice(self.cast.agents)
        for position in range(count):
            at += rng.randint(300, 2 * 86400)
            # agents and the customer take turns; some agent turns are internal notes
            kind = "customer" if position % 2 else ("note" if rng.random() < 0.15 else "reply")
            author_type, author = ("user", user_id) if kind == "customer" else ("agent", agent)
            content = self.words(rng.randint(10, 50))
            thread.append(
                {
                    "id": new_id(),
                    "workspace_id": self.ws,
                    "ticket_id": ticket_id,
                    "kind": kind,
                    "author_type": author_type,
                    "author_id": author,
                    "content": f"<p>{content}</p>",
                    "text": content,
                    "to": [],
                    "cc": [],
                    "bcc": [],
                    "mentions": [],
                    "delivery": "sent" if kind == "reply" else None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        return thread
