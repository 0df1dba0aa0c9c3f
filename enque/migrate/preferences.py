"""What a workspace set up in the old system: canned replies, its signature, notification
settings (notification templates have no equivalent: the new system writes its own)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from enque.agents.models import AgentWorkspace
from enque.agents.sanitize import sanitize_signature
from enque.canned.models import CannedReply
from enque.canned.template import TemplateProblem, check_template
from enque.core.html import sanitize_html
from enque.migrate.report import RowContext
from enque.migrate.spec import Env, Folded, Item, Row, TableSpec, table_of
from enque.migrate.transform import json_value, to_bool
from enque.notifications.models import NotificationSetting
from enque.signatures.models import WorkspaceSignature

# the old placeholders → the new ones (canned/template.py)
PLACEHOLDERS = {
    "user_name": "customer.name",
    "customer_name": "customer.name",
    "user_email": "customer.email",
    "customer_email": "customer.email",
    "agent_name": "agent.name",
    "agent_email": "agent.email",
    "ticket_id": "ticket.number",
    "ticket_number": "ticket.number",
    "ticket_title": "ticket.subject",
    "ticket_subject": "ticket.subject",
    "workspace_name": "workspace.name",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def canned_content(html: str, ctx: RowContext) -> str:
    """Sanitized HTML whose placeholders are the new ones; an unknown placeholder is kept as
    text (reported), and content the template check refuses is kept as plain text."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        new = PLACEHOLDERS.get(name.lower(), name)
        try:
            check_template(f"{{{{{new}}}}}")
        except TemplateProblem:
            ctx.issue("content", "unknown_placeholder", f"{match.group(0)} kept as text")
            return "{{ " + repr(match.group(0)) + " }}"
        return f"{{{{{new}}}}}"

    content = _PLACEHOLDER.sub(replace, sanitize_html(html))
    try:
        check_template(content)
    except TemplateProblem as exc:
        ctx.issue("content", "template_kept_as_text", f"{exc}: the content is shown as written")
        content = "{% raw %}" + content.replace("{% endraw %}", "") + "{% endraw %}"
    return content


def canned_row(item: Item) -> Row:
    row, ctx = item.row, item.ctx
    return {
        "name": str(row["name"])[:200],
        "description": row.get("description"),
        "content": canned_content(row.get("content") or "", ctx),
        "shortcut": None,
        "team_id": None,
        "is_enabled": bool(to_bool(row.get("is_enabled"))),
        "usage_count": int(row.get("usage_count") or 0),
        "created_by_id": item.env.agent(row.get("created_by_agent_id"), ctx, "created_by_agent_id"),
        "deleted_at": None,
    }


def signature_row(item: Item) -> Row:
    return {
        "content": sanitize_signature(item.row.get("content") or ""),
        "is_enabled": bool(to_bool(item.row.get("is_enabled"))),
        "updated_by_id": None,
    }


def template_row(item: Item) -> None:
    item.ctx.issue(
        None,
        "no_equivalent",
        f"notification template {item.row.get('name')!r} not kept: the new system writes "
        "its own notifications",
        level="info",
    )


# ---------------------------------------------------------------- notification settings


def setting_event(category: Any, kind: Any) -> str | None:
    """The new event of an old (category, type) setting; None when it has no equivalent
    (settings of customer notifications, or types the new system does not tell agents)."""
    if str(category or "").strip().lower() != "agents":
        return None
    name = str(kind or "").lower()
    if "assign" in name:
        return "ticket.assigned"
    if "mention" in name:
        return "mention"
    if "created" in name or "new_ticket" in name:
        return "ticket.created"
    if any(word in name for word in ("response", "reply", "replied", "comment", "message")):
        return "customer.replied"
    return None


CHANNELS = {"email": "email", "enque": "in_app", "in_app": "in_app", "app": "in_app"}


@dataclass
class SettingLookups:
    winners: dict[tuple[int, str], int]  # (legacy workspace, event) → the legacy row kept
    agents: dict[str, list[str]]  # workspace → its member agents


async def _settings(rows: list[Row], env: Env) -> SettingLookups:
    winners = env.cache.get("setting_winners")
    if winners is None and env.source is not None:
        winners = {}
        every = await env.source.fetch(
            "SELECT id, workspace_id, category, type FROM notification_settings ORDER BY id"
        )
        for old, workspace, category, kind in every:
            event = setting_event(category, kind)
            if event is not None:
                winners.setdefault((int(workspace), event), int(old))
        env.cache["setting_winners"] = winners
    members = table_of(AgentWorkspace)
    workspaces = sorted({env.id("workspaces", r["workspace_id"]) for r in rows})
    agents: dict[str, list[str]] = defaultdict(list)
    found = await env.conn.execute(
        select(members.c.workspace_id, members.c.agent_id)
        .where(members.c.workspace_id.in_(workspaces))
        .order_by(members.c.agent_id)
    )
    for workspace, agent in found.tuples():
        agents[workspace].append(agent)
    return SettingLookups(winners or {}, agents)


def setting_rows(item: Item) -> Folded | None:
    """One workspace-wide setting → the same choice for each agent of the workspace."""
    row, ctx, env, ahead = item.row, item.ctx, item.env, item.ahead
    event = setting_event(row.get("category"), row.get("type"))
    what = f"{row.get('category')}/{row.get('type')}"
    if event is None:
        ctx.issue("type", "no_equivalent", f"setting {what} has no equivalent", level="info")
        return None
    winner = ahead.winners.get((int(row["workspace_id"]), event))
    if winner != int(row["id"]):
        ctx.issue("type", "duplicate_setting", f"{event} is set by row {winner}", level="info")
        return None
    channels = json_value(row.get("channels"), ctx, "channels")
    wanted = set()
    for channel in channels if isinstance(channels, list) else []:
        if str(channel).lower() in CHANNELS:
            wanted.add(CHANNELS[str(channel).lower()])
        else:
            ctx.issue("channels", "no_equivalent", f"channel {channel!r} not kept", level="info")
    agents = ahead.agents.get(item.workspace, [])
    if not agents:
        ctx.issue(None, "no_equivalent", "the workspace has no agents", level="info")
        return None
    first = None
    for agent in agents:
        key = f"{row['id']}:{agent}"
        new = env.id("notification_settings:agent", key)
        first = first or new
        item.out.add(
            table_of(NotificationSetting),
            {
                "id": new,
                "workspace_id": item.workspace,
                "agent_id": agent,
                "event": event,
                "enabled": to_bool(row.get("is_enabled")) is not False,
                "in_app": "in_app" in wanted,
                "email": "email" in wanted,
                "created_at": item.created,
                "updated_at": item.updated,
            },
        )
        item.out.idmap.append(("notification_settings:agent", key, new))
    assert first is not None
    return Folded(first)


SPECS: tuple[TableSpec, ...] = (
    TableSpec("canned_replies", CannedReply, canned_row),
    TableSpec("global_signatures", WorkspaceSignature, signature_row),
    TableSpec("notification_templates", None, template_row),
    TableSpec("notification_settings", None, setting_rows, prepare=_settings),
)
