"""Notifications: each agent's choices, the in-app feed with read marks, and `notify`, the one
path that tells agents something (rows written in the caller's transaction, the `notification`
real-time event published after commit, email left to the digest job, see `digest.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from enque.core.api import PageParams, dump
from enque.core.db import now, unit
from enque.core.events import Event, emit
from enque.core.pagination import Page, SortKey, keyset_page
from enque.notifications.models import EVENTS, Notification, NotificationSetting
from enque.notifications.schemas import NotificationOut, SettingIn, SettingOut
from enque.tickets.service import active_agent_ids

CHANNEL = "notifications"


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Choice:
    enabled: bool
    in_app: bool
    email: bool

    @property
    def wanted(self) -> bool:
        return self.enabled and (self.in_app or self.email)


# Without a row of their own, agents are told everything in the app; email is their choice,
# except what an automation rule sends on purpose (`automation`), which is also emailed.
DEFAULTS: dict[str, Choice] = {
    "ticket.assigned": Choice(True, True, False),
    "ticket.created": Choice(True, True, False),
    "customer.replied": Choice(True, True, False),
    "mention": Choice(True, True, False),
    "automation": Choice(True, True, True),
    "sla.warning": Choice(True, True, False),
    "sla.breached": Choice(True, True, True),
}


def _setting_out(event: str, choice: Choice) -> SettingOut:
    pairs = (("in_app", choice.in_app), ("email", choice.email))
    channels: list[Any] = [name for name, on in pairs if on]
    return SettingOut.model_validate(
        {"event": event, "enabled": choice.enabled, "channels": channels}
    )


async def choices(
    session: AsyncSession, workspace_id: str, agent_ids: Iterable[str], event: str
) -> dict[str, Choice]:
    """Each agent's choice for `event`, defaults filled in (one query)."""
    wanted = list(dict.fromkeys(agent_ids))
    found = {a: DEFAULTS[event] for a in wanted}
    if wanted:
        rows = await session.execute(
            select(NotificationSetting).where(
                NotificationSetting.workspace_id == workspace_id,
                NotificationSetting.event == event,
                NotificationSetting.agent_id.in_(wanted),
            )
        )
        for row in rows.scalars():
            found[row.agent_id] = Choice(row.enabled, row.in_app, row.email)
    return found


async def get_settings(
    session: AsyncSession, *, workspace_id: str, agent_id: str
) -> list[SettingOut]:
    rows = await session.execute(
        select(NotificationSetting).where(
            NotificationSetting.workspace_id == workspace_id,
            NotificationSetting.agent_id == agent_id,
        )
    )
    own = {r.event: Choice(r.enabled, r.in_app, r.email) for r in rows.scalars()}
    return [_setting_out(event, own.get(event, DEFAULTS[event])) for event in EVENTS]


async def update_settings(
    session: AsyncSession, *, workspace_id: str, agent_id: str, changes: Sequence[SettingIn]
) -> list[SettingOut]:
    """Change some events' choices; events left out keep theirs."""
    async with unit(session):
        rows = await session.execute(
            select(NotificationSetting).where(
                NotificationSetting.workspace_id == workspace_id,
                NotificationSetting.agent_id == agent_id,
            )
        )
        own = {r.event: r for r in rows.scalars()}
        for change in changes:
            row = own.get(change.event)
            if row is None:
                default = DEFAULTS[change.event]
                row = NotificationSetting(
                    workspace_id=workspace_id,
                    agent_id=agent_id,
                    event=change.event,
                    enabled=default.enabled,
                    in_app=default.in_app,
                    email=default.email,
                )
                session.add(row)
                own[change.event] = row
            if change.enabled is not None:
                row.enabled = change.enabled
            if change.channels is not None:
                row.in_app = "in_app" in change.channels
                row.email = "email" in change.channels
        await session.flush()
    return await get_settings(session, workspace_id=workspace_id, agent_id=agent_id)


# ---------------------------------------------------------------- the feed


def notification_out(row: Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        event=row.event,
        ticket_id=row.ticket_id,
        payload=row.payload or {},
        is_read=row.read_at is not None,
        read_at=row.read_at,
        created_at=row.created_at,
    )


def _feed(workspace_id: str, agent_id: str) -> Any:
    return (
        Notification.workspace_id == workspace_id,
        Notification.agent_id == agent_id,
        Notification.in_feed.is_(True),
    )


async def unread_count(session: AsyncSession, *, workspace_id: str, agent_id: str) -> int:
    stmt = select(func.count()).where(
        *_feed(workspace_id, agent_id), Notification.read_at.is_(None)
    )
    return int((await session.execute(stmt)).scalar_one())


async def list_feed(
    session: AsyncSession,
    *,
    workspace_id: str,
    agent_id: str,
    page: PageParams,
    unread_only: bool = False,
) -> Page[NotificationOut]:
    """Newest first, keyset-paged on (created_at, id)."""
    stmt = select(Notification).where(*_feed(workspace_id, agent_id))
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    keys = [SortKey(Notification.created_at, True), SortKey(Notification.id, True)]
    result = await keyset_page(session, stmt, keys, page, lambda r: (r.created_at, r.id))
    return Page([notification_out(r) for r in result.items], result.next_cursor, result.total)


async def mark_read(
    session: AsyncSession,
    *,
    workspace_id: str,
    agent_id: str,
    ids: Sequence[str] = (),
    all: bool = False,
) -> int:
    """Mark the agent's own notifications read (ids of anyone else's change nothing)."""
    async with unit(session):
        stmt = (
            update(Notification)
            .where(*_feed(workspace_id, agent_id), Notification.read_at.is_(None))
            .values(read_at=now())
            .execution_options(synchronize_session=False)
        )
        if not all:
            stmt = stmt.where(Notification.id.in_(list(dict.fromkeys(ids))))
        result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- telling agents


async def notify(
    session: AsyncSession,
    *,
    workspace_id: str,
    event: str,
    agent_ids: Iterable[str],
    ticket_id: str | None,
    payload: dict[str, Any],
    exclude: Iterable[str | None] = (),
) -> list[Notification]:
    """Tell active agents of the workspace about `event`, as each of them chose.

    In-app rows are published on the `notifications` channel (to their agent only) after
    commit; email rows wait for the agent's next digest.
    """
    skip = {a for a in exclude if a}
    wanted = [a for a in dict.fromkeys(agent_ids) if a and a not in skip]
    if not wanted:
        return []
    made: list[Notification] = []
    async with unit(session):
        live = await active_agent_ids(session, workspace_id, wanted)
        picked = await choices(session, workspace_id, [a for a in wanted if a in live], event)
        for agent_id, choice in picked.items():
            if not choice.wanted:
                continue
            row = Notification(
                workspace_id=workspace_id,
                agent_id=agent_id,
                event=event,
                ticket_id=ticket_id,
                payload=payload,
                in_feed=choice.in_app,
                email_pending=choice.email,
            )
            session.add(row)
            made.append(row)
        if not made:
            return made
        await session.flush()
        for row in made:
            if row.in_feed:
                emit(
                    session,
                    Event(
                        "notification",
                        workspace_id,
                        dump(notification_out(row)),
                        channels=[CHANNEL],
                        agent_id=row.agent_id,
                    ),
                )
    return made
