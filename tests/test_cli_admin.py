"""`enque create-admin`, run as the operator would: a real process on the test database."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from enque.agents.service import add_admin
from enque.cli import main
from enque.config import get_settings
from enque.core.errors import ApiError
from tests.support.api import PASSWORD, Tenant, data, error, unique
from tests.support.people import add_member


def run(base_env: dict[str, str], database_url: str, *args: str, stdin: str = "") -> Any:
    env = {**base_env, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "enque.cli", "create-admin", *args]
    return subprocess.run(
        command, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


async def login(http: Any, email: str, password: str, workspace_id: str | None = None) -> Any:
    body: dict[str, Any] = {"email": email, "password": password}
    if workspace_id:
        body["workspaceId"] = workspace_id
    return await http.post("/v1/auth/login", json=body)


async def test_new_workspace_with_its_admin(
    http: Any, base_env: dict[str, str], database_url: str, migrated: Any
) -> None:
    email, subdomain = f"{unique('op')}@example.com", unique("cli")
    args = ["--email", email, "--password", PASSWORD]
    done = run(base_env, database_url, *args, "--workspace-name", "CLI", "--subdomain", subdomain)
    assert done.returncode == 0, done.stderr
    signed = data(await login(http, email, PASSWORD))
    workspace, agent = signed["workspace"], signed["agent"]
    assert (workspace["subdomain"], workspace["name"]) == (subdomain, "CLI")
    assert (agent["role"], agent["displayName"]) == ("admin", email.split("@")[0])
    assert workspace["id"] in done.stdout


async def test_admin_for_an_existing_workspace_with_prompted_password(
    tenant: Tenant, base_env: dict[str, str], database_url: str
) -> None:
    email = f"{unique('second')}@example.com"
    typed = "typed at the prompt"
    args = ["--email", email, "--display-name", "Second Admin"]
    done = run(
        base_env, database_url, *args, "--workspace-id", tenant.workspace_id,
        stdin=f"{typed}\n{typed}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert typed not in done.stdout
    signed = data(await login(tenant.http, email, typed))
    assert signed["workspace"]["id"] == tenant.workspace_id
    assert signed["agent"]["role"] == "admin" and signed["agent"]["displayName"] == "Second Admin"
    joined = [a for a in data(await tenant.get("/v1/agents")) if a["email"] == email]
    assert joined and joined[0]["role"] == "admin"


async def test_existing_agent_must_give_its_password(
    tenant: Tenant,
    make_tenant: Any,
    app_runtime: Any,
    base_env: dict[str, str],
    database_url: str,
) -> None:
    other = await make_tenant()
    async with app_runtime.db.session() as session:
        with pytest.raises(ApiError) as refused:
            await add_admin(
                session, workspace_id=tenant.workspace_id, email=other.email,
                password="wrong password!", display_name="x",
            )  # fmt: skip
    assert refused.value.code == "UNAUTHORIZED" and "wrong password" in refused.value.message
    wrong = await login(tenant.http, other.email, other.password, tenant.workspace_id)
    error(wrong, 401, "UNAUTHORIZED")
    args = ["--email", other.email, "--password", other.password]
    done = run(base_env, database_url, *args, "--workspace-id", tenant.workspace_id)
    assert done.returncode == 0, done.stderr
    signed = data(await login(tenant.http, other.email, other.password, tenant.workspace_id))
    assert signed["agent"]["id"] == other.agent_id and signed["agent"]["role"] == "admin"


async def test_existing_member_is_promoted(
    tenant: Tenant, smtp_server: Any, app_runtime: Any
) -> None:
    member = await add_member(tenant, smtp_server, "agent")

    async def promote() -> None:
        async with app_runtime.db.session() as session:
            await add_admin(
                session, workspace_id=tenant.workspace_id, email=member.email,
                password=member.password, display_name="ignored",
            )  # fmt: skip

    await promote()
    assert data(await member.request("GET", "/v1/auth/me"))["role"] == "admin"
    with pytest.raises(ApiError) as again:
        await promote()
    assert again.value.code == "CONFLICT"


def test_bad_invocations(base_env: dict[str, str], database_url: str) -> None:
    """In-process: each case is refused, and said why."""
    env = {**base_env, "DATABASE_URL": database_url}
    taken = unique("taken")
    good = ["--email", "a@example.com", "--password", PASSWORD]
    new = ["--workspace-name", "X", "--subdomain"]
    create = ["--email", f"{taken}@example.com", "--password", PASSWORD, *new, taken]
    cases = [
        (good, "either"),
        ([*good, "--workspace-name", "X"], "both"),
        ([*good, *new, "x", "--workspace-id", "y"], "either"),
        (["--email", "nope", "--password", PASSWORD, "--workspace-id", "y"], "--email"),
        (["--email", "a@example.com", "--password", "short", "--workspace-id", "y"], "--password"),
        ([*good, *new, "Bad_Sub"], "--subdomain"),
        ([*good, "--workspace-id", "missing"], "Workspace not found"),
        ([*good, *new, taken], "Subdomain is taken"),
        ([*create[:-1], unique("free")], "An agent with this email exists"),
    ]
    get_settings.cache_clear()
    try:
        assert CliRunner().invoke(main, ["create-admin", *create], env=env).exit_code == 0
        for args, message in cases:
            done = CliRunner().invoke(main, ["create-admin", *args], env=env)
            assert done.exit_code != 0, args
            assert message in done.output, (args, done.output)
    finally:
        get_settings.cache_clear()
