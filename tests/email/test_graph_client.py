"""The Microsoft OAuth and Graph clients against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from enque.core.db import Base, new_id
from enque.core.runtime import Runtime
from enque.core.secrets import seal
from enque.email.classify import classify
from enque.email.errors import AuthenticationFailed, TemporaryError
from enque.email.graph import (
    GraphClient,
    MemoryTokenStore,
    OAuthClient,
    ResyncRequired,
    TokenSet,
    to_parsed,
)
from enque.email.outbound_mime import build_message
from enque.email.parse import parse_message
from enque.mailboxes.models import Mailbox
from enque.mailboxes.service import MailboxTokenStore, credentials
from tests.email.corpus import PNG, base_headers, forwarded, inline_image, message
from tests.emulators.graph import GraphEmulator, User, query_of
from tests.support.api import Tenant
from tests.support.services import free_port

REDIRECT = "http://enque.test/v1/mailboxes/microsoft/callback"


class Recorder:
    """A `sleep` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def web() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for talking to the emulator over the network."""
    async with httpx.AsyncClient() as client:
        yield client


def oauth_for(emulator: GraphEmulator, http: httpx.AsyncClient) -> OAuthClient:
    return OAuthClient(
        authority=emulator.base_url, tenant="common", client_id=emulator.client_id,
        client_secret=emulator.client_secret, redirect_uri=REDIRECT, http=http,
    )  # fmt: skip


def client_for(
    emulator: GraphEmulator,
    http: httpx.AsyncClient,
    user: User,
    store: Any = None,
    sleep: Any = None,
    **kw: Any,
) -> GraphClient:
    if store is None:
        issued = emulator.tokens_for(user)
        store = MemoryTokenStore(
            TokenSet(issued["access_token"], issued["refresh_token"], int(time.time()) + 3600)
        )
    return GraphClient(
        base_url=emulator.base_url + "/v1.0", mailbox=user.mail, tokens=store,
        oauth=oauth_for(emulator, http), http=http, sleep=sleep or Recorder(), **kw,
    )  # fmt: skip


def mail(n: int, **headers: str) -> bytes:
    return message(
        base_headers(Message_ID=f"<c{n}@customer.test>", Subject=f"m{n}", **headers), f"body {n}"
    )


async def test_authorization_code_flow(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test", "Support")
    oauth = oauth_for(graph_emulator, web)
    url = oauth.authorize_url(state="nonce-1", login_hint=user.mail)
    assert url.startswith(f"{graph_emulator.base_url}/common/oauth2/v2.0/authorize?")
    assert "offline_access" in query_of(url)["scope"][0]
    redirect = await web.get(url)
    q = query_of(redirect.headers["location"])
    assert q["state"] == ["nonce-1"]
    tokens = await oauth.exchange_code(q["code"][0])
    assert tokens.refresh_token and tokens.expires_at > time.time() + 3000 and tokens.id_token
    assert "access_token" not in repr(tokens) and tokens.access_token not in repr(tokens)
    client = GraphClient(
        base_url=graph_emulator.base_url + "/v1.0",
        mailbox="me",
        tokens=MemoryTokenStore(tokens),
        oauth=oauth,
        http=web,
    )
    assert (await client.me())["mail"] == user.mail
    with pytest.raises(AuthenticationFailed):
        await oauth.exchange_code(q["code"][0])  # single use


async def test_refresh_before_expiry_stores_the_new_refresh_token(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    issued = graph_emulator.tokens_for(user)
    store = MemoryTokenStore(
        TokenSet(issued["access_token"], issued["refresh_token"], int(time.time()) + 60)
    )
    client = client_for(graph_emulator, web, user, store)
    await client.me()
    assert graph_emulator.calls["token:refresh_token"] == 1 and store.saved == 1
    assert store.tokens.refresh_token != issued["refresh_token"]
    # Months later the first refresh token is dead; the stored one still works.
    graph_emulator.refresh_tokens[issued["refresh_token"]].revoked = True
    store.tokens.expires_at = 0
    await asyncio.gather(*(client.me() for _ in range(5)))
    assert graph_emulator.calls["token:refresh_token"] == 2  # one refresh for concurrent calls


async def test_expired_access_token_is_refreshed_once(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    client = client_for(graph_emulator, web, user)
    graph_emulator.advance(3700)  # Graph sees the token expired; our clock does not yet
    assert (await client.me())["id"] == user.id
    assert client.refreshes == 1
    graph_emulator.access_token_lifetime = -10  # every new token is refused too
    graph_emulator.advance(3700)
    with pytest.raises(AuthenticationFailed, match="InvalidAuthenticationToken"):
        await client.me()
    assert client.refreshes == 3  # on the 401, and before the retry (already expired): then gave up


async def test_unreachable_graph_is_temporary(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    sleep = Recorder()
    client = client_for(graph_emulator, web, user, sleep=sleep, max_attempts=3)
    client.base_url = f"http://127.0.0.1:{free_port()}/v1.0"
    with pytest.raises(TemporaryError, match="unreachable"):
        await client.me()
    assert len(sleep.delays) == 2


async def test_revoked_refresh_token_needs_reconnect(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    client = client_for(graph_emulator, web, user)
    graph_emulator.revoke(user)
    graph_emulator.advance(3700)
    with pytest.raises(AuthenticationFailed, match="invalid_grant"):
        await client.me()


async def test_throttling_honours_retry_after(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    sleep = Recorder()
    client = client_for(graph_emulator, web, user, sleep=sleep)
    graph_emulator.throttle(2, retry_after=7)
    assert (await client.me())["id"] == user.id
    assert sleep.delays == [7, 7]
    graph_emulator.burst_503(3, retry_after=None)
    await client.me()
    assert len(sleep.delays) == 5 and all(0 <= d <= 4 for d in sleep.delays[2:])
    graph_emulator.throttle(10, retry_after=30)
    with pytest.raises(TemporaryError) as caught:
        await client_for(graph_emulator, web, user, max_attempts=3).me()
    assert caught.value.retry_after == 30


async def test_at_most_four_requests_per_mailbox(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    graph_emulator.latency = 0.05
    clients = [client_for(graph_emulator, web, user) for _ in range(3)]
    await asyncio.gather(*(c.me() for c in clients for _ in range(8)))
    assert graph_emulator.calls["get_user"] == 24
    assert graph_emulator.max_in_flight[user.id] == 4
    assert graph_emulator.calls["throttled:MailboxConcurrency"] == 0


async def test_delta_pages_links_moves_and_resync(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    for n in range(7):
        graph_emulator.deliver(user, mail(n))
    client = client_for(graph_emulator, web, user)
    pages = [p async for p in client.delta("inbox", page_size=3)]
    assert [len(p.messages) for p in pages] == [3, 3, 1]
    assert [p.delta_link is not None for p in pages] == [False, False, True]
    first = pages[0].messages[0]
    assert first["internetMessageId"] == "<c0@customer.test>"
    assert first["body"]["contentType"] == "html"
    assert any(h["name"] == "Message-ID" for h in first["internetMessageHeaders"])
    delta_link = pages[-1].delta_link
    assert delta_link is not None

    moved = graph_emulator.move(user, pages[1].messages[0]["id"], "archive")
    graph_emulator.deliver(user, mail(7))
    again = [p async for p in client.delta(delta_link=delta_link, page_size=3)]
    assert [m["subject"] for p in again for m in p.messages] == ["m7"]
    assert [r for p in again for r in p.removed] == [pages[1].messages[0]["id"]]
    assert moved.id not in {m["id"] for p in again for m in p.messages}

    graph_emulator.sync_generation += 1
    with pytest.raises(ResyncRequired):
        _ = [p async for p in client.delta(delta_link=again[-1].delta_link)]


async def test_attachments_inline_and_by_value(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    graph_emulator.inline_attachment_limit = 20
    user = graph_emulator.add_user("support@contoso.test")
    with_image = graph_emulator.deliver(user, inline_image())
    with_forward = graph_emulator.deliver(user, forwarded())
    client = client_for(graph_emulator, web, user)
    found = {a.name: a for a in await client.attachments(with_image.id)}
    assert found["data.csv"].data == b"a,b\r\n1,2"
    logo = next(a for a in found.values() if a.content_id == "logo@x")
    assert logo.data == PNG and logo.is_inline
    assert graph_emulator.calls["attachment_value"] == 1  # only the large one
    (item,) = await client.attachments(with_forward.id)
    assert item.is_item and parse_message(item.data).message_id == "inner@vendor.test"


async def test_graph_message_to_parsed_and_classified(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    graph_emulator.deliver(
        user,
        mail(
            1,
            In_Reply_To="<ours@contoso.test>",
            References="<root@x.test> <ours@contoso.test>",
            Cc="Carol <carol@customer.test>",
        ),
    )
    graph_emulator.deliver(user, mail(2, Auto_Submitted="auto-replied"))
    client = client_for(graph_emulator, web, user)
    (page,) = [p async for p in client.delta()]
    person, auto = (to_parsed(m) for m in page.messages)
    assert person.message_id == "c1@customer.test" and person.in_reply_to == "ours@contoso.test"
    assert person.references == ["root@x.test", "ours@contoso.test"]
    assert person.sender is not None and person.sender.email == "alice@customer.test"
    assert [a.email for a in person.cc] == ["carol@customer.test"]
    assert person.text == "body 1" and person.html is not None
    assert classify(person, [user.mail]).kind == "normal"
    assert classify(auto, [user.mail]).kind == "auto_reply"


async def test_send_mime_keeps_our_headers_and_reply(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient
) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    incoming = graph_emulator.deliver(user, mail(1))
    client = client_for(graph_emulator, web, user)
    out = build_message(
        from_address=user.mail, from_name="Support", to=["alice@customer.test"],
        bcc=["audit@contoso.test"], subject="Re: m1 [#5]", html="<p>Hi</p>",
        in_reply_to="c1@customer.test", references=["c1@customer.test"],
    )  # fmt: skip
    await client.send_mime(out.as_bytes())
    await client.reply(incoming.id, comment_html="<p>Thanks</p>", cc=["carol@customer.test"])
    mime, reply = graph_emulator.sent
    sent = parse_message(mime.payload)
    assert sent.message_id == out.message_id and sent.in_reply_to == "c1@customer.test"
    assert reply.kind == "reply" and reply.in_reply_to == "<c1@customer.test>"
    assert reply.payload["message"]["ccRecipients"][0]["emailAddress"]["address"] == (
        "carol@customer.test"
    )


async def test_tokens_stored_encrypted_in_the_mailbox(
    graph_emulator: GraphEmulator, web: httpx.AsyncClient, tenant: Tenant, app_runtime: Runtime
) -> None:
    user = graph_emulator.add_user("shared@contoso.test")
    issued = graph_emulator.tokens_for(user)
    mailbox = Mailbox(
        id=new_id(), workspace_id=tenant.workspace_id, email=user.mail, display_name="Shared",
        kind="microsoft", settings={"microsoft": {"user_id": user.id}},
    )  # fmt: skip
    seal(
        app_runtime.cipher,
        mailbox,
        "credentials",
        TokenSet(issued["access_token"], issued["refresh_token"], 0).as_dict(),
    )
    async with app_runtime.db.transaction() as session:
        session.add(mailbox)
    store = MailboxTokenStore(app_runtime, workspace_id=tenant.workspace_id, mailbox_id=mailbox.id)
    client = client_for(graph_emulator, web, user, store)
    assert (await client.me())["id"] == user.id
    async with app_runtime.db.session(write=False) as session:
        stored = (
            await session.execute(select(Mailbox).where(Mailbox.id == mailbox.id))
        ).scalar_one()
        saved = credentials(app_runtime, stored)
        rows = []
        for table in Base.metadata.sorted_tables:
            rows.extend(repr(tuple(r)) for r in (await session.execute(select(table))).all())
        dump = "\n".join(rows)
    assert saved["refresh_token"] != issued["refresh_token"] and saved["expires_at"] > time.time()
    for secret in (saved["refresh_token"], saved["access_token"], issued["refresh_token"]):
        assert secret not in dump
