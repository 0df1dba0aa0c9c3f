"""The audit log: every service function records what it changed here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.models import Activity


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an agent, a customer (`user`), the system or an automation rule."""

    type: str
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id}


SYSTEM = Actor("system")


def record(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    verb: str,
    subject_type: str,
    subject_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> Activity:
    """Add one audit row to the current transaction."""
    activity = Activity(
        workspace_id=workspace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        verb=verb,
        subject_type=subject_type,
        subject_id=subject_id,
        before=before,
        after=after,
    )
    session.add(activity)
    return activity
