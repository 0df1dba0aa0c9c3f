"""Customers (`users`) and their companies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from enque.activity.service import SYSTEM, Actor, record
from enque.agents.models import Agent, AgentWorkspace
from enque.core.api import PageParams
from enque.core.db import now, unit
from enque.core.errors import ApiError, conflict, not_found, validation_error
from enque.core.events import Event, emit
from enque.core.pagination import Page, SortKey, keyset_page
from enque.customers.models import Company, CompanyDomain, User
from enque.customers.schemas import CompanyOut, CompanyRef, CustomerOut
from enque.customers.seams import custom_fields_of, write_custom_fields

CUSTOMER_FIELDS = ("email", "name", "phone", "avatar_url", "company_id", "notes", "is_blocked")
COMPANY_FIELDS = (
    "name",
    "description",
    "email_domains",
    "logo_url",
    "primary_contact_id",
    "account_manager_id",
)
NOT_NULL = frozenset({"email", "name", "is_blocked", "email_domains"})


def escape_like(value: str) -> str:
    """`value` as a literal inside a LIKE pattern (escape character `\\`)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _reject_nulls(changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None and key in NOT_NULL:
            raise validation_error(to_camel(key), "may not be null")


def _event(
    session: AsyncSession, kind: str, workspace_id: str, actor: Actor, payload: dict[str, Any]
) -> None:
    emit(session, Event(kind, workspace_id, payload, channels=["customers"], actor=actor.as_dict()))


# ---------------------------------------------------------------- customers


def customer_out(
    user: User, company_name: str | None, custom_fields: dict[str, Any] | None = None
) -> CustomerOut:
    company = CompanyRef(id=user.company_id, name=company_name) if user.company_id else None
    return CustomerOut(
        id=user.id,
        name=user.name,
        email=user.email,
        phone=user.phone,
        avatar_url=user.avatar_url,
        company_id=user.company_id,
        company=company,
        notes=user.notes,
        is_blocked=user.is_blocked,
        custom_fields=custom_fields or {},
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def _with_company() -> Select[Any]:
    return select(User, Company.name).outerjoin(Company, Company.id == User.company_id)


async def get_customer(session: AsyncSession, *, workspace_id: str, user_id: str) -> User:
    user = (
        await session.execute(
            select(User).where(
                User.workspace_id == workspace_id, User.id == user_id, User.deleted_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if user is None:
        raise not_found("Customer")
    return user


async def customer_view(session: AsyncSession, *, workspace_id: str, user_id: str) -> CustomerOut:
    row = (
        await session.execute(
            _with_company().where(
                User.workspace_id == workspace_id, User.id == user_id, User.deleted_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise not_found("Customer")
    values = await custom_fields_of(
        session, workspace_id=workspace_id, entity="user", entity_ids=[user_id]
    )
    return customer_out(row[0], row[1], values[user_id])


async def list_customers(
    session: AsyncSession,
    *,
    workspace_id: str,
    page: PageParams,
    q: str | None = None,
    company_id: str | None = None,
) -> Page[CustomerOut]:
    stmt = _with_company().where(User.workspace_id == workspace_id, User.deleted_at.is_(None))
    if q:
        pattern = f"%{escape_like(q.strip())}%"
        stmt = stmt.where(
            or_(User.name.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\"))
        )
    if company_id:
        stmt = stmt.where(User.company_id == company_id)
    keys = [SortKey(User.name), SortKey(User.id)]
    result = await keyset_page(
        session, stmt, keys, page, lambda row: (row[0].name, row[0].id), scalars=False
    )
    values = await custom_fields_of(
        session,
        workspace_id=workspace_id,
        entity="user",
        entity_ids=[u.id for u, _ in result.items],
    )
    items = [customer_out(u, c, values.get(u.id)) for u, c in result.items]
    return Page(items, result.next_cursor, result.total)


async def _email_taken(
    session: AsyncSession, workspace_id: str, email: str, except_id: str | None = None
) -> bool:
    stmt = select(User.id).where(
        User.workspace_id == workspace_id,
        func.lower(User.email) == email.lower(),
        User.deleted_at.is_(None),
    )
    if except_id:
        stmt = stmt.where(User.id != except_id)
    return (await session.execute(stmt.limit(1))).first() is not None


async def _live_company(
    session: AsyncSession, workspace_id: str, company_id: str, path: str
) -> None:
    found = (
        await session.execute(
            select(Company.id).where(
                Company.workspace_id == workspace_id,
                Company.id == company_id,
                Company.deleted_at.is_(None),
            )
        )
    ).first()
    if found is None:
        raise validation_error(path, "no such company in this workspace")


async def company_for_email(session: AsyncSession, *, workspace_id: str, email: str) -> str | None:
    """The company whose email domains include this address's domain."""
    return (
        await session.execute(
            select(CompanyDomain.company_id).where(
                CompanyDomain.workspace_id == workspace_id,
                CompanyDomain.domain == email_domain(email),
            )
        )
    ).scalar_one_or_none()


def _snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {to_camel(f): getattr(obj, f) for f in fields}


async def create_customer(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    email: str,
    name: str | None = None,
    phone: str | None = None,
    avatar_url: str | None = None,
    company_id: str | None = None,
    notes: str | None = None,
    is_blocked: bool = False,
    custom_fields: dict[str, Any] | None = None,
    looked_up: bool = False,
) -> User:
    """A new customer; without a company it joins the one owning its email domain.

    `looked_up`: the caller has just found no customer with this address in this
    transaction (the unique index still decides a race)."""
    async with unit(session):
        if not looked_up and await _email_taken(session, workspace_id, email):
            raise conflict(
                "A customer with this email exists", [{"path": "email", "message": "taken"}]
            )
        if company_id:
            await _live_company(session, workspace_id, company_id, "companyId")
        else:
            company_id = await company_for_email(session, workspace_id=workspace_id, email=email)
        user = User(
            workspace_id=workspace_id,
            email=email,
            name=name or email.partition("@")[0],
            phone=phone,
            avatar_url=avatar_url,
            company_id=company_id,
            notes=notes,
            is_blocked=is_blocked,
        )
        try:
            async with session.begin_nested():  # a lost race leaves the outer transaction usable
                session.add(user)
                await session.flush()
        except IntegrityError as exc:
            raise conflict("A customer with this email exists") from exc
        await write_custom_fields(
            session,
            workspace_id=workspace_id,
            actor=actor,
            entity="user",
            entity_id=user.id,
            values=custom_fields,
        )
        _announce_created(session, user, actor)
    return user


def _announce_created(session: AsyncSession, user: User, actor: Actor) -> None:
    """The audit row and the event of a new customer."""
    after = _snapshot(user, CUSTOMER_FIELDS)
    record(
        session,
        workspace_id=user.workspace_id,
        actor=actor,
        verb="user.created",
        subject_type="user",
        subject_id=user.id,
        after=after,
    )
    _event(session, "user.created", user.workspace_id, actor, {"id": user.id, **after})


# built once: every received email looks its sender up
_LIVE_BY_EMAIL = select(User).where(
    User.workspace_id == bindparam("workspace_id"),
    func.lower(User.email) == bindparam("email"),
    User.deleted_at.is_(None),
)


async def find_or_create_customer(
    session: AsyncSession,
    workspace_id: str,
    email: str,
    name: str | None = None,
    *,
    actor: Actor = SYSTEM,
) -> User:
    """The live customer with this address (case-insensitive), created when there is none.

    Safe against a concurrent creation of the same address (the unique index decides).
    """
    key = {"workspace_id": workspace_id, "email": email.strip().lower()}
    async with unit(session):
        user = (await session.execute(_LIVE_BY_EMAIL, key)).scalar_one_or_none()
        if user is not None:
            return user
        try:
            return await create_customer(
                session,
                workspace_id=workspace_id,
                actor=actor,
                email=email.strip(),
                name=name,
                looked_up=True,
            )
        except ApiError as exc:
            if exc.code != "CONFLICT":
                raise
            user = (await session.execute(_LIVE_BY_EMAIL, key)).scalar_one_or_none()
            if user is None:
                raise
            return user


async def find_or_create_customers(
    session: AsyncSession,
    workspace_id: str,
    senders: Sequence[tuple[str, str | None]],
    *,
    actor: Actor = SYSTEM,
) -> dict[str, User]:
    """The live customer of each (address, name), by lower-cased address; those missing are
    created together (each once, joining the company of its domain): one read, and for new
    ones one read of the companies and one insert. A customer created meanwhile by someone
    else fails the transaction on the unique index, where `find_or_create_customer` would
    find it: callers that can meet that race retry with it."""
    wanted: dict[str, tuple[str, str | None]] = {}
    for email, name in senders:
        wanted.setdefault(email.strip().lower(), (email.strip(), name))
    if not wanted:
        return {}
    async with unit(session):
        rows = await session.execute(
            select(User).where(
                User.workspace_id == workspace_id,
                func.lower(User.email).in_(list(wanted)),
                User.deleted_at.is_(None),
            )
        )
        found = {user.email.lower(): user for user in rows.scalars()}
        missing = [key for key in wanted if key not in found]
        if not missing:
            return found
        domains = await session.execute(
            select(CompanyDomain.domain, CompanyDomain.company_id).where(
                CompanyDomain.workspace_id == workspace_id,
                CompanyDomain.domain.in_({email_domain(key) for key in missing}),
            )
        )
        companies = {domain: company_id for domain, company_id in domains.tuples()}
        created = []
        for key in missing:
            email, name = wanted[key]
            created.append(
                User(
                    workspace_id=workspace_id,
                    email=email,
                    name=name or email.partition("@")[0],
                    company_id=companies.get(email_domain(key)),
                    is_blocked=False,
                )
            )
        session.add_all(created)
        await session.flush()
        for user in created:
            _announce_created(session, user, actor)
            found[user.email.lower()] = user
    return found


async def update_customer(
    session: AsyncSession, *, workspace_id: str, actor: Actor, user_id: str, changes: dict[str, Any]
) -> User:
    _reject_nulls(changes)
    async with unit(session):
        user = await get_customer(session, workspace_id=workspace_id, user_id=user_id)
        email = changes.get("email")
        if (
            email
            and email.lower() != user.email.lower()
            and await _email_taken(session, workspace_id, email, except_id=user.id)
        ):
            raise conflict(
                "A customer with this email exists", [{"path": "email", "message": "taken"}]
            )
        if changes.get("company_id"):
            await _live_company(session, workspace_id, changes["company_id"], "companyId")
        await write_custom_fields(
            session,
            workspace_id=workspace_id,
            actor=actor,
            entity="user",
            entity_id=user.id,
            values=changes.get("custom_fields"),
        )
        diff = {}
        for key in CUSTOMER_FIELDS:
            if key in changes and changes[key] != getattr(user, key):
                diff[to_camel(key)] = [getattr(user, key), changes[key]]
                setattr(user, key, changes[key])
        if diff:
            user.updated_at = max(now(), user.updated_at)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise conflict("A customer with this email exists") from exc
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="user.updated",
                subject_type="user",
                subject_id=user.id,
                before={k: v[0] for k, v in diff.items()},
                after={k: v[1] for k, v in diff.items()},
            )
            _event(session, "user.updated", workspace_id, actor, {"id": user.id, "changes": diff})
    return user


async def delete_customer(
    session: AsyncSession, *, workspace_id: str, actor: Actor, user_id: str
) -> None:
    """Soft delete: the customer leaves lists and lookups; their tickets stay."""
    async with unit(session):
        user = await get_customer(session, workspace_id=workspace_id, user_id=user_id)
        user.deleted_at = now()
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="user.deleted",
            subject_type="user",
            subject_id=user.id,
            before={"email": user.email},
        )
        _event(session, "user.deleted", workspace_id, actor, {"id": user.id})


# ---------------------------------------------------------------- companies


async def get_company(session: AsyncSession, *, workspace_id: str, company_id: str) -> Company:
    company = (
        await session.execute(
            select(Company).where(
                Company.workspace_id == workspace_id,
                Company.id == company_id,
                Company.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if company is None:
        raise not_found("Company")
    return company


def company_out(company: Company, custom_fields: dict[str, Any] | None = None) -> CompanyOut:
    return CompanyOut(
        id=company.id,
        name=company.name,
        description=company.description,
        email_domains=company.email_domains,
        logo_url=company.logo_url,
        primary_contact_id=company.primary_contact_id,
        account_manager_id=company.account_manager_id,
        custom_fields=custom_fields or {},
        created_at=company.created_at,
        updated_at=company.updated_at,
    )


async def company_view(session: AsyncSession, *, workspace_id: str, company_id: str) -> CompanyOut:
    company = await get_company(session, workspace_id=workspace_id, company_id=company_id)
    values = await custom_fields_of(
        session, workspace_id=workspace_id, entity="company", entity_ids=[company.id]
    )
    return company_out(company, values[company.id])


async def list_companies(
    session: AsyncSession, *, workspace_id: str, page: PageParams, q: str | None = None
) -> Page[CompanyOut]:
    stmt = select(Company).where(Company.workspace_id == workspace_id, Company.deleted_at.is_(None))
    if q:
        stmt = stmt.where(Company.name.ilike(f"%{escape_like(q.strip())}%", escape="\\"))
    keys = [SortKey(Company.name), SortKey(Company.id)]
    result = await keyset_page(session, stmt, keys, page, lambda c: (c.name, c.id))
    values = await custom_fields_of(
        session,
        workspace_id=workspace_id,
        entity="company",
        entity_ids=[c.id for c in result.items],
    )
    items = [company_out(c, values.get(c.id)) for c in result.items]
    return Page(items, result.next_cursor, result.total)


async def _check_company_refs(
    session: AsyncSession, workspace_id: str, fields: dict[str, Any]
) -> None:
    contact = fields.get("primary_contact_id")
    if contact:
        try:
            await get_customer(session, workspace_id=workspace_id, user_id=contact)
        except ApiError as exc:
            raise validation_error("primaryContactId", "no such customer") from exc
    manager = fields.get("account_manager_id")
    if manager:
        found = (
            await session.execute(
                select(AgentWorkspace.id)
                .join(Agent, Agent.id == AgentWorkspace.agent_id)
                .where(
                    AgentWorkspace.workspace_id == workspace_id,
                    AgentWorkspace.agent_id == manager,
                    AgentWorkspace.is_active.is_(True),
                    Agent.is_active.is_(True),
                )
            )
        ).first()
        if found is None:
            raise validation_error("accountManagerId", "no such agent in this workspace")


async def _set_domains(session: AsyncSession, company: Company, domains: list[str]) -> None:
    """Replace the company's domains; a domain owned by another company is a conflict."""
    wanted = list(dict.fromkeys(domains))
    taken = (
        (
            await session.execute(
                select(CompanyDomain.domain).where(
                    CompanyDomain.workspace_id == company.workspace_id,
                    CompanyDomain.domain.in_(wanted),
                    CompanyDomain.company_id != company.id,
                )
            )
        )
        .scalars()
        .all()
    )
    if taken:
        raise conflict(
            "Email domain belongs to another company",
            [{"path": "emailDomains", "message": f"{d} is taken"} for d in taken],
        )
    await session.execute(
        delete(CompanyDomain).where(
            CompanyDomain.company_id == company.id, CompanyDomain.domain.not_in(wanted)
        )
    )
    existing = set(
        (
            await session.execute(
                select(CompanyDomain.domain).where(CompanyDomain.company_id == company.id)
            )
        ).scalars()
    )
    session.add_all(
        CompanyDomain(workspace_id=company.workspace_id, company_id=company.id, domain=d)
        for d in wanted
        if d not in existing
    )
    company.email_domains = wanted
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict("Email domain belongs to another company") from exc


async def create_company(
    session: AsyncSession, *, workspace_id: str, actor: Actor, fields: dict[str, Any]
) -> Company:
    async with unit(session):
        await _check_company_refs(session, workspace_id, fields)
        domains = fields.pop("email_domains", None) or []
        values = fields.pop("custom_fields", None)
        company = Company(workspace_id=workspace_id, email_domains=[], **fields)
        session.add(company)
        await session.flush()
        await _set_domains(session, company, domains)
        await write_custom_fields(
            session,
            workspace_id=workspace_id,
            actor=actor,
            entity="company",
            entity_id=company.id,
            values=values,
        )
        after = _snapshot(company, COMPANY_FIELDS)
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="company.created",
            subject_type="company",
            subject_id=company.id,
            after=after,
        )
        _event(session, "company.created", workspace_id, actor, {"id": company.id, **after})
    return company


async def update_company(
    session: AsyncSession,
    *,
    workspace_id: str,
    actor: Actor,
    company_id: str,
    changes: dict[str, Any],
) -> Company:
    _reject_nulls(changes)
    async with unit(session):
        company = await get_company(session, workspace_id=workspace_id, company_id=company_id)
        await _check_company_refs(session, workspace_id, changes)
        await write_custom_fields(
            session,
            workspace_id=workspace_id,
            actor=actor,
            entity="company",
            entity_id=company.id,
            values=changes.pop("custom_fields", None),
        )
        before = _snapshot(company, COMPANY_FIELDS)
        if "email_domains" in changes:
            await _set_domains(session, company, changes.pop("email_domains"))
        for key, value in changes.items():
            setattr(company, key, value)
        after = _snapshot(company, COMPANY_FIELDS)
        diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if diff:
            company.updated_at = max(now(), company.updated_at)
            record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                verb="company.updated",
                subject_type="company",
                subject_id=company.id,
                before={k: v[0] for k, v in diff.items()},
                after={k: v[1] for k, v in diff.items()},
            )
            _event(
                session, "company.updated", workspace_id, actor, {"id": company.id, "changes": diff}
            )
    return company


async def delete_company(
    session: AsyncSession, *, workspace_id: str, actor: Actor, company_id: str
) -> None:
    """Soft delete: its domains are freed and its customers unlinked; tickets keep it."""
    async with unit(session):
        company = await get_company(session, workspace_id=workspace_id, company_id=company_id)
        company.deleted_at = now()
        await session.execute(delete(CompanyDomain).where(CompanyDomain.company_id == company.id))
        await session.execute(
            update(User)
            .where(User.workspace_id == workspace_id, User.company_id == company.id)
            .values(company_id=None, updated_at=now())
        )
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            verb="company.deleted",
            subject_type="company",
            subject_id=company.id,
            before={"name": company.name},
        )
        _event(session, "company.deleted", workspace_id, actor, {"id": company.id})
