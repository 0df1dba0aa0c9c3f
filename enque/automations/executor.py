"""The narrow interface through which rules change tickets.

The tickets domain registers an implementation as `runtime.services["automation_executor"]`;
each method calls the same service function a route would, with `ctx.actor` =
`Actor("automation", rule_id)`, inside the caller's unit of work (`ctx.session`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor


@dataclass(frozen=True)
class ActionContext:
    session: AsyncSession
    workspace_id: str
    ticket_id: str
    actor: Actor


class ActionExecutor(Protocol):
    async def set_status(self, ctx: ActionContext, status: str) -> None: ...
    async def set_priority(self, ctx: ActionContext, priority: str) -> None: ...
    async def set_assignee(self, ctx: ActionContext, agent_id: str | None) -> None: ...
    async def set_team(self, ctx: ActionContext, team_id: str | None) -> None: ...
    async def set_category(self, ctx: ActionContext, category_id: str | None) -> None: ...
    async def add_tag(self, ctx: ActionContext, tag: str) -> None: ...
    async def remove_tag(self, ctx: ActionContext, tag: str) -> None: ...
    async def add_note(self, ctx: ActionContext, content: str) -> None: ...
    async def send_canned_reply(self, ctx: ActionContext, canned_reply_id: str) -> None: ...
    async def notify_agents(self, ctx: ActionContext, agent_ids: list[str]) -> None: ...
