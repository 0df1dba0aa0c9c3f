"""ticket full-text search

SQLite: an FTS5 table `ticket_search` (one row per ticket) and `ticket_search_docs`, which maps
its integer rowids to ticket ids (narrow rows, so a search reads few pages to find the tickets).
PostgreSQL: `ticket_search` holding a tsvector per ticket with a GIN index. Both are written by
enque.tickets.search.reindex_tickets.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    """
    CREATE TABLE ticket_search_docs (
        id INTEGER PRIMARY KEY,
        ticket_id VARCHAR(36) NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
        workspace_id VARCHAR(36) NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX ix_tickets_search_docs_ticket ON ticket_search_docs (ticket_id)",
    """
    CREATE VIRTUAL TABLE ticket_search USING fts5(
        document, tokenize='unicode61 remove_diacritics 2', prefix='2 3'
    )
    """,
    """
    CREATE TRIGGER ticket_search_ad AFTER DELETE ON ticket_search_docs BEGIN
        DELETE FROM ticket_search WHERE rowid = old.id;
    END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS ticket_search_ad",
    "DROP TABLE IF EXISTS ticket_search",
    "DROP TABLE IF EXISTS ticket_search_docs",
]
POSTGRES_UP = [
    """
    CREATE TABLE ticket_search (
        ticket_id VARCHAR(36) PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
        workspace_id VARCHAR(36) NOT NULL,
        document TSVECTOR NOT NULL
    )
    """,
    "CREATE INDEX ix_tickets_search_document ON ticket_search USING gin (document)",
]
POSTGRES_DOWN = ["DROP TABLE IF EXISTS ticket_search"]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_UP)
    else:
        _run(POSTGRES_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(SQLITE_DOWN)
    else:
        _run(POSTGRES_DOWN)
