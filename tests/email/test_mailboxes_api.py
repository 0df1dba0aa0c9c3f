"""The mailbox API: connect an IMAP + SMTP mailbox (credentials tested), change, disconnect."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from enque.agents.models import Agent, AgentWorkspace
from enque.core.crypto import Cipher, key_id
from enque.core.db import Base
from enque.core.runtime import Runtime
from enque.core.secrets import context_for, seal
from enque.core.security import issue_token
from enque.mailboxes import service
from enque.mailboxes.models import Mailbox
from tests.conftest import BACKEND, make_database_url, settings_from
from tests.email.certs import CertBundle
from tests.email.dovecot import Dovecot
from tests.email.servers import SMTP_PASSWORD, imap_mailbox_body
from tests.email.smtpd import AuthSmtpServer
from tests.support.api import Tenant, data, error
from tests.support.factories import FACTORIES
from tests.support.services import free_port


async def create(tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    return data(await tenant.post("/v1/mailboxes/imap", json=body), 201)  # type: ignore[no-any-return]


async def test_connect_list_and_read(tenant: Tenant) -> None:
    body = imap_mailbox_body()
    response = await tenant.post("/v1/mailboxes/imap", json=body)
    created = data(response, 201)
    warnings = response.json()["meta"]["warnings"]
    assert len(warnings) == 2 and all("unencrypted" in w for w in warnings)
    assert created["email"] == body["email"] and created["kind"] == "imap"
    assert created["imap"] == {
        "host": "127.0.0.1",
        "port": body["imap"]["port"],
        "security": "none",
        "username": body["imap"]["username"],
    }
    assert created["state"] == "active" and created["folder"] == "INBOX"
    assert created["messageCounts"] == {"received": 0, "sent": 0, "failed": 0}
    assert body["imap"]["password"] not in response.text and SMTP_PASSWORD not in response.text

    listed = data(await tenant.get("/v1/mailboxes"))
    assert [m["id"] for m in listed] == [created["id"]]
    one = data(await tenant.get(f"/v1/mailboxes/{created['id']}"))
    assert one["displayName"] == "Support" and "password" not in str(one).lower()


async def test_tenant_walk_factory(tenant: Tenant, make_tenant: Any) -> None:
    mailbox_id = await FACTORIES["mailboxes"](tenant)
    assert data(await tenant.get(f"/v1/mailboxes/{mailbox_id}"))["id"] == mailbox_id
    other = await make_tenant()
    error(await other.get(f"/v1/mailboxes/{mailbox_id}"), 404, "NOT_FOUND")


async def test_list_pages(tenant: Tenant) -> None:
    ids = [(await create(tenant, imap_mailbox_body()))["id"] for _ in range(3)]
    first = await tenant.get("/v1/mailboxes", params={"limit": 2})
    cursor = first.json()["meta"]["nextCursor"]
    second = data(await tenant.get("/v1/mailboxes", params={"limit": 2, "cursor": cursor}))
    assert [m["id"] for m in data(first)] + [m["id"] for m in second] == ids


async def test_secrets_are_never_stored_or_logged_in_clear(
    tenant: Tenant, app_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = imap_mailbox_body()
    password = body["imap"]["password"]
    with caplog.at_level(logging.DEBUG):
        created = await create(tenant, body)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (password, SMTP_PASSWORD, base64.b64encode(SMTP_PASSWORD.encode()).decode()):
        assert secret not in logged

    dump = []
    async with app_runtime.db.session(write=False) as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            dump.extend(repr(tuple(row)) for row in rows)
        stored = (
            await session.execute(select(Mailbox.credentials).where(Mailbox.id == created["id"]))
        ).scalar_one()
    everything = "\n".join(dump)
    assert password not in everything and SMTP_PASSWORD not in everything
    assert stored is not None and stored.startswith(f"v1:{app_runtime.cipher.current_id}:")
    # Bound to its row: the same ciphertext does not decrypt as another mailbox's secret.
    with pytest.raises(Exception):  # noqa: B017
        app_runtime.cipher.decrypt(stored, context_for("mailboxes", "credentials", "other"))


@pytest.mark.parametrize(
    ("change", "status", "where"),
    [
        ({"imap": {"password": "wrong-password"}}, 422, "imap.password"),
        ({"imap": {"folder": "NoSuchFolder"}}, 422, "imap.folder"),
        ({"smtp": {"password": "wrong-password"}}, 422, "smtp.password"),
        ({"imap": {"port": "closed"}}, 502, "imap"),
        ({"imap": {"security": "tls"}}, 422, "imap.security"),
    ],
    ids=["imap-password", "folder", "smtp-password", "unreachable", "tls-on-plain-port"],
)
async def test_credentials_are_tested_before_saving(
    tenant: Tenant, change: dict[str, dict[str, Any]], status: int, where: str
) -> None:
    body = imap_mailbox_body()
    for server, values in change.items():
        for key, value in values.items():
            body[server][key] = free_port() if value == "closed" else value
    response = await tenant.post("/v1/mailboxes/imap", json=body)
    if status == 502:
        err = error(response, 502, "INTEGRATION_ERROR")
        assert err["details"][0]["service"] == where
    else:
        err = error(response, 422, "VALIDATION_ERROR")
        assert err["details"][0]["path"] == where
    assert data(await tenant.get("/v1/mailboxes")) == []


async def test_validation_of_the_body(tenant: Tenant) -> None:
    body = imap_mailbox_body()
    body["imap"]["security"] = "ssl"
    error(await tenant.post("/v1/mailboxes/imap", json=body), 422, "VALIDATION_ERROR")
    body = imap_mailbox_body()
    body["smtp"]["password"] = None
    error(await tenant.post("/v1/mailboxes/imap", json=body), 422, "VALIDATION_ERROR")
    body = imap_mailbox_body()
    body["imap"]["host"] = "imap.example.test/../x"
    error(await tenant.post("/v1/mailboxes/imap", json=body), 422, "VALIDATION_ERROR")


async def test_tls_mailbox_with_a_private_ca(
    tenant: Tenant,
    app_runtime: Runtime,
    dovecot_tls: Dovecot,
    smtp_starttls: AuthSmtpServer,
    certs: CertBundle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = dovecot_tls.add_user()
    body = imap_mailbox_body()
    body["imap"].update(port=dovecot_tls.tls_port, security="tls", username=user, password=password)
    body["smtp"].update(port=smtp_starttls.port, security="starttls")
    error(await tenant.post("/v1/mailboxes/imap", json=body), 422, "VALIDATION_ERROR")
    monkeypatch.setattr(app_runtime.settings, "email_ca_file", str(certs.ca_file))
    response = await tenant.post("/v1/mailboxes/imap", json=body)
    assert data(response, 201)["imap"]["security"] == "tls"
    assert response.json()["meta"]["warnings"] == []


async def test_one_address_per_workspace(tenant: Tenant, make_tenant: Any) -> None:
    body = imap_mailbox_body("Help@Acme.test")
    await create(tenant, body)
    again = imap_mailbox_body("help@acme.test")
    error(await tenant.post("/v1/mailboxes/imap", json=again), 409, "CONFLICT")
    other = await make_tenant()
    await create(other, imap_mailbox_body("help@acme.test"))


async def test_patch(tenant: Tenant, app_runtime: Runtime) -> None:
    created = await create(tenant, imap_mailbox_body())
    path = f"/v1/mailboxes/{created['id']}"
    async with app_runtime.db.transaction() as session:
        mailbox = await session.get(Mailbox, created["id"])
        assert mailbox is not None
        mailbox.sync_cursor = {"uidvalidity": 1, "last_uid": 9}
    team_id = "01930000-0000-7000-8000-000000000001"
    changed = data(
        await tenant.patch(
            path,
            json={
                "displayName": "Billing",
                "teamId": team_id,
                "defaultPriority": "High",
                "folder": "Support",
                "isActive": False,
            },
        )
    )
    assert changed["displayName"] == "Billing" and changed["teamId"] == team_id
    assert changed["defaultPriority"] == "High" and changed["folder"] == "Support"
    assert changed["isActive"] is False
    async with app_runtime.db.session(write=False) as session:
        mailbox = await session.get(Mailbox, created["id"])
        assert mailbox is not None and mailbox.sync_cursor is None
    cleared = data(await tenant.patch(path, json={"teamId": None}))
    assert cleared["teamId"] is None and cleared["displayName"] == "Billing"
    error(await tenant.patch(path, json={"defaultPriority": "Urgent"}), 422, "VALIDATION_ERROR")
    error(await tenant.patch(path, json={"displayName": None}), 422, "VALIDATION_ERROR")
    error(await tenant.patch(path, json={"credentials": "x"}), 422, "VALIDATION_ERROR")


async def test_delete_disconnects_and_forgets_secrets(tenant: Tenant, app_runtime: Runtime) -> None:
    body = imap_mailbox_body()
    created = await create(tenant, body)
    path = f"/v1/mailboxes/{created['id']}"
    response = await tenant.delete(path)
    assert response.status_code == 204 and response.content == b""
    error(await tenant.get(path), 404, "NOT_FOUND")
    error(await tenant.delete(path), 404, "NOT_FOUND")
    async with app_runtime.db.session(write=False) as session:
        mailbox = await session.get(Mailbox, created["id"])
        assert mailbox is not None and mailbox.credentials is None and mailbox.deleted_at
    await create(tenant, imap_mailbox_body(body["email"]))  # the address can be connected again


async def test_other_workspaces_and_bad_ids_are_not_found(tenant: Tenant, make_tenant: Any) -> None:
    other = await make_tenant()
    theirs = await create(other, imap_mailbox_body())
    for mailbox_id in (theirs["id"], "not-a-uuid", "0" * 36):
        path = f"/v1/mailboxes/{mailbox_id}"
        error(await tenant.get(path), 404, "NOT_FOUND")
        error(await tenant.patch(path, json={"displayName": "x"}), 404, "NOT_FOUND")
        error(await tenant.delete(path), 404, "NOT_FOUND")
    assert data(await tenant.get("/v1/mailboxes")) == []


async def test_only_admins_change_mailboxes(tenant: Tenant, app_runtime: Runtime) -> None:
    created = await create(tenant, imap_mailbox_body())
    async with app_runtime.db.transaction() as session:
        agent = Agent(email=f"agent-{secrets.token_hex(4)}@acme.test", display_name="Agent")
        session.add(agent)
        await session.flush()
        session.add(
            AgentWorkspace(workspace_id=tenant.workspace_id, agent_id=agent.id, role="agent")
        )
    token, _ = issue_token(
        secret=app_runtime.settings.resolved_secret_key(),
        agent_id=agent.id,
        workspace_id=tenant.workspace_id,
        role="agent",
        token_version=0,
        lifetime=600,
    )
    assert len(data(await tenant.get("/v1/mailboxes", token=token))) == 1
    path = f"/v1/mailboxes/{created['id']}"
    error(
        await tenant.post("/v1/mailboxes/imap", json=imap_mailbox_body(), token=token),
        403,
        "FORBIDDEN",
    )
    error(await tenant.patch(path, json={"displayName": "x"}, token=token), 403, "FORBIDDEN")
    error(await tenant.delete(path, token=token), 403, "FORBIDDEN")
    response = await tenant.http.get("/v1/mailboxes")
    assert response.status_code == 401


async def test_workspace_addresses_and_settings_for_the_adapters(
    tenant: Tenant, app_runtime: Runtime, dovecot: Dovecot
) -> None:
    body = imap_mailbox_body("Desk@Acme.test")
    created = await create(tenant, body)
    async with app_runtime.db.session(write=False) as session:
        addresses = await service.workspace_addresses(session, workspace_id=tenant.workspace_id)
        mailbox = await service.get_mailbox(
            session, workspace_id=tenant.workspace_id, mailbox_id=created["id"]
        )
    assert addresses == ["desk@acme.test"]
    imap_cfg = service.imap_settings(app_runtime, mailbox)
    assert imap_cfg.password == body["imap"]["password"] and imap_cfg.port == dovecot.port
    assert "password" not in repr(imap_cfg)
    assert service.smtp_settings(app_runtime, mailbox).password == SMTP_PASSWORD


# ---------------------------------------------------------------- key rotation


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def test_rotate_encryption_key(base_env: dict[str, str], data_dir: Path) -> None:
    url, cleanup = make_database_url(BACKEND, data_dir, f"enque_rotate_{os.getpid()}")
    old_key, new_key = _key(), _key()
    try:
        old = settings_from(base_env, database_url=url, encryption_key=old_key)
        from enque.core.migrate import upgrade

        await upgrade(old)
        runtime = Runtime.build(old)
        try:
            async with runtime.db.transaction() as session:
                ws_id = await _workspace(session)
                for n in range(5):
                    mailbox = Mailbox(
                        id=f"0193{n:04d}-0000-7000-8000-000000000000",
                        workspace_id=ws_id,
                        email=f"m{n}@acme.test",
                        display_name="M",
                        kind="imap",
                    )
                    seal(runtime.cipher, mailbox, "credentials", {"imap_password": f"pw-{n}"})
                    session.add(mailbox)
        finally:
            await runtime.close()

        env = {
            **os.environ,
            **base_env,
            "DATABASE_URL": url,
            "ENCRYPTION_KEY": new_key,
        }
        refused = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "enque.cli", "rotate-encryption-key", "--batch", "2"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0 and "ENCRYPTION_KEYS_OLD" in refused.stderr
        env["ENCRYPTION_KEYS_OLD"] = old_key
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "enque.cli", "rotate-encryption-key", "--batch", "2"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "mailboxes.credentials: 5 re-encrypted, 5 checked" in done.stdout
        again = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "enque.cli", "rotate-encryption-key"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "mailboxes.credentials: 0 re-encrypted, 5 checked" in again.stdout

        new_only = Cipher(new_key)
        rotated = settings_from(base_env, database_url=url, encryption_key=new_key)
        runtime = Runtime.build(rotated)
        try:
            async with runtime.db.session(write=False) as session:
                rows = (await session.execute(select(Mailbox).order_by(Mailbox.id))).scalars().all()
                raw = (await session.execute(text("SELECT credentials FROM mailboxes"))).all()
        finally:
            await runtime.close()
        assert all(r[0].startswith(f"v1:{key_id(new_key)}:") for r in raw)
        for n, mailbox in enumerate(rows):
            context = context_for("mailboxes", "credentials", mailbox.id)
            plain = new_only.decrypt(mailbox.credentials or "", context)
            assert plain == f'{{"imap_password":"pw-{n}"}}'
    finally:
        cleanup()


async def _workspace(session: Any) -> str:
    from enque.workspaces.models import Workspace

    workspace = Workspace(name="Rotation", subdomain=f"rot-{secrets.token_hex(4)}")
    session.add(workspace)
    await session.flush()
    return workspace.id
