"""Mailboxes: the old Microsoft app, the mailbox connections and what the old system kept
about each in other tables (team, OAuth tokens, sync settings), folded into one mailbox.

Secrets are decrypted with the legacy key (`Env.secrets`) and handed to the writer as plain
dicts, which it seals with the new key (`core.secrets`). The old system had one Microsoft
app for everything; each workspace whose mailboxes used it gets it as its own app (one per
workspace: the lowest active app id when a workspace used several). A mailbox keeps its
tokens and stays `active` when they decrypt and were issued to that app; otherwise it is
`needs_reconnect` (reported).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from enque.mailboxes.models import Mailbox, MicrosoftApp
from enque.migrate.spec import Env, Folded, Item, Row, TableSpec, table_of
from enque.migrate.transform import TICKET_PRIORITIES, to_bool, unix_time
from enque.teams.models import Team
from enque.workspaces.models import Workspace

NEEDS_RECONNECT = "needs_reconnect"


async def app_choice(env: Env) -> dict[int, int]:
    """Legacy workspace → the legacy Microsoft app its mailboxes use (lowest active id)."""
    if "app_choice" in env.cache:
        return dict(env.cache["app_choice"])
    choice: dict[int, int] = {}
    needed = {"microsoft_integration", "mailbox_connections"}
    if env.source is not None and needed <= env.present:
        uses = []
        for table in ("microsoft_tokens", "email_sync_config"):
            if table in env.present:
                uses.append(
                    f"SELECT m.workspace_id, u.integration_id FROM `{table}` u "
                    "JOIN mailbox_connections m ON m.id = u.mailbox_connection_id"
                )
        if uses:
            rows = await env.source.fetch(
                f"SELECT x.workspace_id, MIN(x.integration_id) FROM ({' UNION '.join(uses)}) x "
                "JOIN microsoft_integration i ON i.id = x.integration_id AND i.is_active = 1 "
                "GROUP BY x.workspace_id"
            )
            choice = {int(w): int(i) for w, i in rows}
    env.cache["app_choice"] = choice
    return choice


# ---------------------------------------------------------------- the Microsoft app


async def _apps(rows: list[Row], env: Env) -> tuple[dict[int, list[int]], set[str]]:
    """Legacy app → the legacy workspaces that use it; the migrated workspaces."""
    users: dict[int, list[int]] = defaultdict(list)
    for workspace, app in sorted((await app_choice(env)).items()):
        users[app].append(workspace)
    return users, await env.small(table_of(Workspace))


def app_row(item: Item) -> Folded | None:
    """One `microsoft_apps` row per workspace using the app (its secret sealed anew)."""
    row, ctx, env = item.row, item.ctx, item.env
    users, workspaces = item.ahead
    targets = [w for w in users.get(int(row["id"]), []) if env.id("workspaces", w) in workspaces]
    if not targets:
        ctx.issue(None, "unused_app", "no migrated mailbox uses this app: not kept", level="info")
        return None
    secret = env.secrets.reveal(row.get("client_secret"), ctx, "client_secret")
    if secret is None:
        ctx.issue("client_secret", "app_without_secret", "no usable client secret: not kept")
        return None
    first = None
    for workspace in targets:
        key = f"{row['id']}:{workspace}"
        new = env.id("microsoft_apps", key)
        first = first or new
        item.out.add(
            table_of(MicrosoftApp),
            {
                "id": new,
                "workspace_id": env.id("workspaces", workspace),
                "tenant_id": str(row["tenant_id"])[:64],
                "client_id": str(row["client_id"])[:64],
                "client_secret": {"secret": secret},
                "created_at": item.created,
                "updated_at": item.updated,
            },
        )
        item.out.idmap.append(("microsoft_apps", key, new))
    assert first is not None
    return Folded(first)


# ---------------------------------------------------------------- mailboxes


@dataclass
class MailboxLookups:
    choice: dict[int, int]  # legacy workspace → legacy app
    apps: dict[int, Row]  # legacy app id → its row
    tokens: dict[int, Row]  # legacy mailbox → its latest token row
    configs: dict[int, Row]  # legacy mailbox → its sync settings (first row)
    teams: dict[int, list[int]]  # legacy mailbox → its teams, in assignment order
    live_teams: set[str]


def _by(rows: list[Row], key: str, *, last: bool = False) -> dict[int, Row]:
    found: dict[int, Row] = {}
    for row in rows:
        if row.get(key) is not None and (last or int(row[key]) not in found):
            found[int(row[key])] = row
    return found


async def _mailboxes(rows: list[Row], env: Env) -> MailboxLookups:
    ids = [r["id"] for r in rows]
    choice = await app_choice(env)
    tokens: list[Row] = []
    configs: list[Row] = []
    assignments: list[Row] = []
    apps: list[Row] = []
    if "microsoft_tokens" in env.present:
        tokens = await env.source_rows(
            "microsoft_tokens", "mailbox_connection_id", ids, order="updated_at, id"
        )
    if "email_sync_config" in env.present:
        configs = await env.source_rows("email_sync_config", "mailbox_connection_id", ids)
    if "mailbox_team_assignments" in env.present:
        assignments = await env.source_rows(
            "mailbox_team_assignments", "mailbox_connection_id", ids
        )
    if "microsoft_integration" in env.present:
        used = {t["integration_id"] for t in tokens} | set(choice.values())
        apps = await env.source_rows("microsoft_integration", "id", used)
    teams: dict[int, list[int]] = defaultdict(list)
    for assignment in assignments:
        teams[int(assignment["mailbox_connection_id"])].append(int(assignment["team_id"]))
    return MailboxLookups(
        choice=choice,
        apps={int(a["id"]): a for a in apps},
        tokens=_by(tokens, "mailbox_connection_id", last=True),
        configs=_by(configs, "mailbox_connection_id"),
        teams=teams,
        live_teams=await env.small(table_of(Team)),
    )


def _folder(name: Any) -> str:
    folder = str(name or "").strip()
    return "inbox" if folder.lower() in ("", "inbox") else folder[:255]


def _credentials(item: Item, token: Row | None) -> tuple[dict[str, Any] | None, str | None]:
    """The mailbox's tokens as the new system keeps them, or why it must be reconnected."""
    if token is None:
        return None, "the old system held no Microsoft tokens for it"
    ctx = item.env.ctx("microsoft_tokens", token["id"])
    access = item.env.secrets.reveal(token.get("access_token"), ctx, "access_token")
    refresh = item.env.secrets.reveal(token.get("refresh_token"), ctx, "refresh_token")
    if access is None or refresh is None:
        return None, "its Microsoft tokens could not be decrypted"
    app = item.ahead.apps.get(int(token["integration_id"]))
    credentials = {
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": unix_time(token.get("expires_at"), ctx, "expires_at") or 0,
        "scope": str(app.get("scope") or "") if app else "",
    }
    if item.ahead.choice.get(int(item.row["workspace_id"])) != int(token["integration_id"]):
        return credentials, "its tokens were issued to a Microsoft app this workspace does not use"
    return credentials, None


