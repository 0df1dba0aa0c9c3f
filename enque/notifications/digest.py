"""Email for agents who chose it, batched: one digest per agent and workspace.

A notification meant for email waits (`email_pending`). `send_digests` (a scheduler job) sends
an agent's digest once their oldest waiting notification is `NOTIFICATION_EMAIL_WINDOW_SECONDS`
old, with everything that waits by then: a burst of changes within the window is one email.
Each digest is claimed in one transaction (`email_batch_id`), so two workers never send the same
notifications; the mail goes out after commit (through `SMTP_URL`, or without it from the
workspace's own mailbox), and a failed delivery puts them back to wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from enque.agents.models import Agent, AgentWorkspace
from enque.core import db
from enque.core.mail import Mail, SystemMailer, mail_environment, mailer_of
from enque.core.runtime import Runtime
from enque.notifications.models import Notification
from enque.workspaces.models import Workspace

if TYPE_CHECKING:
    from jinja2 import Environment

log = logging.getLogger(__name__)

JOB = "notifications.digests"
INTERVAL = 30
MAX_LINES = 100

_TEMPLATES = {
    "digest.txt": """Hello {{ name }},

{{ intro }}

{% for line in lines %}- {{ line.text }}
  {{ line.link }}
{% endfor %}{% if more %}… and {{ more }} more in Enque.
{% endif %}
You receive this because you chose email notifications in {{ workspace }}.
Change that in your notification settings: {{ settings_link }}
""",
    "digest.html": """<!doctype html>
