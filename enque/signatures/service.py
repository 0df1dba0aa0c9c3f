"""Signatures: the workspace's (here) and each agent's (their profile, agents domain).

`signature_for` is what the comments domain appends to a public reply, through
`runtime.services["signatures"]`: the workspace signature, then the sending agent's own
signature, each in its own block. Replies by automations carry the workspace signature only.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.agents.models import Agent
from enque.agents.sanitize import sanitize_signature
from enque.core.db import now, unit
from enque.signatures.models import WorkspaceSignature
from enque.signatures.schemas import WorkspaceSignatureOut


async def _row(
    session: AsyncSession, workspace_id: str, lock: bool = False
) -> WorkspaceSignature | None:
    stmt = select(WorkspaceSignature).where(WorkspaceSignature.workspace_id == workspace_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_workspace_signature(
    session: AsyncSession, *, workspace_id: str
) -> WorkspaceSignatureOut:
    """The signature, or an empty, enabled one when none was ever set."""
    row = await _row(session, workspace_id)
    if row is None:
        return WorkspaceSignatureOut(
            content="", is_enabled=True, updated_by_id=None, updated_at=None
        )
    return WorkspaceSignatureOut.model_validate(row)


async def set_workspace_signature(
    session: AsyncSession, *, workspace_id: str, actor: Actor, content: str, is_enabled: bool
) -> WorkspaceSignature:
    """Create or replace the workspace signature (HTML, allow-listed like agent signatures)."""
    clean = sanitize_signature(content)
    by = actor.id if actor.type == "agent" else None
    async with unit(session):
        row = await _row(session, workspace_id, lock=True)
        before = None if row is None else {"content": row.content, "isEnabled": row.is_enabled}
        if row is None:
            try:
                async with session.begin_nested():
                    row = WorkspaceSignature(
                        workspace_id=workspace_id,
                        content=clean,
                        is_enabled=is_enabled,
                        updated_by_id=by,
                    )
                    session.add(row)
            except IntegrityError:  # created concurrently: replace that one
                row = await _row(session, workspace_id, lock=True)
                assert row is not None
        row.content, row.is_enabled, row.updated_by_id = clean, is_enabled, by
        row.updated_at = max(now(), row.updated_at or 0)
        await session.flush()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="signature.updated",
            subject_type="workspace",
            subject_id=workspace_id,
            before=before,
            after={"content": clean, "isEnabled": is_enabled},
        )
    return row


async def signature_for(session: AsyncSession, *, workspace_id: str, actor: Actor) -> str:
    """The HTML to append to a public reply by `actor` ("" when there is none)."""
    parts = []
    workspace = (
        await session.execute(
            select(WorkspaceSignature.content).where(
                WorkspaceSignature.workspace_id == workspace_id,
                WorkspaceSignature.is_enabled.is_(True),
            )
        )
    ).scalar_one_or_none()
    if workspace and workspace.strip():
        parts.append(workspace)
    if actor.type == "agent" and actor.id:
        own = (
            await session.execute(select(Agent.signature).where(Agent.id == actor.id))
        ).scalar_one_or_none()
        if own and own.strip():
            parts.append(own)
    return "".join(f"<div>{part}</div>" for part in parts)
