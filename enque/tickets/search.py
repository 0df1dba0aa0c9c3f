"""Full-text search over tickets with the database's own engine.

One search document per ticket: number, subject, body, customer name and email, the text of
every comment, and the values of the text, dropdown and multi-select custom fields of the ticket
and of its customer (`runtime.services["custom_fields"]`). SQLite keeps it in the FTS5 table
`ticket_search`, whose rowids `ticket_search_docs` maps to tickets; PostgreSQL keeps a
`tsvector` in `ticket_search` with a GIN index (revision 0002). Services call
`reindex_tickets` in the transaction that changes any of those parts.

Text is folded the same way for both engines before indexing and querying (lower case, accents
removed, split into letters-and-digits words), and every query word matches as a prefix, all
words required — so "alice@exa" finds a ticket from alice@example.com on either engine.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from enque.comments.models import Comment
from enque.customers.models import User
from enque.customers.seams import custom_search_text
from enque.tickets.models import Ticket, TicketBody

MAX_TERMS = 16
MAX_DOCUMENT = 200_000  # characters of folded text per ticket
BATCH = 200
COMMON_MATCH = 2000  # matches above which SQLite walks the list index instead
_T = TypeVar("_T")
_WORD = re.compile(r"[^\W_]+")

# The search objects are created by a hand-written revision, not by the models.
_meta = MetaData()
sqlite_docs = Table(
    "ticket_search_docs",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", String(36)),
    Column("workspace_id", String(36)),
)
sqlite_fts = Table("ticket_search", _meta, Column("rowid", Integer), Column("document", Text))
pg_search = Table(
    "ticket_search",
    MetaData(),
    Column("ticket_id", String(36), primary_key=True),
    Column("workspace_id", String(36)),
    Column("document", Text),
)


def fold(value: str) -> str:
    """Lower case, accents removed, punctuation turned into spaces."""
    plain = value.lower()
    if not plain.isascii():  # ASCII has nothing to decompose: skip the per-character pass
        decomposed = unicodedata.normalize("NFKD", plain)
        plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_WORD.findall(plain))


def query_terms(q: str) -> list[str]:
    return [t[:64] for t in fold(q).split()][:MAX_TERMS]


def is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


async def search_condition(
    session: AsyncSession, workspace_id: str, q: str
) -> ColumnElement[bool] | None:
    """Tickets whose document holds every word of `q` (as prefixes); None for a blank `q`.

    PostgreSQL's planner chooses between reading the matches and sorting them, or walking the
    list index and checking each ticket, from its statistics. SQLite is told: when a capped
    count finds many matches it walks the list index (`+tickets.id` keeps it off the id index)
    and checks each ticket against the matches; otherwise it reads the matches.
    """
    terms = query_terms(q)
    if not terms:
        return None
    if not is_sqlite(session):
        tsquery = " & ".join(f"{t}:*" for t in terms)
        condition: ColumnElement[bool] = pg_search.c.document.op("@@")(
            func.to_tsquery(literal_column("'simple'"), tsquery)
        )
        return Ticket.id.in_(
            select(pg_search.c.ticket_id).where(pg_search.c.workspace_id == workspace_id, condition)
        )
    match = literal_column("ticket_search").op("MATCH")(" AND ".join(f'"{t}"*' for t in terms))
    matched = (
        select(sqlite_docs.c.ticket_id)
        .join(sqlite_fts, sqlite_fts.c.rowid == sqlite_docs.c.id)
        .where(match, sqlite_docs.c.workspace_id == workspace_id)
    )
    capped = select(func.count()).select_from(
        select(sqlite_fts.c.rowid).where(match).limit(COMMON_MATCH).subquery()
    )
    if (await session.execute(capped)).scalar_one() < COMMON_MATCH:
        return Ticket.id.in_(matched)
    return literal_column("+tickets.id", String()).in_(matched)


def _chunks(items: Sequence[_T]) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


async def reindex_tickets(
    session: AsyncSession, workspace_id: str, ticket_ids: Iterable[str]
) -> None:
    """Rebuild the search documents of these tickets (a constant number of queries per batch);
    inside `deferred`, once at its end."""
    waiting: dict[str, dict[str, None]] | None = session.info.get(_DEFERRED)
    if waiting is not None:
        waiting.setdefault(workspace_id, {}).update(dict.fromkeys(ticket_ids))
        return
    ids = list(dict.fromkeys(ticket_ids))
    for chunk in _chunks(ids):
        await _reindex_chunk(session, workspace_id, chunk)


_DEFERRED = "search_deferred"


@asynccontextmanager
async def deferred(session: AsyncSession) -> AsyncIterator[None]:
    """The rebuilds asked for inside the block made once, at its end, for every ticket they
    named (email ingest writes a batch's tickets and comments in several steps; a ticket that
    several of them change is rebuilt once). Nothing is rebuilt if the block raises."""
    if _DEFERRED in session.info:  # an outer block makes them
        yield
        return
    waiting: dict[str, dict[str, None]] = {}
    session.info[_DEFERRED] = waiting
    try:
        yield
    finally:
        session.info.pop(_DEFERRED, None)
    for workspace_id, ids in waiting.items():
        await reindex_tickets(session, workspace_id, ids)


# Built once: a rebuild runs in every change of a ticket (each received email, each reply);
# plain rows read on the session's connection, with no ORM loading.
_HEADS = (
    select(
        Ticket.id,
        Ticket.number,
        Ticket.subject,
        Ticket.user_id,
        TicketBody.plain_text,
        User.name,
        User.email,
    )
    .outerjoin(TicketBody, TicketBody.ticket_id == Ticket.id)
    .outerjoin(User, User.id == Ticket.user_id)
    .where(
        Ticket.workspace_id == bindparam("workspace_id"),
        Ticket.id.in_(bindparam("ids", expanding=True)),
    )
)
_COMMENTS = (
    select(Comment.ticket_id, Comment.text)
    .where(
        Comment.workspace_id == bindparam("workspace_id"),
        Comment.ticket_id.in_(bindparam("ids", expanding=True)),
        Comment.deleted_at.is_(None),
    )
    .order_by(Comment.ticket_id, Comment.created_at, Comment.id)
)


async def _reindex_chunk(session: AsyncSession, workspace_id: str, ids: Sequence[str]) -> None:
    connection = await session.connection()
    heads = (
        await connection.execute(_HEADS, {"workspace_id": workspace_id, "ids": list(ids)})
    ).all()
    parts: dict[str, list[str]] = {
        row.id: [
            str(row.number),
            row.subject,
            row.name or "",
            row.email or "",
            row.plain_text or "",
        ]
        for row in heads
    }
    ticket_words = await custom_search_text(
        session, workspace_id=workspace_id, entity="ticket", entity_ids=list(parts)
    )
    customers = {row.id: row.user_id for row in heads}
    customer_words = await custom_search_text(
        session,
        workspace_id=workspace_id,
        entity="user",
        entity_ids=list(set(customers.values())),
    )
    for ticket_id, words in parts.items():
        words += ticket_words.get(ticket_id, [])
        words += customer_words.get(customers[ticket_id], [])
    comments = await connection.execute(
        _COMMENTS, {"workspace_id": workspace_id, "ids": list(parts)}
    )
    for ticket_id, body in comments:
        parts[ticket_id].append(body)
    await write_documents(
        session, workspace_id, [(tid, fold(" ".join(p))[:MAX_DOCUMENT]) for tid, p in parts.items()]
    )


async def write_documents(
    session: AsyncSession, workspace_id: str, documents: Sequence[tuple[str, str]]
) -> None:
    """Store the search documents (ticket id, folded text) of tickets, replacing their old ones."""
    for chunk in _chunks(documents):
        rows = [
            {"ticket_id": ticket_id, "workspace_id": workspace_id, "document": document}
            for ticket_id, document in chunk
        ]
        if is_sqlite(session):
            await _write_sqlite(session, rows)
            continue
        await session.execute(_PG_WRITE, rows)


_PG_WRITE = text(
    "INSERT INTO ticket_search (ticket_id, workspace_id, document) "
    "VALUES (:ticket_id, :workspace_id, to_tsvector('simple', :document)) "
    "ON CONFLICT (ticket_id) DO UPDATE SET document = excluded.document"
).bindparams(bindparam("document", type_=Text))


async def _write_sqlite(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Give each ticket its FTS rowid once, then replace its document under that rowid."""
    docs = sqlite_insert(sqlite_docs).values(
        [{"ticket_id": r["ticket_id"], "workspace_id": r["workspace_id"]} for r in rows]
    )
    found = await session.execute(  # the rowid, new or kept, of each ticket in one statement
        docs.on_conflict_do_update(
            index_elements=[sqlite_docs.c.ticket_id],
            set_={"workspace_id": docs.excluded.workspace_id},
        ).returning(sqlite_docs.c.ticket_id, sqlite_docs.c.id)
    )
    rowids = {ticket_id: rowid for ticket_id, rowid in found.tuples()}
    await session.execute(  # FTS5 replaces the document under the rowid, terms and all
        text("INSERT OR REPLACE INTO ticket_search (rowid, document) VALUES (:rowid, :document)"),
        [{"rowid": rowids[r["ticket_id"]], "document": r["document"]} for r in rows],
    )
