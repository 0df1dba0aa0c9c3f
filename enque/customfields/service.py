"""Custom fields: definitions per entity (ticket, user, company) and their values.

Values live in `custom_field_values` (one row per field and entity), so the tickets and
customers tables stay as they are; each row keeps a text and a number key for filtering.
A ticket cannot be closed while a field marked `requiredOnClose` is empty (the tickets
domain calls `check_close` through `runtime.services["ticket_close_checks"]`). A change of a
ticket's values is a change of the ticket (`tickets.service.update_ticket`: one version, one
`ticket.updated` naming them `customFields.<key>`); a customer's or company's raises
`custom_fields.updated`.

Automation rules may test the fields (`ticket.custom.<key>`, …). Deleting a field, or removing
options a rule names, switches those rules off in the same transaction and the activity log
says which condition failed; such a rule cannot be switched on again until it is corrected.
Ticket search indexes text, dropdown and multi-select values of tickets and their customers:
a ticket's change reindexes it in the same transaction, a customer's change reindexes the
customer's tickets after commit (as a change of name does), and deleting a field reindexes
what carried it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import Actor, record
from enque.automations.custom import FieldDefinition, condition_field
from enque.automations.service import deactivate_rules_naming
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.tenantfacts import TenantFacts
from enque.customers.models import Company, User
from enque.customfields import values as rules
from enque.customfields.models import CustomField, CustomFieldValue
from enque.tickets import search
from enque.tickets.models import Ticket
from enque.tickets.service import update_ticket

ENTITIES: dict[str, Any] = {"ticket": Ticket, "user": User, "company": Company}
KEY = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
OPTION_MAX = 100
SEARCHED_TYPES = ("text", "dropdown", "multiselect")  # values ticket search indexes


def _check_options(field_type: str, options: list[str]) -> list[str]:
    if field_type not in ("dropdown", "multiselect"):
        if options:
            raise validation_error("options", "only dropdown and multiselect fields have options")
        return []
    cleaned = list(dict.fromkeys(o.strip() for o in options))
    if not cleaned or any(not o or rules.SEPARATOR in o or len(o) > OPTION_MAX for o in cleaned):
        raise validation_error(
            "options", f"one or more options of 1-{OPTION_MAX} characters, without '|'"
        )
    return cleaned


async def get_field(session: AsyncSession, *, workspace_id: str, field_id: str) -> CustomField:
    found = (
        await session.execute(
            select(CustomField).where(
                CustomField.workspace_id == workspace_id, CustomField.id == field_id
            )
        )
    ).scalar_one_or_none()
    if found is None:
        raise not_found("Custom field")
    return found


async def list_fields(
    session: AsyncSession, *, workspace_id: str, entity: str | None = None
) -> list[CustomField]:
    stmt = select(CustomField).where(CustomField.workspace_id == workspace_id)
    if entity:
        stmt = stmt.where(CustomField.entity == entity)
    stmt = stmt.order_by(CustomField.entity, CustomField.position, CustomField.key)
    return list((await session.execute(stmt)).scalars())


async def create_field(
    session: AsyncSession, *, workspace_id: str, actor: Actor, fields: dict[str, Any]
) -> CustomField:
    if not KEY.match(fields["key"]):
        raise validation_error("key", "lower-case letters, digits and _, starting with a letter")
    fields["options"] = _check_options(fields["type"], fields.get("options") or [])
    try:
        async with unit(session):
            async with session.begin_nested():
                field = CustomField(workspace_id=workspace_id, **fields)
                session.add(field)
                await session.flush()
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="custom_field.created",
                subject_type="custom_field",
                subject_id=field.id,
                after={k: fields[k] for k in ("entity", "key", "type")},
            )
    except IntegrityError as exc:
        raise conflict(
            "A field with this key exists", [{"path": "key", "message": "taken"}]
        ) from exc
    return field


async def update_field(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    field_id: str,
    changes: dict[str, Any],
) -> CustomField:
    async with unit(session):
        field = await get_field(session, workspace_id=workspace_id, field_id=field_id)
        if "options" in changes:
            changes["options"] = _check_options(field.type, changes["options"])
        removed = set(field.options) - set(changes.get("options", field.options))
        for key, value in changes.items():
            setattr(field, key, value)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="custom_field.updated",
            subject_type="custom_field",
            subject_id=field.id,
            after=dict(changes),
        )
        if removed:
            await session.flush()
            await deactivate_rules_naming(
                session,
                workspace_id=workspace_id,
                actor=actor,
                field=condition_field(field.entity, field.key),
            )
    return field


async def delete_field(
    session: AsyncSession, *, workspace_id: str, actor: Actor, field_id: str
) -> None:
    async with unit(session):
        field = await get_field(session, workspace_id=workspace_id, field_id=field_id)
        carriers = await session.execute(
            delete(CustomFieldValue)
            .where(CustomFieldValue.field_id == field.id)
            .returning(CustomFieldValue.entity_id)
        )
        carrier_ids = list(carriers.scalars())
        await session.delete(field)
        await session.flush()
        if field.type in SEARCHED_TYPES and field.entity != "company":
            await _reindex(session, workspace_id, field.entity, carrier_ids)
        await deactivate_rules_naming(
            session,
            workspace_id=workspace_id,
            actor=actor,
            field=condition_field(field.entity, field.key),
        )
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="custom_field.deleted",
            subject_type="custom_field",
            subject_id=field_id,
            before={"key": field.key},
        )


async def _reindex(
    session: AsyncSession, workspace_id: str, entity: str, entity_ids: Sequence[str]
) -> None:
    """Rebuild the search documents of these tickets, or of these customers' tickets."""
    if entity == "ticket":
        await search.reindex_tickets(session, workspace_id, entity_ids)
        return
    for start in range(0, len(entity_ids), search.BATCH):
        found = await session.execute(
            select(Ticket.id).where(
                Ticket.workspace_id == workspace_id,
                Ticket.user_id.in_(list(entity_ids[start : start + search.BATCH])),
            )
        )
        await search.reindex_tickets(session, workspace_id, list(found.scalars()))