def mailbox_row(item: Item) -> Row:
    row, ctx, env, ahead = item.row, item.ctx, item.env, item.ahead
    old = int(row["id"])
    config = ahead.configs.get(old) or {}
    team = None
    for team_old in ahead.teams.get(old, []):
        if env.id("teams", team_old) not in ahead.live_teams:
            ctx.issue("team_id", "orphan_reference", f"team {team_old} missing: not assigned")
        elif team is None:
            team = env.id("teams", team_old)
        else:
            ctx.issue("team_id", "extra_team", f"team {team_old} not kept: a mailbox has one team")
    credentials, problem = _credentials(item, ahead.tokens.get(old))
    if problem is not None:
        ctx.issue(None, "mailbox_needs_reconnect", f"{problem}: connect it again")
    app = ahead.apps.get(ahead.choice.get(int(row["workspace_id"]), -1))
    priority = config.get("default_priority")
    default_priority = TICKET_PRIORITIES.get(str(priority or "").strip().lower())
    if priority and default_priority is None:
        ctx.issue("default_priority", "unknown_enum", f"{priority!r} became NULL")
    return {
        "email": str(row["email"]).strip(),
        "display_name": str(row.get("display_name") or row["email"])[:200],
        "kind": "microsoft",
        "team_id": team,
        "default_priority": default_priority,
        "default_category_id": None,
        "default_assignee_id": env.agent(
            config.get("default_assignee_id"), ctx, "default_assignee_id"
        )
        if to_bool(config.get("auto_assign"))
        else None,
        "folder": _folder(config.get("folder_name")),
        "is_active": bool(to_bool(row.get("is_active")))
        and to_bool(config.get("is_active")) is not False,
        "state": "active" if problem is None else NEEDS_RECONNECT,
        "settings": {"microsoft": {"tenant": str(app["tenant_id"])}} if app else {},
        "credentials": credentials,  # sealed by the writer
        "sync_cursor": None,
        "last_sync_at": unix_time(config.get("last_sync_time"), ctx, "last_sync_time"),
        "last_error": None if problem is None else f"Migrated: {problem}; connect it again.",
        "error_count": 0,
        "deleted_at": None,
    }


# ---------------------------------------------------------------- folded into the mailbox


async def _parents(rows: list[Row], env: Env) -> set[str]:
    mailboxes = (env.maybe("mailbox_connections", r.get("mailbox_connection_id")) for r in rows)
    return await env.existing(table_of(Mailbox), mailboxes)


def _folded(what: str) -> Any:
    def transform(item: Item) -> Folded | None:
        old = item.row.get("mailbox_connection_id")
        mailbox = item.env.maybe("mailbox_connections", old)
        if mailbox is None:
            item.ctx.issue(
                None,
                "agent_token_dropped",
                "an agent's sign-in token: agents sign in with Microsoft again",
                level="info",
            )
            return None
        if mailbox not in item.ahead:
            item.ctx.issue(
                "mailbox_connection_id", "orphan_skipped", f"mailbox {old} not migrated: {what}"
            )
            return None
        return Folded(mailbox)

    return transform


SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        "microsoft_integration", None, app_row, prepare=_apps, tenant=False, whole_on_since=True
    ),
    TableSpec("mailbox_connections", Mailbox, mailbox_row, prepare=_mailboxes, whole_on_since=True),
    TableSpec(
        "mailbox_team_assignments", None, _folded("team dropped"), prepare=_parents, tenant=False
    ),
    TableSpec("microsoft_tokens", None, _folded("tokens dropped"), prepare=_parents, tenant=False),
    TableSpec(
        "email_sync_config", None, _folded("settings dropped"), prepare=_parents, tenant=False
    ),
)
