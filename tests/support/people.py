"""Agents for tests: invited by a tenant's admin, the link read from the real SMTP server."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.support.api import PASSWORD, Tenant, data, unique
from tests.support.services import SmtpServer

TOKEN_IN_LINK = re.compile(r"[?&]token=([A-Za-z0-9_\-]+)")


def token_from_mail(text: str) -> str:
    found = TOKEN_IN_LINK.search(text)
    assert found, f"no token link in:\n{text}"
    return found.group(1)


async def last_token(smtp: SmtpServer, address: str, count: int = 1) -> str:
    """The token of the `count`-th mail to `address` (waits for it to arrive)."""
    mails = await smtp.wait_for(address, count=count)
    return token_from_mail(mails[count - 1].text())


@dataclass
class Member:
    """An agent of a tenant's workspace, signed in."""

    tenant: Tenant
    agent_id: str
    email: str
    password: str
    token: str
    role: str

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.tenant.request(method, path, token=self.token, **kwargs)


async def invite(
    tenant: Tenant, email: str, role: str = "agent", team_ids: list[str] | None = None
) -> dict[str, Any]:
    body = {"email": email, "role": role, "teamIds": team_ids or []}
    return data(await tenant.post("/v1/agents/invitations", json=body), 201)


async def accept(
    tenant: Tenant, token: str, password: str = PASSWORD, display_name: str | None = "New Agent"
) -> Any:
    body: dict[str, Any] = {"token": token, "password": password}
    if display_name is not None:
        body["displayName"] = display_name
    return await tenant.http.post("/v1/auth/invitations/accept", json=body)


async def add_member(
    tenant: Tenant,
    smtp: SmtpServer,
    role: str = "agent",
    team_ids: list[str] | None = None,
    name: str | None = None,
) -> Member:
    """Invite a new address with `role`, accept from the mailed link, sign in."""
    email = f"{unique(role)}@example.com"
    await invite(tenant, email, role, team_ids)
    token = await last_token(smtp, email)
    signed = data(await accept(tenant, token, display_name=name or f"{role.title()} {email}"))
    return Member(tenant, signed["agent"]["id"], email, PASSWORD, signed["token"], role)