async def definitions(session: AsyncSession, workspace_id: str) -> list[FieldDefinition]:
    """The workspace's fields as automation rules name them."""
    return [
        FieldDefinition(f.entity, f.key, f.type, tuple(f.options))
        for f in await list_fields(session, workspace_id=workspace_id)
    ]


async def search_text(
    session: AsyncSession, *, workspace_id: str, entity: str, entity_ids: Sequence[str]
) -> dict[str, list[str]]:
    """`{entity_id: [words]}`: the text, dropdown and multi-select values, in one query (none
    at all while the workspace has no field for the entity)."""
    found: dict[str, list[str]] = {}
    if not entity_ids or entity not in await DEFINED.within(session, workspace_id):
        return found
    rows = await session.execute(
        select(CustomFieldValue.entity_id, CustomFieldValue.value)
        .join(CustomField, CustomField.id == CustomFieldValue.field_id)
        .where(
            CustomFieldValue.workspace_id == workspace_id,
            CustomField.entity == entity,
            CustomField.type.in_(SEARCHED_TYPES),
            CustomFieldValue.entity_id.in_(list(entity_ids)),
        )
        .order_by(CustomFieldValue.entity_id, CustomField.position, CustomField.key)
    )
    for entity_id, value in rows:
        words = found.setdefault(entity_id, [])
        words.extend(value if isinstance(value, list) else [str(value)])
    return found


# ---------------------------------------------------------------- values


