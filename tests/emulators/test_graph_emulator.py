"""The emulator itself against Microsoft's documented behaviour, over plain HTTP."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import jwt
import pytest

from tests.email.corpus import PNG, base_headers, inline_image, message
from tests.emulators.graph import GraphEmulator, query_of

REDIRECT = "http://enque.test/v1/mailboxes/microsoft/callback"


def mail(n: int) -> bytes:
    return message(base_headers(Message_ID=f"<g{n}@customer.test>", Subject=f"m{n}"), f"body {n}")


async def consent(
    http: httpx.AsyncClient, emulator: GraphEmulator, **params: str
) -> httpx.Response:
    query = {
        "client_id": emulator.client_id, "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "offline_access openid Mail.ReadWrite", "state": "s-123", **params,
    }  # fmt: skip
    return await http.get(f"{emulator.base_url}/common/oauth2/v2.0/authorize", params=query)


async def token(http: httpx.AsyncClient, emulator: GraphEmulator, **form: str) -> httpx.Response:
    data = {"client_id": emulator.client_id, "client_secret": emulator.client_secret, **form}
    return await http.post(f"{emulator.base_url}/common/oauth2/v2.0/token", data=data)


async def test_authorization_code_flow(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test", "Support")
    async with httpx.AsyncClient() as http:
        answer = await consent(http, graph_emulator, login_hint=user.mail)
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith(REDIRECT)
        q = query_of(location)
        assert q["state"] == ["s-123"] and q["code"]
        code = q["code"][0]
        issued = await token(
            http, graph_emulator, grant_type="authorization_code", code=code, redirect_uri=REDIRECT
        )
        body = issued.json()
        assert issued.status_code == 200 and body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600 and body["access_token"] and body["refresh_token"]
        keys = (await http.get(f"{graph_emulator.base_url}/common/discovery/v2.0/keys")).json()
        key = jwt.PyJWK(keys["keys"][0])
        claims = jwt.decode(
            body["id_token"], key.key, algorithms=["RS256"], audience=graph_emulator.client_id
        )
        assert claims["oid"] == user.id and claims["preferred_username"] == user.mail
        again = await token(
            http, graph_emulator, grant_type="authorization_code", code=code, redirect_uri=REDIRECT
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        assert "AADSTS54005" in again.json()["error_description"]


async def test_authorize_errors(graph_emulator: GraphEmulator) -> None:
    graph_emulator.add_user("support@contoso.test")
    async with httpx.AsyncClient() as http:
        bad_redirect = await consent(http, graph_emulator, redirect_uri="https://evil.test/cb")
        assert bad_redirect.status_code == 400 and "AADSTS50011" in bad_redirect.text
        graph_emulator.consent = False
        denied = await consent(http, graph_emulator)
        q = query_of(denied.headers["location"])
        assert q["error"] == ["access_denied"] and q["state"] == ["s-123"]
        wrong_secret = await http.post(
            f"{graph_emulator.base_url}/common/oauth2/v2.0/token",
            data={
                "client_id": graph_emulator.client_id,
                "client_secret": "nope",
                "grant_type": "refresh_token",
                "refresh_token": "x",
            },
        )
        assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


async def test_refresh_tokens_rotate_and_can_be_revoked(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    first = graph_emulator.tokens_for(user)
    async with httpx.AsyncClient() as http:
        second = (
            await token(
                http,
                graph_emulator,
                grant_type="refresh_token",
                refresh_token=first["refresh_token"],
            )
        ).json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        graph_emulator.revoke(user)
        revoked = await token(
            http, graph_emulator, grant_type="refresh_token", refresh_token=second["refresh_token"]
        )
        assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"
        third = graph_emulator.tokens_for(user)
        graph_emulator.advance(91 * 24 * 3600)
        stale = await token(
            http, graph_emulator, grant_type="refresh_token", refresh_token=third["refresh_token"]
        )
        assert stale.status_code == 400 and "AADSTS700082" in stale.json()["error_description"]


async def test_access_tokens_expire(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test", "Support")
    tokens = graph_emulator.tokens_for(user)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with httpx.AsyncClient(base_url=graph_emulator.base_url + "/v1.0") as http:
        me = await http.get("/me", headers=headers)
        assert me.status_code == 200 and me.json()["mail"] == user.mail
        by_upn = await http.get(f"/users/{user.mail}", headers=headers)
        assert by_upn.json()["id"] == user.id
        assert (await http.get("/me")).status_code == 401
        graph_emulator.advance(3601)
        expired = await http.get("/me", headers=headers)
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "InvalidAuthenticationToken"
        other = graph_emulator.add_user("ceo@contoso.test")
        fresh = graph_emulator.tokens_for(user)["access_token"]
        denied = await http.get(f"/users/{other.id}", headers={"Authorization": f"Bearer {fresh}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"


async def _get(http: httpx.AsyncClient, url: str, token_: str, **headers: str) -> httpx.Response:
    return await http.get(url, headers={"Authorization": f"Bearer {token_}", **headers})


async def collect(http: httpx.AsyncClient, url: str, access: str) -> tuple[list[Any], str]:
    """Every value of a delta round, following nextLinks; and the round's deltaLink."""
    values: list[Any] = []
    while True:
        page = (await _get(http, url, access)).json()
        values.extend(page["value"])
        if "@odata.nextLink" not in page:
            return values, page["@odata.deltaLink"]
        url = page["@odata.nextLink"]


