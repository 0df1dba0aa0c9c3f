from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.agents.schemas import AgentOut, GivenPassword
from enque.core.api import ApiInput, ApiModel, Email, Password
from enque.workspaces.schemas import WorkspaceOut

Subdomain = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")]


class RegisterIn(ApiInput):
    email: Email
    password: Password
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    workspace_name: Annotated[str, Field(min_length=1, max_length=200)]
    subdomain: Subdomain


class LoginIn(ApiInput):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: GivenPassword
    workspace_id: str | None = None


class SwitchWorkspaceIn(ApiInput):
    workspace_id: str


class ForgotPasswordIn(ApiInput):
    email: Annotated[str, Field(min_length=1, max_length=320)]


class ResetPasswordIn(ApiInput):
    token: Annotated[str, Field(min_length=1, max_length=256)]
    password: Password


class SignInUrlOut(ApiModel):
    url: str


class AuthOut(ApiModel):
    token: str
    expires_at: int
    agent: AgentOut
    workspace: WorkspaceOut


class MeOut(ApiModel):
    agent: AgentOut
    workspace: WorkspaceOut
    role: str
