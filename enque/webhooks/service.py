"""Webhooks: subscriptions to the event catalogue, and their delivery log.

Every event committed in a workspace becomes one `webhook_deliveries` row per active
subscription to its type (a reaction, after commit). The sender (`delivery.Sender`) posts it
at once and retries failures with backoff; the scheduler job picks up what is due after a
restart or on another worker.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.core.api import PageParams
from enque.core.db import new_id, now, unit
from enque.core.errors import ApiError, not_found
from enque.core.events import Event
from enque.core.pagination import Page, SortKey, keyset_page
from enque.core.runtime import Runtime, runtime_of
from enque.core.secrets import seal
from enque.core.tenantfacts import TenantFacts
from enque.webhooks.delivery import LEASE
from enque.webhooks.guard import allowed_hosts, check_url
from enque.webhooks.models import Webhook, WebhookDelivery

# The event catalogue webhooks may subscribe to (docs/webhooks.md); `*` and `<prefix>.*` too.
CATALOGUE = frozenset(
    {
        "ticket.created",
        "ticket.updated",
        "ticket.deleted",
        "ticket.restored",
        "ticket.merged",
        "ticket.split",
        "comment.created",
        "comment.updated",
        "comment.deleted",
        "comment.delivery",
        "user.created",
        "user.updated",
        "user.deleted",
        "company.created",
        "company.updated",
        "company.deleted",
        "custom_fields.updated",  # a customer's or company's values (a ticket's: ticket.updated)
        "sla.warning",
        "sla.breached",
        "csat.received",
    }
)
_PREFIX = re.compile(r"^[a-z_]+\.\*$")
NOT_DELIVERED_PREFIXES = ("webhook.",)


def _check_events(events: list[str]) -> list[str]:
    prefixes = {name.split(".", 1)[0] for name in CATALOGUE}
    bad = [
        {"path": f"events.{i}", "message": f"unknown event {name!r}"}
        for i, name in enumerate(events)
        if not (
            name == "*"
            or name in CATALOGUE
            or (_PREFIX.match(name) and name.split(".", 1)[0] in prefixes)
        )
    ]
    if bad:
        raise ApiError("VALIDATION_ERROR", "Unknown event", bad)
    return list(dict.fromkeys(events))


def subscribed(events: list[str], event_type: str) -> bool:
    prefix = event_type.split(".", 1)[0] + ".*"
    return "*" in events or event_type in events or prefix in events


async def _allowed(session: AsyncSession) -> frozenset[str]:
    return allowed_hosts(runtime_of(session).settings.webhook_allowed_hosts)


async def get_webhook(session: AsyncSession, *, workspace_id: str, webhook_id: str) -> Webhook:
    webhook = (
        await session.execute(
            select(Webhook).where(Webhook.workspace_id == workspace_id, Webhook.id == webhook_id)
        )
    ).scalar_one_or_none()
    if webhook is None:
        raise not_found("Webhook")
    return webhook


async def list_webhooks(
    session: AsyncSession, *, workspace_id: str, page: PageParams
) -> Page[Webhook]:
    stmt = select(Webhook).where(Webhook.workspace_id == workspace_id)
    return await keyset_page(session, stmt, [SortKey(Webhook.id)], page, key_of=lambda w: (w.id,))


async def create_webhook(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    url: str,
    events: list[str],
    is_active: bool = True,
    secret: str | None = None,
) -> tuple[Webhook, str]:
    """The new subscription and its signing secret (returned this once)."""
    wanted = _check_events(events)
    await check_url(url, await _allowed(session))
    secret = secret or "whsec_" + secrets.token_urlsafe(32)
    async with unit(session):
        webhook = Webhook(
            id=new_id(),
            workspace_id=workspace_id,
            url=url,
            events=wanted,
            is_active=is_active,
            created_by_id=actor.id if actor.type == "agent" else None,
        )
        seal(runtime_of(session).cipher, webhook, "secret", {"secret": secret})
        session.add(webhook)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="webhook.created",
            subject_type="webhook",
            subject_id=webhook.id,
            after={"url": url, "events": wanted, "isActive": is_active},
        )
    return webhook, secret


async def update_webhook(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    webhook_id: str,
    changes: dict[str, Any],
) -> Webhook:
    if "events" in changes:
        changes["events"] = _check_events(changes["events"])
    if "url" in changes:
        await check_url(changes["url"], await _allowed(session))
    async with unit(session):
        webhook = await get_webhook(session, workspace_id=workspace_id, webhook_id=webhook_id)
        before = {k: getattr(webhook, k) for k in changes}
        for key, value in changes.items():
            setattr(webhook, key, value)
        if changes.get("is_active") and before.get("is_active") is False:
            webhook.failure_count = 0  # switched back on: a fresh start
            webhook.disabled_at = None
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="webhook.updated",
            subject_type="webhook",
            subject_id=webhook.id,
            before=before,
            after=dict(changes),
        )
    return webhook


async def delete_webhook(
    session: AsyncSession, *, workspace_id: str, actor: Actor, webhook_id: str
) -> None:
    async with unit(session):
        webhook = await get_webhook(session, workspace_id=workspace_id, webhook_id=webhook_id)
        await session.delete(webhook)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="webhook.deleted",
            subject_type="webhook",
            subject_id=webhook_id,
            before={"url": webhook.url},
        )


async def list_deliveries(
    session: AsyncSession, *, workspace_id: str, webhook_id: str, page: PageParams
) -> Page[WebhookDelivery]:
    await get_webhook(session, workspace_id=workspace_id, webhook_id=webhook_id)
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.workspace_id == workspace_id, WebhookDelivery.webhook_id == webhook_id
    )
    return await keyset_page(
        session,
        stmt,
        [SortKey(WebhookDelivery.id, descending=True)],
        page,
        key_of=lambda d: (d.id,),
    )


# ---------------------------------------------------------------- events → deliveries


def body_of(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "workspaceId": event.workspace_id,
        "ts": event.ts,
        "actor": event.actor,
        "payload": event.payload,
    }


async def _subscriptions(
    session: AsyncSession, workspace_id: str
) -> tuple[tuple[str, list[str]], ...]:
    rows = await session.execute(
        select(Webhook.id, Webhook.events).where(
            Webhook.workspace_id == workspace_id, Webhook.is_active.is_(True)
        )
    )
    return tuple((hook_id, list(events)) for hook_id, events in rows)


# (id, events) of the workspace's active webhooks, read once until one changes
SUBSCRIPTIONS = TenantFacts("webhooks", _subscriptions, {Webhook: ("new", "dirty", "deleted")})


async def enqueue(runtime: Runtime, event: Event) -> list[str]:
    """Delivery rows for every active subscription to `event`, already claimed for their first
    attempt (the caller sends them now; if it cannot, the lease lapses and the job does)."""
    if event.agent_id is not None or event.type.startswith(NOT_DELIVERED_PREFIXES):
        return []
    hooks = await SUBSCRIPTIONS.get(runtime, event.workspace_id)
    targets = [hook_id for hook_id, events in hooks if subscribed(events, event.type)]
    if not targets:
        return []
    moment = now()
    body = body_of(event)
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "workspace_id": event.workspace_id,
            "webhook_id": hook_id,
            "event_id": event.id,
            "event_type": event.type,
            "body": body,
            "status": "pending",
            "attempts": 1,  # claimed for the immediate send (the lease lapses on a crash)
            "next_attempt_at": moment + LEASE,
            "created_at": moment,
            "updated_at": moment,
        }
        for hook_id in targets
    ]
    async with runtime.db.transaction() as session:
        await session.execute(insert(WebhookDelivery), rows)
    return [row["id"] for row in rows]
