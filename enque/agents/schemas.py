from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from enque.core.api import ApiInput, ApiModel, Email, Password, not_null
from enque.notifications.schemas import SettingIn, SettingOut

Role = Literal["admin", "manager", "agent"]
Name = Annotated[str, Field(min_length=1, max_length=200)]
OptionalText = Annotated[str | None, Field(max_length=200)]
Phone = Annotated[str | None, Field(max_length=64)]


def _web_url(value: str | None) -> str | None:
    if value is not None and not value.lower().startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


# A password to check (not to set): any length the old system allowed, never stripped.
GivenPassword = Annotated[
    str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=1024)
]
AvatarUrl = Annotated[str | None, Field(max_length=1024), AfterValidator(_web_url)]


class AgentOut(ApiModel):
    """An agent as others see it; never carries hashes or tokens (allow-list)."""

    id: str
    email: str
    display_name: str
    avatar_url: str | None
    job_title: str | None
    phone: str | None
    auth_method: str
    is_active: bool
    last_login_at: int | None
    created_at: int
    updated_at: int
    role: str | None = None


class AgentPatchIn(ApiInput):
    """Admins change anything here; an agent may change its own profile fields only."""

    role: Role | None = None
    is_active: bool | None = None
    display_name: Name | None = None
    job_title: OptionalText = None
    phone: Phone = None

    _not_null = not_null("role", "is_active", "display_name")


class InvitationIn(ApiInput):
    email: Email
    role: Role = "agent"
    team_ids: Annotated[list[str], Field(max_length=100)] = []


class InvitationOut(ApiModel):
    id: str
    email: str
    role: str
    team_ids: list[str]
    invited_by_id: str | None
    expires_at: int
    accepted_at: int | None
    revoked_at: int | None
    created_at: int


class AcceptInvitationIn(ApiInput):
    token: Annotated[str, Field(min_length=1, max_length=256)]
    password: Password
    display_name: Name | None = None


class ProfileOut(AgentOut):
    signature: str | None
    notifications: list[SettingOut] = []


class ProfilePatchIn(ApiInput):
    display_name: Name | None = None
    avatar_url: AvatarUrl = None
    job_title: OptionalText = None
    phone: Phone = None
    signature: Annotated[str | None, Field(max_length=20_000)] = None
    current_password: GivenPassword | None = None
    password: Password | None = None
    notifications: Annotated[list[SettingIn], Field(min_length=1, max_length=20)] | None = None

    _not_null = not_null("display_name", "current_password", "password", "notifications")


class ProfileUpdateOut(ProfileOut):
    """The profile after a change; `token` is a fresh one when the password changed."""

    token: str | None = None
    expires_at: int | None = None
