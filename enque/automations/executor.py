"""The narrow interface through which rules read and change tickets.

The tickets domain registers:
- `runtime.services["ticket_facts"]`: a `FactsLoader`, what rules see of some tickets;
- `runtime.services["automation_executor"]`: an `ActionExecutor`. Field actions arrive
  together: all that one evaluation pass changes on a ticket is ONE update of it (one version,
  one `ticket.updated` listing every change), with each change attributed to its rule
  (`Actor("automation", rule_id)`). The other actions are one call each, through the same
  service function a route calls, inside the caller's unit of work (`ctx.session`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.automations.engine import FIELD_ACTIONS, Operation, TicketFacts

# the operations `ActionExecutor.change_tickets` applies (the rest are one call each)
FIELD_OPERATIONS = frozenset({*FIELD_ACTIONS, "add_tag", "remove_tag"})


class FactsLoader(Protocol):
    async def __call__(
        self,
        session: AsyncSession,
        workspace_id: str,
        ticket_ids: Sequence[str],
        *,
        custom: bool = True,
    ) -> dict[str, TicketFacts]:
        """The live tickets among `ticket_ids` (deleted, merged and unknown ones are absent);
        their custom field values only with `custom` (the rules to run name some)."""


@dataclass(frozen=True)
class ActionContext:
    session: AsyncSession
    workspace_id: str
    ticket_id: str
    actor: Actor


class ActionExecutor(Protocol):
    async def change_tickets(
        self,
        session: AsyncSession,
        workspace_id: str,
        changes: Mapping[str, Sequence[Operation]],
    ) -> dict[str, list[str | None]]:
        """Each ticket's field operations as one update of the ticket.

        Returns, per ticket and in the order given, None for an applied operation or the
        reason it was refused (a refused one is left out; the others still apply).
        """

    async def add_note(self, ctx: ActionContext, content: str) -> None: ...
    async def send_canned_reply(self, ctx: ActionContext, canned_reply_id: str) -> None: ...
    async def notify_agents(self, ctx: ActionContext, agent_ids: list[str]) -> None: ...
