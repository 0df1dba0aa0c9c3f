"""The old activity feed (`activities`) → the audit log, with its free-text action kept."""

from __future__ import annotations

from typing import Any

from enque.activity.models import Activity
from enque.comments.models import Comment
from enque.customers.models import Company, User
from enque.migrate.spec import Env, Item, Row, TableSpec, table_of
from enque.teams.models import Team
from enque.tickets.models import Ticket

# legacy `source_type` (lowercased) → (subject type, legacy table, target model); the old
# code called tickets "tasks" in places.
SUBJECTS: dict[str, tuple[str, str, Any]] = {
    "ticket": ("ticket", "tickets", Ticket),
    "task": ("ticket", "tickets", Ticket),
    "comment": ("comment", "comments", Comment),
    "user": ("user", "users", User),
    "customer": ("user", "users", User),
    "team": ("team", "teams", Team),
    "company": ("company", "companies", Company),
}

# words of the old action text → the verb of the new log (first match wins), per subject
_TICKET_VERBS = (
    ("merg", "ticket.merged"),
    ("assign", "ticket.assigned"),
    ("status", "ticket.status_changed"),
    ("clos", "ticket.status_changed"),
    ("reopen", "ticket.status_changed"),
    ("comment", "comment.created"),
    ("repl", "comment.created"),
    ("note", "comment.created"),
    ("delet", "ticket.deleted"),
    ("creat", "ticket.created"),
)


def activity_verb(subject: str, action: str) -> str:
    """The new verb of an old action text (`created ticket #12` → `ticket.created`)."""
    text = action.lower()
    if subject == "ticket":
        for word, verb in _TICKET_VERBS:
            if word in text:
                return verb
        return "ticket.updated"
    if any(word in text for word in ("creat", "add", "repl", "wrote", "sent")):
        return f"{subject}.created"
    if "delet" in text or "remov" in text:
        return f"{subject}.deleted"
    return f"{subject}.updated"


def _subject(row: Row) -> tuple[str, str, Any] | None:
    return SUBJECTS.get(str(row.get("source_type") or "").strip().lower())


async def _activities(rows: list[Row], env: Env) -> dict[str, Any]:
    """The subjects of the batch that exist in the target, and their workspace."""
    wanted: dict[Any, set[str]] = {}
    for row in rows:
        found = _subject(row)
        if found is not None and row.get("source_id") is not None:
            _, legacy, model = found
            wanted.setdefault(model, set()).add(env.id(legacy, row["source_id"]))
    existing: dict[str, Any] = {}
    for model, ids in wanted.items():
        existing.update(await env.column(table_of(model), ids, "workspace_id"))
    return existing


def activity_row(item: Item) -> Row | None:
    """One old activity → one audit row: the agent (or the system), the verb the action text
    names, the subject by its new id, and the old text in `after.legacyAction`."""
    row, ctx, env = item.row, item.ctx, item.env
    found = _subject(row)
    if found is None:
        ctx.issue(
            "source_type",
            "no_equivalent",
            f"activity about a {row.get('source_type')!r}: no such record now; not migrated",
            level="info",
        )
        return None
    subject, legacy, _ = found
    new = env.maybe(legacy, row.get("source_id"))
    if new is None or item.ahead.get(new) != item.workspace:
        ctx.issue("source_id", "orphan_skipped", f"{legacy} {row.get('source_id')} missing")
        return None
    agent = env.agent(row.get("agent_id"), ctx, "agent_id")
    action = str(row.get("action") or "")
    return {
        "actor_type": "agent" if agent else "system",
        "actor_id": agent,
        "verb": activity_verb(subject, action),
        "subject_type": subject,
        "subject_id": new,
        "before": None,
        "after": {"legacyAction": action},
    }


SPECS: tuple[TableSpec, ...] = (
    TableSpec("activities", Activity, activity_row, prepare=_activities, overlap=True),
)