async def test_delta_paging_delta_links_and_moves(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    access = graph_emulator.tokens_for(user)["access_token"]
    for n in range(5):
        graph_emulator.deliver(user, mail(n))
    graph_emulator.deliver(user, mail(99), folder="archive")
    base = f"{graph_emulator.base_url}/v1.0/users/{user.id}/mailFolders/inbox/messages/delta"
    async with httpx.AsyncClient() as http:
        answer = await _get(http, base + "?$select=subject,internetMessageId&$top=2", access)
        pages = [answer.json()]
        while "@odata.nextLink" in pages[-1]:
            pages.append((await _get(http, pages[-1]["@odata.nextLink"], access)).json())
        assert [len(p["value"]) for p in pages] == [2, 2, 1]
        first = pages[0]["value"][0]
        assert set(first) == {"@odata.type", "@odata.etag", "id", "subject", "internetMessageId"}
        assert [v["subject"] for p in pages for v in p["value"]] == [f"m{n}" for n in range(5)]
        delta_link = pages[-1]["@odata.deltaLink"]
        assert "$deltatoken=" in delta_link

        nothing = (await _get(http, delta_link, access)).json()
        assert nothing["value"] == [] and "@odata.deltaLink" in nothing

        graph_emulator.deliver(user, mail(5))
        moved_out = pages[0]["value"][1]["id"]
        archived_id = next(iter(user.folder("archive").messages))  # type: ignore[union-attr]
        moved_in = graph_emulator.move(user, archived_id, "inbox")
        assert moved_in.id != archived_id
        graph_emulator.move(user, moved_out, "archive")
        changes, _ = await collect(http, nothing["@odata.deltaLink"], access)
        assert [v.get("subject") for v in changes if "@removed" not in v] == ["m5", "m99"]
        assert [v["id"] for v in changes if "@removed" in v] == [moved_out]
        assert next(v for v in changes if v.get("subject") == "m99")["id"] == moved_in.id

        graph_emulator.sync_generation += 1
        gone = await _get(http, nothing["@odata.deltaLink"], access)
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
        bad = await _get(http, base + "?$select=nope", access)
        assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]


