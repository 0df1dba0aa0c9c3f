from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from enque.core.api import ApiInput, ApiModel, Email

Name = Annotated[str, Field(min_length=1, max_length=200)]
Phone = Annotated[str, Field(max_length=64)]
Notes = Annotated[str, Field(max_length=20_000)]
Id = Annotated[str, Field(min_length=1, max_length=64)]
# `{key: value}` of the workspace's custom fields; checked against their definitions
CustomFieldsIn = Annotated[dict[str, Any], Field(max_length=200)]


def _web_url(value: str) -> str:
    if not value.lower().startswith(("https://", "http://")) or len(value) > 1024:
        raise ValueError("must be an http(s) URL of at most 1024 characters")
    return value


WebUrl = Annotated[str, AfterValidator(_web_url)]


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def normalize_domain(value: str) -> str:
    """`@Example.COM ` → `example.com`; refuses anything that is not a host name."""
    value = value.strip().lstrip("@").rstrip(".").lower()
    if not _DOMAIN.match(value):
        raise ValueError("not a valid email domain")
    return value


Domain = Annotated[str, AfterValidator(normalize_domain)]


class CompanyRef(ApiModel):
    id: str
    name: str


class CustomerOut(ApiModel):
    id: str
    name: str
    email: str
    phone: str | None
    avatar_url: str | None
    company_id: str | None
    company: CompanyRef | None
    notes: str | None
    is_blocked: bool
    custom_fields: dict[str, Any]
    created_at: int
    updated_at: int


class CustomerIn(ApiInput):
    email: Email
    name: Name | None = None
    phone: Phone | None = None
    avatar_url: WebUrl | None = None
    company_id: Id | None = None
    notes: Notes | None = None
    is_blocked: bool = False
    custom_fields: CustomFieldsIn | None = None


class CustomerPatch(ApiInput):
    email: Email | None = None
    name: Name | None = None
    phone: Phone | None = None
    avatar_url: WebUrl | None = None
    company_id: Id | None = None
    notes: Notes | None = None
    is_blocked: bool | None = None
    custom_fields: CustomFieldsIn | None = None


class CompanyOut(ApiModel):
    id: str
    name: str
    description: str | None
    email_domains: list[str]
    logo_url: str | None
    primary_contact_id: str | None
    account_manager_id: str | None
    custom_fields: dict[str, Any]
    created_at: int
    updated_at: int


class CompanyIn(ApiInput):
    name: Name
    description: Notes | None = None
    email_domains: Annotated[list[Domain], Field(max_length=50)] = []
    logo_url: WebUrl | None = None
    primary_contact_id: Id | None = None
    account_manager_id: Id | None = None
    custom_fields: CustomFieldsIn | None = None


class CompanyPatch(ApiInput):
    name: Name | None = None
    description: Notes | None = None
    email_domains: Annotated[list[Domain], Field(max_length=50)] | None = None
    logo_url: WebUrl | None = None
    primary_contact_id: Id | None = None
    account_manager_id: Id | None = None
    custom_fields: CustomFieldsIn | None = None
