"""Connecting a Microsoft 365 mailbox through the consent flow, against the emulator."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from enque.core.runtime import Runtime
from enque.mailboxes.models import Mailbox
from enque.mailboxes.service import credentials
from tests.emulators.graph import GraphEmulator, query_of
from tests.support.api import Tenant, data, error


@pytest.fixture
def microsoft(
    graph_emulator: GraphEmulator, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> GraphEmulator:
    """The app configured for the emulator's Microsoft identity and Graph."""
    graph_emulator.configure(app_runtime.settings, monkeypatch)
    return graph_emulator


async def consent(tenant: Tenant, url: str) -> httpx.Response:
    """The browser: Microsoft's sign-in page, then back to our callback."""
    async with httpx.AsyncClient() as browser:
        at_microsoft = await browser.get(url)
    assert at_microsoft.status_code == 302
    back = urlsplit(at_microsoft.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == "http://enque.test"
    return await tenant.http.get(f"{back.path}?{back.query}")


async def test_connect_own_mailbox_then_reconnect(
    tenant: Tenant,
    microsoft: GraphEmulator,
    app_runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = microsoft.add_user("Support@Contoso.test", "Contoso Support")
    started = data(await tenant.get("/v1/mailboxes/microsoft/connect"))
    q = query_of(started["url"])
    assert started["url"].startswith(f"{microsoft.base_url}/organizations/oauth2/v2.0/authorize")
    assert q["redirect_uri"] == ["http://enque.test/v1/mailboxes/microsoft/callback"]
    with caplog.at_level(logging.DEBUG):
        finished = await consent(tenant, started["url"])
    assert finished.status_code == 302
    result = urlsplit(finished.headers["location"])
    assert result.netloc == "enque.test" and result.path == "/settings/mailboxes"
    mailbox_id = query_of(finished.headers["location"])["connected"][0]

    shown = data(await tenant.get(f"/v1/mailboxes/{mailbox_id}"))
    assert shown["kind"] == "microsoft" and shown["email"] == "Support@contoso.test"
    assert shown["displayName"] == "Contoso Support" and shown["state"] == "active"
    async with app_runtime.db.session(write=False) as session:
        mailbox = (
            await session.execute(select(Mailbox).where(Mailbox.id == mailbox_id))
        ).scalar_one()
        tokens = credentials(app_runtime, mailbox)
        assert mailbox.settings["microsoft"]["user_id"] == user.id
    assert tokens["refresh_token"] and tokens["refresh_token"] not in (mailbox.credentials or "")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (tokens["refresh_token"], tokens["access_token"], microsoft.client_secret):
        assert secret not in logged

    # Consenting again (a revoked grant) refreshes the same mailbox's tokens.
    again = data(await tenant.get("/v1/mailboxes/microsoft/connect"))
    redone = await consent(tenant, again["url"])
    assert query_of(redone.headers["location"])["connected"] == [mailbox_id]
    async with app_runtime.db.session(write=False) as session:
        mailbox = (
            await session.execute(select(Mailbox).where(Mailbox.id == mailbox_id))
        ).scalar_one()
        assert credentials(app_runtime, mailbox)["refresh_token"] != tokens["refresh_token"]
    assert len(data(await tenant.get("/v1/mailboxes"))) == 1


async def test_shared_mailbox_needs_access(tenant: Tenant, microsoft: GraphEmulator) -> None:
    admin = microsoft.add_user("admin@contoso.test")
    shared = microsoft.add_user("help@contoso.test", "Help Desk")
    url = data(
        await tenant.get("/v1/mailboxes/microsoft/connect", params={"mailbox": shared.mail})
    )["url"]
    refused = await consent(tenant, url)
    assert query_of(refused.headers["location"]) == {"error": ["no_access"]}
    shared.delegates.add(admin.id)
    url = data(
        await tenant.get("/v1/mailboxes/microsoft/connect", params={"mailbox": shared.mail})
    )["url"]
    mailbox_id = query_of((await consent(tenant, url)).headers["location"])["connected"][0]
    shown = data(await tenant.get(f"/v1/mailboxes/{mailbox_id}"))
    assert shown["email"] == "help@contoso.test" and shown["displayName"] == "Help Desk"


async def test_state_is_single_use_and_bound(tenant: Tenant, microsoft: GraphEmulator) -> None:
    microsoft.add_user("support@contoso.test")
    url = data(await tenant.get("/v1/mailboxes/microsoft/connect"))["url"]
    async with httpx.AsyncClient() as browser:
        location = (await browser.get(url)).headers["location"]
    back = urlsplit(location)
    first = await tenant.http.get(f"{back.path}?{back.query}")
    assert "connected" in query_of(first.headers["location"])
    replay = await tenant.http.get(f"{back.path}?{back.query}")
    assert query_of(replay.headers["location"]) == {"error": ["expired_state"]}
    forged = await tenant.http.get(
        "/v1/mailboxes/microsoft/callback", params={"state": "made-up", "code": "x"}
    )
    assert query_of(forged.headers["location"]) == {"error": ["expired_state"]}
    microsoft.consent = False
    url = data(await tenant.get("/v1/mailboxes/microsoft/connect"))["url"]
    denied = await consent(tenant, url)
    assert query_of(denied.headers["location"]) == {"error": ["access_denied"]}


async def test_connect_needs_configuration_and_admin(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_runtime.settings, "microsoft_client_id", None)
    error(await tenant.get("/v1/mailboxes/microsoft/connect"), 400, "BAD_REQUEST")
    response = await tenant.http.get("/v1/mailboxes/microsoft/connect")
    assert response.status_code == 401