async def test_body_preference_and_page_size_header(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    access = graph_emulator.tokens_for(user)["access_token"]
    for n in range(3):
        graph_emulator.deliver(user, mail(n))
    url = (
        f"{graph_emulator.base_url}/v1.0/me/mailFolders('Inbox')/messages/delta"
        "?$select=body,internetMessageHeaders"
    )
    async with httpx.AsyncClient() as http:
        html = await _get(
            http, url, access, Prefer='outlook.body-content-type="html", odata.maxpagesize=2'
        )
        assert html.headers["preference-applied"] == 'outlook.body-content-type="html"'
        assert len(html.json()["value"]) == 2
        body = html.json()["value"][0]["body"]
        assert body["contentType"] == "html" and "<div>body 0</div>" in body["content"]
        headers = html.json()["value"][0]["internetMessageHeaders"]
        assert {"name": "Message-ID", "value": "<g0@customer.test>"} in headers
        text = await _get(http, url, access, Prefer='outlook.body-content-type="text"')
        assert text.json()["value"][0]["body"] == {"contentType": "text", "content": "body 0"}


async def test_attachments_small_inline_large_by_value(graph_emulator: GraphEmulator) -> None:
    graph_emulator.inline_attachment_limit = 50
    user = graph_emulator.add_user("support@contoso.test")
    access = graph_emulator.tokens_for(user)["access_token"]
    msg = graph_emulator.deliver(user, inline_image())
    base = f"{graph_emulator.base_url}/v1.0/me/messages/{msg.id}/attachments"
    async with httpx.AsyncClient() as http:
        listed = (await _get(http, base, access)).json()["value"]
        by_name = {a["name"]: a for a in listed}
        small = by_name["data.csv"]
        assert base64.b64decode(small["contentBytes"]) == b"a,b\r\n1,2"
        logo = next(a for a in listed if a["contentId"] == "logo@x")
        assert logo["isInline"] is True and logo["size"] == len(PNG)
        assert "contentBytes" not in logo
        value = await _get(http, f"{base}/{logo['id']}/$value", access)
        assert value.content == PNG and value.headers["content-type"] == "image/png"


async def test_send_mail_json_and_mime_and_reply(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    access = graph_emulator.tokens_for(user)["access_token"]
    incoming = graph_emulator.deliver(user, mail(1))
    root = f"{graph_emulator.base_url}/v1.0/users/{user.mail}"
    auth = {"Authorization": f"Bearer {access}"}
    async with httpx.AsyncClient() as http:
        sent = await http.post(f"{root}/sendMail", headers=auth, json={
            "message": {"subject": "Hi", "body": {"contentType": "HTML", "content": "<p>x</p>"},
                        "toRecipients": [{"emailAddress": {"address": "a@customer.test"}}]},
        })  # fmt: skip
        assert sent.status_code == 202
        raw = message(
            base_headers(From=user.mail, To="a@customer.test", Message_ID="<ours@contoso.test>"),
            "mime body",
        )
        mime = await http.post(
            f"{root}/sendMail",
            content=base64.b64encode(raw),
            headers={**auth, "Content-Type": "text/plain"},
        )
        assert mime.status_code == 202
        broken = await http.post(
            f"{root}/sendMail", content=b"%%%", headers={**auth, "Content-Type": "text/plain"}
        )
        assert broken.status_code == 400
        reply = await http.post(
            f"{root}/messages/{incoming.id}/reply", headers=auth, json={"comment": "<p>Thanks</p>"}
        )
        assert reply.status_code == 202
    assert [s.kind for s in graph_emulator.sent] == ["json", "mime", "reply"]
    assert graph_emulator.sent[2].in_reply_to == "<g1@customer.test>"
    sent_items = user.folder("sentitems").messages.values()  # type: ignore[union-attr]
    assert "<ours@contoso.test>" in {m.internet_message_id for m in sent_items}


async def test_throttling_bursts_and_mailbox_concurrency(graph_emulator: GraphEmulator) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    access = graph_emulator.tokens_for(user)["access_token"]
    url = f"{graph_emulator.base_url}/v1.0/me"
    async with httpx.AsyncClient() as http:
        graph_emulator.throttle(2, retry_after=7)
        first = await _get(http, url, access)
        assert first.status_code == 429 and first.headers["retry-after"] == "7"
        assert first.json()["error"]["code"] == "TooManyRequests"
        assert (await _get(http, url, access)).status_code == 429
        assert (await _get(http, url, access)).status_code == 200
        graph_emulator.burst_503(1)
        assert (await _get(http, url, access)).status_code == 503

        graph_emulator.latency = 0.2
        answers = await asyncio.gather(*(_get(http, url, access) for _ in range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 200, 200, 429, 429]
    limited = next(a for a in answers if a.status_code == 429)
    assert "MailboxConcurrency" in limited.json()["error"]["message"]
    assert graph_emulator.max_in_flight[user.id] == 4
    assert graph_emulator.calls["get_user"] == 10
    assert graph_emulator.calls["throttled:MailboxConcurrency"] == 2


@pytest.mark.parametrize("path", ["/me/messages/AAMknope", "/me/messages/AAMknope/attachments"])
async def test_unknown_messages_are_404(graph_emulator: GraphEmulator, path: str) -> None:
    user = graph_emulator.add_user("support@contoso.test")
    access = graph_emulator.tokens_for(user)["access_token"]
    async with httpx.AsyncClient() as http:
        answer: Any = await _get(http, graph_emulator.base_url + "/v1.0" + path, access)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "ErrorItemNotFound"
