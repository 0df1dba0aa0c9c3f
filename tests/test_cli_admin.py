"""`enque create-admin`, run as the operator would: a real process on the test database."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from click.testing import CliRunner

from enque.cli import main
from enque.config import get_settings
from tests.support.api import PASSWORD, Tenant, data, error, unique


def run(base_env: dict[str, str], database_url: str, *args: str, stdin: str = "") -> Any:
    env = {**base_env, "DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "enque.cli", "create-admin", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def login(
    tenant_http: Any, email: str, password: str, workspace_id: str | None = None
) -> Any:
    body: dict[str, Any] = {"email": email, "password": password}
    if workspace_id:
        body["workspaceId"] = workspace_id
    return await tenant_http.post("/v1/auth/login", json=body)


async def test_new_workspace_with_its_admin(
    http: Any, base_env: dict[str, str], database_url: str, migrated: Any
) -> None:
    email, subdomain = f"{unique('op')}@example.com", unique("cli")
    done = run(
        base_env,
        database_url,
        "--email",
        email,
        "--password",
        PASSWORD,
        "--workspace-name",
        "From the CLI",
        "--subdomain",
        subdomain,
    )
    assert done.returncode == 0, done.stderr
    signed = data(await login(http, email, PASSWORD))
    assert signed["workspace"]["subdomain"] == subdomain
    assert signed["workspace"]["name"] == "From the CLI"
    assert (
        signed["agent"]["role"] == "admin" and signed["agent"]["displayName"] == email.split("@")[0]
    )
    assert signed["workspace"]["id"] in done.stdout
    again = run(
        base_env,
        database_url,
        "--email",
        f"{unique('x')}@example.com",
        "--password",
        PASSWORD,
        "--workspace-name",
        "Dup",
        "--subdomain",
        subdomain,
    )
    assert again.returncode != 0 and "Subdomain is taken" in again.stderr


async def test_admin_for_an_existing_workspace_with_prompted_password(
    tenant: Tenant, base_env: dict[str, str], database_url: str
) -> None:
    email = f"{unique('second')}@example.com"
    typed = "typed at the prompt"
    done = run(
        base_env,
        database_url,
        "--email",
        email,
        "--display-name",
        "Second Admin",
        "--workspace-id",
        tenant.workspace_id,
        stdin=f"{typed}\n{typed}\n",
    )
    assert done.returncode == 0, done.stderr
    assert typed not in done.stdout
    signed = data(await login(tenant.http, email, typed))
    assert signed["workspace"]["id"] == tenant.workspace_id
    assert signed["agent"]["role"] == "admin" and signed["agent"]["displayName"] == "Second Admin"
    joined = [a for a in data(await tenant.get("/v1/agents")) if a["email"] == email]
    assert joined and joined[0]["role"] == "admin"


async def test_existing_agent_must_give_its_password(
    tenant: Tenant, make_tenant: Any, base_env: dict[str, str], database_url: str
) -> None:
    other = await make_tenant()
    wrong = run(
        base_env,
        database_url,
        "--email",
        other.email,
        "--password",
        "wrong password!",
        "--workspace-id",
        tenant.workspace_id,
    )
    assert wrong.returncode != 0 and "wrong password" in wrong.stderr
    error(
        await login(tenant.http, other.email, other.password, tenant.workspace_id),
        401,
        "UNAUTHORIZED",
    )
    done = run(
        base_env,
        database_url,
        "--email",
        other.email,
        "--password",
        other.password,
        "--workspace-id",
        tenant.workspace_id,
    )
    assert done.returncode == 0, done.stderr
    signed = data(await login(tenant.http, other.email, other.password, tenant.workspace_id))
    assert signed["agent"]["id"] == other.agent_id and signed["agent"]["role"] == "admin"


def test_bad_invocations(base_env: dict[str, str], database_url: str) -> None:
    """In-process (each case is refused before any lasting work)."""
    env = {**base_env, "DATABASE_URL": database_url}
    cases = [
        (["--email", "a@example.com", "--password", PASSWORD], "either"),
        (["--email", "a@example.com", "--password", PASSWORD, "--workspace-name", "X"], "both"),
        (
            [
                "--email",
                "a@example.com",
                "--password",
                PASSWORD,
                "--workspace-name",
                "X",
                "--subdomain",
                "x",
                "--workspace-id",
                "y",
            ],
            "either",
        ),
        (["--email", "nope", "--password", PASSWORD, "--workspace-id", "y"], "--email"),
        (["--email", "a@example.com", "--password", "short", "--workspace-id", "y"], "--password"),
        (
            [
                "--email",
                "a@example.com",
                "--password",
                PASSWORD,
                "--workspace-name",
                "X",
                "--subdomain",
                "Bad_Sub",
            ],
            "--subdomain",
        ),
        (
            ["--email", "a@example.com", "--password", PASSWORD, "--workspace-id", "missing"],
            "Workspace not found",
        ),
    ]
    get_settings.cache_clear()
    try:
        for args, message in cases:
            done = CliRunner().invoke(main, ["create-admin", *args], env=env)
            assert done.exit_code != 0, args
            assert message in done.output, (args, done.output)
    finally:
        get_settings.cache_clear()
