"""Old automations (+ their conditions and actions) and workflows → automation rules.

The conversion itself is the automations domain's (`automations/legacy.py`): it names the
records a rule refers to by email, name or old mailbox id, resolved here against the
migrated workspace. Every rule is checked like the API checks one; what has no equivalent
is reported and the rule is imported inactive. Rules keep position 0: they run in id order,
which is the old ids' order (automations first, then workflows).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from enque.agents.models import Agent, AgentWorkspace
from enque.automations.legacy import LegacyConversion, from_legacy, from_legacy_workflow
from enque.automations.models import Automation
from enque.automations.schemas import AutomationIn, check_rule
from enque.categories.models import Category
from enque.core.errors import ApiError
from enque.customers.models import Company
from enque.mailboxes.models import Mailbox
from enque.migrate.report import RowContext
from enque.migrate.spec import Env, Folded, Item, Row, TableSpec, table_of
from enque.teams.models import Team


@dataclass
class Names:
    """What rules of the batch's workspaces may name: (workspace, kind, key) → new id, and
    each workspace's mailboxes (named by their old id)."""

    env: Env
    ids: dict[tuple[str, str, str], str]
    mailboxes: dict[str, set[str]]

    def resolver(self, workspace: str) -> Any:
        def resolve(kind: str, value: str) -> str | None:
            if kind == "mailbox":
                new = self.env.id("mailbox_connections", value) if value.isdigit() else None
                return new if new in self.mailboxes.get(workspace, set()) else None
            return self.ids.get((workspace, kind, value.strip().casefold()))

        return resolve


async def _names(rows: list[Row], env: Env) -> Names:
    workspaces = sorted({env.id("workspaces", r["workspace_id"]) for r in rows})
    ids: dict[tuple[str, str, str], str] = {}
    members, agents = table_of(AgentWorkspace), table_of(Agent)
    found = await env.conn.execute(
        select(members.c.workspace_id, func.lower(agents.c.email), agents.c.id)
        .join(agents, agents.c.id == members.c.agent_id)
        .where(members.c.workspace_id.in_(workspaces))
    )
    for workspace, email, agent in found.tuples():
        ids[(workspace, "agent_email", email.casefold())] = agent
    for kind, model in (
        ("team_name", Team),
        ("category_name", Category),
        ("company_name", Company),
    ):
        table = table_of(model)
        found = await env.conn.execute(
            select(table.c.workspace_id, table.c.name, table.c.id)
            .where(table.c.workspace_id.in_(workspaces), table.c.deleted_at.is_(None))
            .order_by(table.c.id)
        )
        for workspace, name, new in found.tuples():
            ids.setdefault((workspace, kind, str(name).strip().casefold()), new)
    table = table_of(Mailbox)
    found = await env.conn.execute(
        select(table.c.workspace_id, table.c.id).where(table.c.workspace_id.in_(workspaces))
    )
    mailboxes: dict[str, set[str]] = defaultdict(set)
    for workspace, new in found.tuples():
        mailboxes[workspace].add(new)
    return Names(env, ids, mailboxes)


def rule_rows(
    item: Item, converted: LegacyConversion, keys: list[tuple[str, int | str]]
) -> Folded | None:
    """The converted rules of one legacy row, checked, as target rows (ids from `keys`)."""
    row, ctx, env = item.row, item.ctx, item.env
    for problem in converted.problems:
        ctx.issue(None, "rule_not_equivalent", problem)
    for note in converted.notes:
        ctx.issue(None, "rule_note", note, level="info")
    first = None
    for (table, key), rule in zip(keys, converted.rules, strict=False):
        checked = _checked(rule, ctx)
        if checked is None:
            continue
        new = env.id(table, key)
        first = first or new
        item.out.add(
            table_of(Automation),
            {
                "id": new,
                "workspace_id": item.workspace,
                "name": checked.name,
                "is_active": checked.is_active,
                "trigger": checked.trigger,
                "trigger_config": None,
                "match": checked.match,
                "conditions": rule["conditions"],
                "actions": rule["actions"],
                "position": 0,
                "created_by_id": env.agents.get(int(row["created_by"]))
                if row.get("created_by") is not None
                else None,
                "run_count": 0,
                "last_run_at": None,
                "deleted_at": None,
                "created_at": item.created,
                "updated_at": item.updated,
            },
        )
        if first != new:
            item.out.idmap.append((table, str(key), new))
    if first is None:
        ctx.issue(None, "rule_not_migrated", "no rule left to import")
        return None
    return Folded(first)


def _checked(rule: dict[str, Any], ctx: RowContext) -> AutomationIn | None:
    """The rule as the API would accept it; None (reported) when it would refuse it."""
    try:
        parsed = AutomationIn.model_validate(rule)
        checked = check_rule(
            trigger=parsed.trigger,
            trigger_config=None,
            conditions=parsed.conditions,
            actions=parsed.actions,
        )
    except (ApiError, ValueError) as exc:
        ctx.issue(None, "rule_not_migrated", f"{rule.get('name')!r} refused: {exc}")
        return None
    rule["conditions"], rule["actions"] = checked.conditions, checked.actions
    return parsed


@dataclass
class AutomationLookups:
    names: Names
    conditions: dict[int, list[Row]]
    actions: dict[int, list[Row]]


async def _automations(rows: list[Row], env: Env) -> AutomationLookups:
    ids = [r["id"] for r in rows]
    conditions: dict[int, list[Row]] = defaultdict(list)
    actions: dict[int, list[Row]] = defaultdict(list)
    if "automation_conditions" in env.present:
        for found in await env.source_rows("automation_conditions", "automation_id", ids):
            conditions[int(found["automation_id"])].append(found)
    if "automation_actions" in env.present:
        for found in await env.source_rows("automation_actions", "automation_id", ids):
            actions[int(found["automation_id"])].append(found)
    return AutomationLookups(await _names(rows, env), conditions, actions)


def automation_row(item: Item) -> Folded | None:
    old = int(item.row["id"])
    converted = from_legacy(
        item.row,
        item.ahead.conditions.get(old, []),
        item.ahead.actions.get(old, []),
        item.ahead.names.resolver(item.workspace),
    )
    return rule_rows(item, converted, [("automations", old)])


async def _parents(rows: list[Row], env: Env) -> set[str]:
    rules = (env.id("automations", r["automation_id"]) for r in rows)
    return await env.existing(table_of(Automation), rules)


def part_row(item: Item) -> Folded | None:
    """A condition or action lives in its rule."""
    rule = item.env.id("automations", item.row["automation_id"])
    if rule not in item.ahead:
        item.ctx.issue(
            "automation_id", "orphan_skipped", f"automation {item.row['automation_id']} not kept"
        )
        return None
    return Folded(rule)


async def _workflows(rows: list[Row], env: Env) -> Names:
    return await _names(rows, env)


def workflow_row(item: Item) -> Folded | None:
    old = int(item.row["id"])
    converted = from_legacy_workflow(item.row, item.ahead.resolver(item.workspace))
    keys: list[tuple[str, int | str]] = [("workflows", old)]
    keys += [("workflows:rule", f"{old}:{n}") for n in range(1, len(converted.rules))]
    return rule_rows(item, converted, keys)


SPECS: tuple[TableSpec, ...] = (
    TableSpec("automations", None, automation_row, prepare=_automations, whole_on_since=True),
    TableSpec("automation_conditions", None, part_row, prepare=_parents, tenant=False),
    TableSpec("automation_actions", None, part_row, prepare=_parents, tenant=False),
    TableSpec("workflows", None, workflow_row, prepare=_workflows),
)