<html><body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2933">
<p>Hello {{ name }},</p>
<p>{{ intro }}</p>
<ul>{% for line in lines %}<li><a href="{{ line.link }}">{{ line.text }}</a>{% if line.excerpt %}
<br><span style="color:#52606d">{{ line.excerpt }}</span>{% endif %}</li>{% endfor %}</ul>
{% if more %}<p>… and {{ more }} more in Enque.</p>{% endif %}
<p style="color:#7b8794;font-size:12px">You receive this because you chose email notifications
in {{ workspace }}. <a href="{{ settings_link }}">Notification settings</a></p>
</body></html>""",
}


@cache
def _environment() -> Environment:
    return mail_environment(_TEMPLATES)  # jinja2 is imported by the first digest


@dataclass
class Digest:
    batch_id: str
    workspace: str
    to: str
    name: str
    rows: list[Notification]


SLA_TARGETS = {
    "firstResponse": "The first response",
    "nextResponse": "The next response",
    "resolution": "The resolution",
}


def _target(payload: dict[str, Any]) -> str:
    return SLA_TARGETS.get(str(payload.get("target")), "An SLA target")


def describe(row: Notification) -> str:
    """One line of a digest: who did what on which ticket."""
    payload = row.payload or {}
    ticket = payload.get("ticket") or {}
    actor = (payload.get("actor") or {}).get("name") or "Someone"
    where = f"#{ticket.get('number', '?')} {ticket.get('subject', '')}".strip()
    text = {
        "ticket.assigned": f"{actor} assigned you {where}",
        "ticket.created": f"New ticket in your team: {where}",
        "customer.replied": f"{actor} replied on {where}",
        "mention": f"{actor} mentioned you on {where}",
        "automation": f"A rule notified you about {where}",
        "sla.warning": f"{_target(payload)} is due soon on {where}",
        "sla.breached": f"{_target(payload)} is overdue on {where}",
    }.get(row.event, f"{row.event}: {where}")
    return " ".join(text.split())


def digest_mail(runtime: Runtime, digest: Digest) -> Mail:
    base = runtime.settings.public_url.rstrip("/")
    lines = [
        {
            "text": describe(row),
            "link": f"{base}/tickets/{row.ticket_id}" if row.ticket_id else base,
            "excerpt": (row.payload or {}).get("excerpt"),
        }
        for row in digest.rows[:MAX_LINES]
    ]
    count = len(digest.rows)
    if count == 1:
        subject = f"[{digest.workspace}] {lines[0]['text']}"
        intro = "There is news in Enque for you:"
    else:
        subject = f"[{digest.workspace}] {count} new notifications"
        intro = f"There are {count} new notifications in Enque for you:"
    context: dict[str, Any] = {
        "name": digest.name,
        "intro": intro,
        "lines": lines,
        "more": max(0, count - MAX_LINES),
        "workspace": digest.workspace,
        "settings_link": f"{base}/settings/notifications",
    }
    env = _environment()
    text = env.get_template("digest.txt").render(context)
    html = env.get_template("digest.html").render(context)
    return Mail(to=digest.to, subject=" ".join(subject.split())[:250], text=text, html=html)


async def _due(runtime: Runtime, cutoff: int) -> list[tuple[str, str]]:
    """(workspace, agent) whose oldest waiting notification is older than `cutoff`."""
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Notification.workspace_id, Notification.agent_id)
            .where(Notification.email_pending.is_(True))
            .group_by(Notification.workspace_id, Notification.agent_id)
            .having(func.min(Notification.created_at) <= cutoff)
        )
        return [(w, a) for w, a in rows.tuples()]


async def _claim(runtime: Runtime, workspace_id: str, agent_id: str, moment: int) -> Digest | None:
    batch_id = db.new_id()
    async with runtime.db.transaction() as session:
        claimed = await session.execute(
            update(Notification)
            .where(
                Notification.workspace_id == workspace_id,
                Notification.agent_id == agent_id,
                Notification.email_pending.is_(True),
                Notification.created_at <= moment,
            )
            .values(email_pending=False, email_batch_id=batch_id)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return None
        rows = list(
            (
                await session.execute(
                    select(Notification)
                    .where(Notification.email_batch_id == batch_id)
                    .order_by(Notification.created_at, Notification.id)
                )
            ).scalars()
        )
        found = (
            await session.execute(
                select(Agent.email, Agent.display_name, Workspace.name)
                .join(AgentWorkspace, AgentWorkspace.agent_id == Agent.id)
                .join(Workspace, Workspace.id == AgentWorkspace.workspace_id)
                .where(
                    Agent.id == agent_id,
                    Agent.is_active.is_(True),
                    AgentWorkspace.workspace_id == workspace_id,
                    AgentWorkspace.is_active.is_(True),
                    Workspace.deleted_at.is_(None),
                )
            )
        ).first()
    if found is None:
        return None  # claimed and dropped: nobody left to send them to
    email, name, workspace = found
    return Digest(batch_id, workspace, email, name, rows)


async def _settle(runtime: Runtime, batch_id: str, sent: bool, moment: int) -> None:
    values: dict[str, Any] = (
        {"emailed_at": moment} if sent else {"email_pending": True, "email_batch_id": None}
    )
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.email_batch_id == batch_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


async def _deliver(runtime: Runtime, mailer: SystemMailer, workspace_id: str, mail: Mail) -> bool:
    """Through `SMTP_URL` when it is set, else from the workspace's own mailbox."""
    if mailer.target is not None:
        return await mailer.send(mail)
    workspace_mail = runtime.services.get("workspace_mail")
    if workspace_mail is None:
        return await mailer.send(mail)  # logs that nothing can send it
    return bool(await workspace_mail(workspace_id, mail))


async def send_digests(runtime: Runtime, now: int | None = None) -> int:
    """Send every digest that is due; returns how many emails went out."""
    moment = db.now() if now is None else now
    window = runtime.settings.notification_email_window_seconds
    mailer = mailer_of(runtime)
    sent = 0
    for workspace_id, agent_id in await _due(runtime, moment - window):
        digest = await _claim(runtime, workspace_id, agent_id, moment)
        if digest is None:
            continue
        delivered = await _deliver(runtime, mailer, workspace_id, digest_mail(runtime, digest))
        await _settle(runtime, digest.batch_id, delivered, moment)
        if delivered:
            sent += 1
        else:
            log.warning("notification digest to agent %s not sent; retried next run", agent_id)
    return sent
