"""What a workspace set up in the old system, migrated and usable: mailboxes (their app,
tokens and settings, secrets sealed with the new key), canned replies, the signature,
notification settings, automations and workflows as rules. SQLite or PostgreSQL (ENQUE_TEST_DB)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from enque.activity.models import Activity
from enque.agents.models import Agent, AgentWorkspace
from enque.app import create_app
from enque.automations.models import Automation
from enque.automations.schemas import AutomationIn, check_rule
from enque.canned.models import CannedReply
from enque.canned.template import render_template
from enque.core.crypto import Cipher
from enque.core.secrets import unseal
from enque.mailboxes.ingest import known_messages
from enque.mailboxes.models import EmailMessage, Mailbox, MicrosoftApp
from enque.migrate.command import LegacyOptions, run_legacy, target_engine
from enque.migrate.models import LegacyIdMap
from enque.migrate.report import Report
from enque.notifications.models import NotificationSetting
from enque.scheduled_replies.models import ScheduledReply
from enque.signatures.models import WorkspaceSignature
from enque.teams.models import Team
from enque.tickets.models import Ticket
from tests.conftest import BACKEND, make_database_url, settings_from
from tests.legacy.generator import EMOJI_TITLE, LEGACY_KEY, Manifest
from tests.support.s3 import S3Server

NEW_TABLES = (
    "microsoft_integration",
    "mailbox_connections",
    "mailbox_team_assignments",
    "microsoft_tokens",
    "email_sync_config",
    "canned_replies",
    "global_signatures",
    "notification_templates",
    "notification_settings",
    "automations",
    "automation_conditions",
    "automation_actions",
    "workflows",
    "scheduled_comments",
    "schedule",
    "activities",
)


@pytest.fixture(scope="module")
def target_url(tmp_path_factory: pytest.TempPathFactory, worker_id_suffix: str) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("target")
    url, cleanup = make_database_url(BACKEND, folder, f"enque_setup_{worker_id_suffix}")
    yield url
    cleanup()


@pytest.fixture(scope="module")
async def migrated(
    legacy: Manifest,
    s3_server: S3Server,
    target_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    base_env: dict[str, str],
) -> Report:
    report = await run_legacy(
        LegacyOptions(
            source_url=legacy.url,
            storage_from=s3_server.storage_url(legacy.bucket or ""),
            target="target",
            legacy_key=LEGACY_KEY,
            target_url=target_url,
            storage_to_url=f"file://{tmp_path_factory.mktemp('files')}",
            quiet=True,
            encryption_key=base_env["ENCRYPTION_KEY"],  # the key the app below reads with
        )
    )
    assert report.exit_code == 0, report.summary()
    return report


@pytest.fixture
async def engine(migrated: Report, target_url: str) -> AsyncIterator[AsyncEngine]:
    engine = target_engine(target_url)
    yield engine
    await engine.dispose()


async def rows(engine: AsyncEngine, model: Any, *where: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(model.__table__).where(*where))
        return [dict(r) for r in result.mappings()]


async def new_ids(engine: AsyncEngine, table: str) -> dict[str, str]:
    """Legacy id → new id, as the id map recorded it."""
    async with engine.connect() as conn:
        result = await conn.execute(
            select(LegacyIdMap.old_id, LegacyIdMap.new_id).where(LegacyIdMap.source_table == table)
        )
        return dict(result.tuples().all())


async def test_every_new_table_is_verified(migrated: Report, legacy: Manifest) -> None:
    checks = migrated.facts["verify"]
    for table in NEW_TABLES:
        check = checks[table]
        assert check["sourceRows"] == legacy.counts[table], table
        assert check["missing"] == check["different"] == 0, table
    for table in (
        "microsoft_integration",
        "mailbox_connections",
        "canned_replies",
        "global_signatures",
        "notification_settings",
        "automations",
        "workflows",
        "scheduled_comments",
        "activities",
    ):
        assert checks[table]["found"] == checks[table]["targetRowsExpected"] > 0, table
    # nothing left out silently: every row is migrated, folded into another, or reported
    for table in NEW_TABLES:
        stats = migrated.tables[table]
        assert stats.migrated + stats.skipped == legacy.counts[table], table
    assert migrated.count("no_equivalent") >= (
        legacy.counts["notification_templates"] + legacy.counts["schedule"]
    )
    assert migrated.count("agent_token_dropped") == 2  # an agent's, and the all-NULL row
    assert migrated.count("extra_team") == 1
    assert migrated.count("mailbox_needs_reconnect") == 1  # the all-NULL row has no token


async def test_mailboxes_keep_their_tokens_sealed_with_the_new_key(
    engine: AsyncEngine, legacy: Manifest, base_env: dict[str, str]
) -> None:
    cipher = Cipher(base_env["ENCRYPTION_KEY"])
    mailboxes = {m["email"]: m for m in await rows(engine, Mailbox)}
    teams = {t["id"]: t for t in await rows(engine, Team)}
    for w in (1, 2):
        mailbox = mailboxes[f"support@legacy{w}.test"]
        assert (mailbox["kind"], mailbox["state"], mailbox["folder"]) == (
            "microsoft",
            "active",
            "inbox",
        )
        assert mailbox["display_name"] == f"Support {w}"
        assert teams[mailbox["team_id"]]["workspace_id"] == mailbox["workspace_id"]
        assert mailbox["settings"] == {"microsoft": {"tenant": "tenant-legacy-1"}}
        assert mailbox["last_sync_at"] is not None
        stored = mailbox["credentials"]
        # encrypted (workspace 1) or plaintext (2) in the old database: sealed anew here
        assert stored.startswith("v1:") and "access-token" not in stored
        tokens = unseal(cipher, Mailbox(**mailbox), "credentials")
        assert tokens is not None
        assert (tokens["access_token"], tokens["refresh_token"]) == (
            f"access-token-mailbox-{w}",
            f"refresh-token-mailbox-{w}",
        )
        assert tokens["expires_at"] > 0 and "Mail.ReadWrite" in tokens["scope"]
    broken = mailboxes["null-row-mailbox_connections@legacy.test"]
    assert broken["state"] == "needs_reconnect" and broken["credentials"] is None
    assert "connect it again" in broken["last_error"]
    apps = await rows(engine, MicrosoftApp)
    assert {a["workspace_id"] for a in apps} == {
        mailboxes["support@legacy1.test"]["workspace_id"],
        mailboxes["support@legacy2.test"]["workspace_id"],
    }
    for app in apps:
        assert app["client_id"] == "legacy-client-id"
        secret = unseal(cipher, MicrosoftApp(**app), "client_secret")
        assert secret == {"secret": "legacy-client-secret"}


async def test_migrated_mailbox_does_not_ingest_old_mail_again(
    engine: AsyncEngine, legacy: Manifest
) -> None:
    """The ledger rows carry the mailbox of their ticket: the sync's duplicate check
    (`ingest.known_messages`, by provider id per mailbox) recognises every message the old system
    ingested, and only those."""
    mailbox_ids = await new_ids(engine, "mailbox_connections")
    ledger = await rows(engine, EmailMessage)
    tickets = {t["id"]: t for t in await rows(engine, Ticket)}
    for entry in ledger:
        if entry["ticket_id"] in tickets:
            assert entry["mailbox_id"] == tickets[entry["ticket_id"]]["mailbox_id"]
    mailbox = (await rows(engine, Mailbox, Mailbox.id == mailbox_ids["1"]))[0]
    runtime = SimpleNamespace(db=SimpleNamespace(session=lambda write: AsyncSession(engine)))
    keys = [
        ("<new@x>", "AAMkAD0000000001"),  # tickets of workspace 1
        ("<new@x>", "AAMkAD0000000003"),
        ("<new@x>", "AAMkAD-never-seen"),
    ]
    found = await known_messages(runtime, Mailbox(**mailbox), keys)  # type: ignore[arg-type]
    assert found == [True, True, False]


async def test_rules_are_valid_and_name_migrated_records(
    engine: AsyncEngine, migrated: Report
) -> None:
    rules = await rows(engine, Automation)
    members = await rows(engine, AgentWorkspace)
    teams = await rows(engine, Team)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        by_name.setdefault(rule["name"], []).append(rule)
        parsed = AutomationIn.model_validate(
            {
                "name": rule["name"],
                "trigger": rule["trigger"],
                "match": rule["match"],
                "isActive": rule["is_active"],
                "conditions": rule["conditions"],
                "actions": rule["actions"],
            }
        )
        check_rule(
            trigger=parsed.trigger,
            trigger_config=None,
            conditions=parsed.conditions,
            actions=parsed.actions,
        )
        workspace_agents = {
            m["agent_id"] for m in members if m["workspace_id"] == rule["workspace_id"]
        }
        workspace_teams = {t["id"] for t in teams if t["workspace_id"] == rule["workspace_id"]}
        for action in rule["actions"]:
            if action["type"] in ("set_assignee", "notify_agents"):
                values = action["value"] if isinstance(action["value"], list) else [action["value"]]
                assert set(values) <= workspace_agents, action
            if action["type"] == "set_team":
                assert action["value"] in workspace_teams, action
    # the generator's automations name an agent without an operator: imported, inactive
    assert len(by_name["Rule 0 🔔"]) == 2 and not any(r["is_active"] for r in by_name["Rule 0 🔔"])
    # the urgency workflow runs on new tickets and on customer replies
    urgent = (
        by_name["Escalate urgent (new tickets)"] + by_name["Escalate urgent (customer replies)"]
    )
    assert {r["trigger"] for r in urgent} == {"ticket.created", "customer.replied"}
    assert all(r["is_active"] for r in urgent)
    assert urgent[0]["conditions"][0]["operator"] == "matches"
    # a workflow whose only action has no equivalent is not imported, and that is reported
    assert not any(name.startswith("Webhook") for name in by_name)
    assert migrated.count("rule_not_migrated") >= 2


async def test_canned_replies_signatures_and_notification_settings(
    engine: AsyncEngine, legacy: Manifest, migrated: Report
) -> None:
    canned = {c["name"]: c for c in await rows(engine, CannedReply)}
    thanks = canned["Thanks"]
    assert thanks["content"] == "<p>Thanks {{customer.name}}!</p>"
    assert thanks["usage_count"] == 3 and thanks["is_enabled"]
    assert render_template(thanks["content"], {"customer": {"name": "Ana"}}) == "<p>Thanks Ana!</p>"
    order = canned["Order status"]
    assert order["created_by_id"] is None and not order["is_enabled"]
    shown = render_template(order["content"], {"ticket": {"subject": "Late"}})
    assert shown == "<p>Order {{order_number}} for Late</p>"
    assert migrated.count("unknown_placeholder") == 1
    signatures = await rows(engine, WorkspaceSignature)
    assert [s["content"] for s in signatures] == ["<p>— Support 🚀</p>"] * 2
    settings = await rows(engine, NotificationSetting)
    workspace = (await new_ids(engine, "workspaces"))["1"]
    members = {
        m["agent_id"] for m in await rows(engine, AgentWorkspace) if m["workspace_id"] == workspace
    }
    mine = [s for s in settings if s["workspace_id"] == workspace]
    created = [s for s in mine if s["event"] == "ticket.created"]
    assigned = [s for s in mine if s["event"] == "ticket.assigned"]
    assert {s["agent_id"] for s in created} == {s["agent_id"] for s in assigned} == members
    assert all(s["enabled"] and s["in_app"] and s["email"] for s in created)  # email + enque
    assert all(s["in_app"] and not s["email"] for s in assigned)  # enque (+ slack: dropped)
    assert migrated.count("duplicate_setting") == 1


async def test_scheduled_replies(engine: AsyncEngine, legacy: Manifest, migrated: Report) -> None:
    """Public scheduled comments keep their ticket, agent, recipients, files and state; a
    private one (a note) is never turned into a reply; one the old system never sent is kept
    as failed with the reason, not sent months late."""
    ids = await new_ids(engine, "scheduled_comments")
    replies = {r["id"]: r for r in await rows(engine, ScheduledReply)}
    edge = legacy.edge
    future = replies[ids[str(edge["scheduled_future"])]]
    tickets = await new_ids(engine, "tickets")
    assert future["ticket_id"] == tickets[str(edge["ticket_emoji_rtl"])]
    assert future["status"] == "pending" and future["send_at"] == future["next_attempt_at"]
    assert "<script" not in future["content"] and "🚀" in future["content"]
    assert future["to"] == []
    assert future["cc"] == ["boss@customer.example", "cfo@customer.example"]
    assert future["bcc"] == ["audit@legacy1.test"]
    files = await new_ids(engine, "ticket_attachments")
    assert future["attachment_ids"] == [files[str(edge["attachment_blob"])]]
    overdue = replies[ids[str(edge["scheduled_overdue"])]]
    assert overdue["status"] == "failed" and "never sent" in overdue["last_error"]
    assert replies[ids[str(edge["scheduled_unknown_status"])]]["status"] == "cancelled"
    zero = replies[ids[str(edge["scheduled_zero_date"])]]
    assert zero["status"] == "sent" and zero["send_at"] == zero["created_at"]
    for left_out in ("scheduled_private", "scheduled_orphan_ticket", "scheduled_missing_agent"):
        assert str(edge[left_out]) not in ids, left_out
    assert migrated.count("overdue_scheduled_reply") == 1
    statuses = {r["status"] for r in replies.values()}
    assert statuses == {"pending", "sent", "cancelled", "failed"}
    stats = migrated.tables["scheduled_comments"]
    assert stats.migrated == len(replies) and stats.skipped >= 3


async def test_activities_become_the_audit_log(
    engine: AsyncEngine, legacy: Manifest, migrated: Report
) -> None:
    ids = await new_ids(engine, "activities")
    log = {a["id"]: a for a in await rows(engine, Activity)}
    tickets = await new_ids(engine, "tickets")
    edge = legacy.edge
    emoji = log[ids[str(edge["activity_emoji"])]]
    assert (emoji["subject_type"], emoji["subject_id"]) == (
        "ticket",
        tickets[str(edge["ticket_emoji_rtl"])],
    )
    assert emoji["actor_type"] == "agent" and emoji["actor_id"] is not None
    assert emoji["after"] == {"legacyAction": f"renamed ticket to {EMOJI_TITLE}"}
    assert emoji["verb"] == "ticket.updated"
    unknown_agent = log[ids[str(edge["activity_missing_agent"])]]
    assert unknown_agent["verb"] == "ticket.status_changed"
    assert (unknown_agent["actor_type"], unknown_agent["actor_id"]) == ("system", None)
    for left_out in ("activity_unknown_type", "activity_orphan"):
        assert str(edge[left_out]) not in ids, left_out
    verbs = {a["verb"] for a in log.values()}
    assert {"ticket.created", "ticket.assigned", "comment.created"} <= verbs
    assert {a["subject_type"] for a in log.values()} == {"ticket", "comment"}
    dangling = migrated.facts["dangling_references"]
    assert dangling["activities.subject_id→tickets"] == dangling["activities.actor_id→agents"] == 0


async def test_the_app_serves_what_was_migrated(
    engine: AsyncEngine, legacy: Manifest, target_url: str, base_env: dict[str, str]
) -> None:
    """Runs last: signing in upgrades the stored password hash."""
    async with engine.connect() as conn:
        admins = await conn.scalar(
            select(func.count()).select_from(Agent).where(Agent.email == "admin@legacy1.test")
        )
    assert admins == 1
    app = create_app(settings_from(base_env, database_url=target_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as http:
            response = await http.post(
                "/v1/auth/login",
                json={
                    "email": "admin@legacy1.test",
                    "password": legacy.passwords["admin@legacy1.test"],
                },
            )
            assert response.status_code == 200, response.text
            auth = {"Authorization": f"Bearer {response.json()['data']['token']}"}
            mailboxes = (await http.get("/v1/mailboxes", headers=auth)).json()["data"]
            states = {m["email"]: m["state"] for m in mailboxes}
            assert states["support@legacy1.test"] == "active"
            assert states["null-row-mailbox_connections@legacy.test"] == "needs_reconnect"
            rules = (await http.get("/v1/automations", headers=auth)).json()["data"]
            assert {r["name"] for r in rules} >= {"Rule 0 🔔", "Escalate urgent (new tickets)"}
            canned = (await http.get("/v1/canned-replies", headers=auth)).json()["data"]
            assert {c["name"] for c in canned} >= {"Thanks", "Order status"}
            signature = (await http.get("/v1/signatures/workspace", headers=auth)).json()["data"]
            assert signature["content"] == "<p>— Support 🚀</p>"
            settings = (await http.get("/v1/notifications/settings", headers=auth)).json()["data"]
            chosen = {s["event"]: s["channels"] for s in settings}
            assert sorted(chosen["ticket.created"]) == ["email", "in_app"]