async def _require_entity(
    session: AsyncSession, workspace_id: str, entity: str, entity_id: str
) -> None:
    model = ENTITIES[entity]
    found = (
        await session.execute(
            select(model.id).where(
                model.workspace_id == workspace_id,
                model.id == entity_id,
                model.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if found is None:
        raise not_found({"ticket": "Ticket", "user": "Customer", "company": "Company"}[entity])


# built once: the inbox asks for fifty tickets' values on every page
_VALUES_OF = (
    select(CustomFieldValue.entity_id, CustomField.key, CustomFieldValue.value)
    .join(CustomField, CustomField.id == CustomFieldValue.field_id)
    .where(
        CustomFieldValue.workspace_id == bindparam("workspace_id"),
        CustomField.entity == bindparam("entity"),
        CustomFieldValue.entity_id.in_(bindparam("ids", expanding=True)),
    )
)


async def _entities(session: AsyncSession, workspace_id: str) -> frozenset[str]:
    rows = await session.execute(
        select(CustomField.entity).where(CustomField.workspace_id == workspace_id).distinct()
    )
    return frozenset(rows.scalars())


# the kinds of entity the workspace has fields for: read once until a field changes
DEFINED = TenantFacts("customfields", _entities, {CustomField: ("new", "dirty", "deleted")})


async def values_of(
    session: AsyncSession, *, workspace_id: str, entity: str, entity_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """`{entity_id: {key: value}}` for several entities in one query (none at all while the
    workspace has no field for the entity)."""
    found: dict[str, dict[str, Any]] = {i: {} for i in entity_ids}
    if not entity_ids or entity not in await DEFINED.within(session, workspace_id):
        return found
    connection = await session.connection()  # plain rows: no ORM loading needed
    rows = await connection.execute(
        _VALUES_OF, {"workspace_id": workspace_id, "entity": entity, "ids": list(entity_ids)}
    )
    for entity_id, key, value in rows:
        found[entity_id][key] = value
    return found


async def get_values(
    session: AsyncSession, *, workspace_id: str, entity: str, entity_id: str
) -> dict[str, Any]:
    await _require_entity(session, workspace_id, entity, entity_id)
    return (
        await values_of(session, workspace_id=workspace_id, entity=entity, entity_ids=[entity_id])
    )[entity_id]


async def set_values(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    entity: str,
    entity_id: str,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Merge `changes` (`{key: value}`, null clears) into the entity's values; all or nothing.
    A ticket's values change through `update_ticket`, as a change of the ticket: one version,
    one `ticket.updated` (and so one run of its rules). Answers the values after the change."""
    if entity == "ticket":
        await _require_entity(session, workspace_id, entity, entity_id)
        await update_ticket(
            session,
            workspace_id=workspace_id,
            actor=actor,
            ticket_id=entity_id,
            changes={"custom_fields": changes},
        )
    else:
        await write_values(
            session,
            workspace_id=workspace_id,
            actor=actor,
            entity=entity,
            entity_id=entity_id,
            changes=changes,
        )
    found = await values_of(
        session, workspace_id=workspace_id, entity=entity, entity_ids=[entity_id]
    )
    return found[entity_id]


async def write_values(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    entity: str,
    entity_id: str,
    changes: dict[str, Any],
) -> dict[str, list[Any]]:
    """Merge `changes` into the entity's values, all or nothing, in the caller's transaction;
    answers `{key: [old, new]}` of what changed. A customer's or company's change is announced
    here (`custom_fields.updated`); a ticket's is announced by the tickets domain, with the
    rest of the ticket's change, as `ticket.updated`."""
    async with unit(session):
        await _require_entity(session, workspace_id, entity, entity_id)
        defined = {
            f.key: f for f in await list_fields(session, workspace_id=workspace_id, entity=entity)
        }
        problems: list[dict[str, str]] = []
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            field = defined.get(key)
            if field is None:
                problems.append({"path": f"customFields.{key}", "message": "no such field"})
                continue
            if value is None:
                checked[key] = None
                continue
            try:
                checked[key] = rules.check(field.type, field.options, value)
            except rules.InvalidValue as exc:
                problems.append({"path": f"customFields.{key}", "message": str(exc)})
        if problems:
            raise ApiError("VALIDATION_ERROR", "Invalid custom field values", problems)
        current = {
            row.field_id: row
            for row in (
                await session.execute(
                    select(CustomFieldValue).where(
                        CustomFieldValue.workspace_id == workspace_id,
                        CustomFieldValue.entity_id == entity_id,
                        CustomFieldValue.field_id.in_([defined[k].id for k in checked]),
                    )
                )
            ).scalars()
        }
        diff: dict[str, list[Any]] = {}
        for key, value in checked.items():
            field = defined[key]
            row = current.get(field.id)
            old = row.value if row is not None else None
            if old == value:
                continue
            diff[key] = [old, value]
            if value is None or (rules.is_empty(value) and field.type != "checkbox"):
                if row is not None:
                    await session.delete(row)
                continue
            text, number = rules.keys(field.type, value)
            if row is None:
                session.add(
                    CustomFieldValue(
                        workspace_id=workspace_id,
                        field_id=field.id,
                        entity_id=entity_id,
                        value=value,
                        value_text=text,
                        value_number=number,
                    )
                )
            else:
                row.value, row.value_text, row.value_number = value, text, number
        if diff:
            if entity != "ticket":  # a ticket's change moves it forward (`update_ticket`)
                await _touch(session, workspace_id, entity, entity_id)
            await session.flush()
            if entity == "ticket" and any(defined[k].type in SEARCHED_TYPES for k in diff):
                await search.reindex_tickets(session, workspace_id, [entity_id])
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="custom_fields.updated",
                subject_type=entity,
                subject_id=entity_id,
                before={k: v[0] for k, v in diff.items()},
                after={k: v[1] for k, v in diff.items()},
            )
            if entity != "ticket":
                emit(
                    session,
                    Event(
                        "custom_fields.updated",
                        workspace_id,
                        {"entity": entity, "id": entity_id, "changes": diff},
                        channels=["customers"],
                        actor=actor.as_dict(),
                    ),
                )
    return diff


async def _touch(session: AsyncSession, workspace_id: str, entity: str, entity_id: str) -> None:
    """A change of its fields is a change of the entity: `updated_at` moves forward (never
    back), so what keys on it (inbox order, time rules' memory of failed conditions) sees it."""
    model = ENTITIES[entity]
    moment = now()
    await session.execute(
        update(model)
        .where(
            model.workspace_id == workspace_id,
            model.id == entity_id,
            model.updated_at < moment,
        )
        .values(updated_at=moment)
    )


class FieldValues:
    """The values as other domains reach them (`customers.seams.CustomFieldValues`): this
    module's own functions."""

    values_of = staticmethod(values_of)
    write_values = staticmethod(write_values)
    search_text = staticmethod(search_text)


async def check_close(session: AsyncSession, ticket: Ticket) -> None:
    """422 naming each `requiredOnClose` ticket field that is empty."""
    required = [
        f
        for f in await list_fields(session, workspace_id=ticket.workspace_id, entity="ticket")
        if f.required_on_close
    ]
    if not required:
        return
    have = (
        await values_of(
            session, workspace_id=ticket.workspace_id, entity="ticket", entity_ids=[ticket.id]
        )
    )[ticket.id]
    missing = [
        {"path": f"customFields.{f.key}", "message": "required to close the ticket"}
        for f in required
        if rules.is_empty(have.get(f.key)) and not (f.type == "checkbox" and f.key in have)
    ]
    if missing:
        raise ApiError("VALIDATION_ERROR", "Required fields are empty", missing)


async def ticket_condition(
    session: AsyncSession, *, workspace_id: str, filters: dict[str, Any]
) -> ColumnElement[bool]:
    """The tickets whose custom fields equal `filters` (`{key: value}`; a multiselect field
    matches when it holds the value; a number field takes `{"gte": a, "lte": b}` too)."""
    defined = {
        f.key: f for f in await list_fields(session, workspace_id=workspace_id, entity="ticket")
    }
    condition: ColumnElement[bool] | None = None
    for key, wanted in filters.items():
        field = defined.get(key)
        if field is None:
            raise validation_error(f"customFields.{key}", "no such field")
        rows = select(CustomFieldValue.entity_id).where(CustomFieldValue.field_id == field.id)
        if field.type == "number" and isinstance(wanted, dict):
            if "gte" in wanted:
                rows = rows.where(CustomFieldValue.value_number >= float(wanted["gte"]))
            if "lte" in wanted:
                rows = rows.where(CustomFieldValue.value_number <= float(wanted["lte"]))
        elif field.type == "number":
            rows = rows.where(CustomFieldValue.value_number == _number(key, wanted))
        elif field.type == "multiselect":
            pattern = f"%{rules.SEPARATOR}{wanted}{rules.SEPARATOR}%"
            rows = rows.where(CustomFieldValue.value_text.like(pattern))
        elif field.type == "checkbox":
            rows = rows.where(
                CustomFieldValue.value_text == ("true" if wanted in (True, "true") else "false")
            )
        else:
            rows = rows.where(CustomFieldValue.value_text == str(wanted))
        part = await _matching(session, rows)
        condition = part if condition is None else condition & part
    if condition is None:
        return Ticket.id.is_not(None)
    return condition


COMMON_VALUE = 2000  # matches above which SQLite walks the inbox index and probes each row


async def _matching(session: AsyncSession, rows: Any) -> ColumnElement[bool]:
    """`Ticket.id IN (rows)`, or on SQLite for a common value a correlated probe of the
    `(field_id, value_text, entity_id)` index per listed ticket (as the inbox does for tags):
    PostgreSQL's planner chooses from its statistics, SQLite is told by one capped count."""
    if session.get_bind().dialect.name == "sqlite":
        capped = select(func.count()).select_from(rows.limit(COMMON_VALUE).subquery())
        if (await session.execute(capped)).scalar_one() >= COMMON_VALUE:
            return rows.where(CustomFieldValue.entity_id == Ticket.id).exists()
    return Ticket.id.in_(rows)


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise validation_error(f"customFields.{key}", "must be a number") from exc
