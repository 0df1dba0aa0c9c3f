"""Where custom fields plug into customers, companies and tickets (`customFields` in their
bodies), through `runtime.services`.

- `runtime.services["custom_fields"]`: a `CustomFieldValues` (the custom fields domain) that
  reads the values of many entities in one query and writes one entity's values in the
  caller's transaction, and gives ticket search the words of their text, dropdown and
  multi-select values. Without it entities carry `customFields: {}` and values are refused
  (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor
from enque.core.errors import validation_error
from enque.core.runtime import runtime_of

CUSTOM_FIELDS = "custom_fields"


class CustomFieldValues(Protocol):
    async def values_of(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        entity: str,
        entity_ids: Sequence[str],
    ) -> dict[str, dict[str, Any]]:
        """`{entity_id: {key: value}}` of `entity` (`ticket`, `user`, `company`), one query."""

    async def write_values(
        self,
        session: AsyncSession,
        *,
        workspace_id: str,
        actor: Actor,
        entity: str,
        entity_id: str,
        changes: dict[str, Any],
    ) -> dict[str, list[Any]]:
        """Merge `changes` (`null` clears) into the entity's values, all or nothing (422 naming
        each `customFields.<key>`); answers `{key: [old, new]}` of what changed. A ticket's
        change is not announced: the caller's `ticket.updated` lists it."""

    async def search_text(
        self, session: AsyncSession, *, workspace_id: str, entity: str, entity_ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """The words search indexes for these entities: the values of their text, dropdown and
        multi-select fields, by entity id (one query)."""


def _store(session: AsyncSession) -> CustomFieldValues | None:
    return runtime_of(session).services.get(CUSTOM_FIELDS)


async def custom_fields_of(
    session: AsyncSession, *, workspace_id: str, entity: str, entity_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The custom field values of these entities by id (empty without the custom fields)."""
    store = _store(session)
    if store is None or not entity_ids:
        return {i: {} for i in entity_ids}
    return await store.values_of(
        session, workspace_id=workspace_id, entity=entity, entity_ids=entity_ids
    )


async def custom_search_text(
    session: AsyncSession, *, workspace_id: str, entity: str, entity_ids: Sequence[str]
) -> dict[str, list[str]]:
    """The searchable custom field values of these entities by id (empty without them)."""
    store = _store(session)
    if store is None or not entity_ids:
        return {}
    return await store.search_text(
        session, workspace_id=workspace_id, entity=entity, entity_ids=entity_ids
    )


async def write_custom_fields(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    entity: str,
    entity_id: str,
    values: dict[str, Any] | None,
) -> dict[str, list[Any]]:
    """Write `customFields` given in a create or update body, in the caller's transaction;
    answers `{key: [old, new]}` of what changed."""
    if not values:
        return {}
    store = _store(session)
    if store is None:
        raise validation_error("customFields", "custom fields are not available")
    return await store.write_values(
        session,
        workspace_id=workspace_id,
        actor=actor,
        entity=entity,
        entity_id=entity_id,
        changes=values,
    )
