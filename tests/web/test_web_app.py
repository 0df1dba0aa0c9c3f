"""The agent web app in a real browser: sign-in, triage, keyboard, bulk, live updates, admin."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import expect

from tests.support.api import Tenant
from tests.support.server import ServerProcess
from tests.web.conftest import sign_in

pytestmark = pytest.mark.slow


async def new_ticket(tenant: Tenant, subject: str, **extra: Any) -> dict[str, Any]:
    body = {
        "subject": subject,
        "body": f"<p>Hello, about {subject}</p>",
        "customer": {"email": "cust@example.com", "name": "Casey Customer"},
        **extra,
    }
    response = await tenant.post("/v1/tickets", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_app_is_served_beside_the_api(client: httpx.AsyncClient):
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script" in page.text and "<script>" not in page.text  # no inline script
    for path in ("/health", "/v1/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.get("/v1/tickets")).status_code == 401  # not shadowed by the app
    module = await client.get("/assets/js/app.js", headers={"Accept-Encoding": "gzip"})
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    assert module.headers["content-encoding"] == "gzip"
    again = await client.get("/assets/js/app.js", headers={"If-None-Match": module.headers["etag"]})
    assert again.status_code == 304
    for bad in ("/assets/../routes.py", "/assets/%2e%2e/routes.py", "/assets/nope.js", "/assets/"):
        assert (await client.get(bad)).status_code == 404, bad


async def test_sign_in_and_out(page: Any, tenant: Tenant, artifacts: Path):
    await page.goto("/")
    await page.get_by_label("Email").fill(tenant.email)
    await page.get_by_label("Password").fill("wrong password!")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.get_by_role("alert").filter(has_text="wrong").wait_for()
    await page.screenshot(path=artifacts / "sign-in.png")
    await sign_in(page, tenant)
    await page.get_by_role("heading", name="All open").wait_for()
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="Sign in to Enque").wait_for()
    assert await page.evaluate("localStorage.getItem('enque.token')") is None


async def test_triage_end_to_end(page: Any, tenant: Tenant, artifacts: Path):
    ticket = await new_ticket(tenant, "Printer on fire")
    await new_ticket(tenant, "Second ticket in the list")
    await sign_in(page, tenant)
    row = page.locator("#ticket-list li.ticket", has_text="Printer on fire")
    await row.wait_for()
    await page.screenshot(path=artifacts / "inbox.png", full_page=True)
    await row.get_by_role("link").click()
    await page.get_by_role("heading", name="Printer on fire").wait_for()
    await page.locator(".msg.k-customer", has_text="Hello, about Printer on fire").wait_for()

    await page.locator("#editor").click()
    await page.keyboard.type("We are on it.")
    await page.get_by_role("button", name="Send reply").click()
    await page.locator(".msg.k-reply", has_text="We are on it.").wait_for()

    await page.get_by_role("tab", name="Internal note").click()
    await page.locator("#editor").click()
    await page.keyboard.type("Checked the extinguisher.")
    await page.get_by_role("button", name="Add note").click()
    await page.locator(".msg.k-note", has_text="Checked the extinguisher.").wait_for()
    await page.screenshot(path=artifacts / "ticket.png", full_page=True)

    await page.get_by_role("button", name="Close ticket").click()
    await page.get_by_role("button", name="Reopen").wait_for()

    detail = (await tenant.get(f"/v1/tickets/{ticket['id']}")).json()["data"]
    assert detail["status"] == "Closed"
    comments = (await tenant.get(f"/v1/tickets/{ticket['id']}/comments")).json()["data"]
    assert [(c["kind"], c["text"].strip()) for c in comments] == [
        ("reply", "We are on it."),
        ("note", "Checked the extinguisher."),
    ]


async def test_a_slow_send_never_wipes_the_next_message(page: Any, tenant: Tenant):
    """The socket shows a reply before its POST answers; the note typed meanwhile survives."""
    ticket = await new_ticket(tenant, "Slow network")
    await sign_in(page, tenant)
    await page.goto(f"/#/tickets/{ticket['id']}")
    await page.locator("#live-state", has_text="Live").wait_for()

    async def answer_late(route: Any) -> None:
        response = await route.fetch()
        await page.locator(".msg.k-reply", has_text="First answer.").wait_for()
        await page.locator("#editor", has_text="Typed while it was sending.").wait_for()
        await route.fulfill(response=response)

    await page.route("**/v1/tickets/*/reply", answer_late)
    await page.locator("#editor").click()
    await page.keyboard.type("First answer.")
    await page.get_by_role("button", name="Send reply").click()
    await page.locator(".msg.k-reply", has_text="First answer.").wait_for()  # from the socket
    await page.get_by_role("tab", name="Internal note").click()
    await page.locator("#editor").click()
    await page.keyboard.type("Typed while it was sending.")
    await page.get_by_role("button", name="Add note").click()
    await page.locator(".msg.k-note", has_text="Typed while it was sending.").wait_for()
    await expect(page.locator("#thread .msg")).to_have_count(3)

    # A send the server refuses puts the draft back instead of losing it.
    await page.route("**/v1/tickets/*/notes", lambda route: route.abort())
    await page.locator("#editor").click()
    await page.keyboard.type("Not lost.")
    await page.get_by_role("button", name="Add note").click()
    await page.locator("#toasts .toast-error").wait_for()
    await expect(page.locator("#editor")).to_have_text("Not lost.")
    await expect(page.get_by_role("button", name="Add note")).to_be_enabled()
    comments = (await tenant.get(f"/v1/tickets/{ticket['id']}/comments")).json()["data"]
    assert [(c["kind"], c["text"].strip()) for c in comments] == [
        ("reply", "First answer."),
        ("note", "Typed while it was sending."),
    ]


async def test_closing_right_after_a_note_is_not_a_conflict(page: Any, tenant: Tenant):
    """The note changes the ticket's version; Close, clicked at once, waits for it (no 409)."""
    ticket = await new_ticket(tenant, "Close at once")
    held = ("ticket.updated", "comment.created")

    def proxy(ws: Any) -> None:  # the socket is slow: the ticket's own events never arrive
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(lambda m: None if json.loads(m).get("type") in held else ws.send(m))

    await page.route_web_socket(re.compile(r".*/v1/realtime$"), proxy)
    await sign_in(page, tenant)
    await page.goto(f"/#/tickets/{ticket['id']}")
    await page.locator("#live-state", has_text="Live").wait_for()

    async def late(route: Any) -> None:
        await asyncio.sleep(1)
        await route.continue_()

    await page.route(f"**/v1/tickets/{ticket['id']}", late)
    await page.get_by_role("tab", name="Internal note").click()
    await page.locator("#editor").click()
    await page.keyboard.type("Closing now.")
    await page.get_by_role("button", name="Add note").click()
    await page.locator(".msg.k-note", has_text="Closing now.").wait_for()
    await page.get_by_role("button", name="Close ticket").click()
    await page.get_by_role("button", name="Reopen").wait_for()
    assert await page.locator("#toasts .toast-error").count() == 0
    detail = (await tenant.get(f"/v1/tickets/{ticket['id']}")).json()["data"]
    assert detail["status"] == "Closed"


async def test_side_panel_changes_priority_and_tags(page: Any, tenant: Tenant):
    ticket = await new_ticket(tenant, "Side panel ticket")
    await sign_in(page, tenant)
    await page.goto(f"/#/tickets/{ticket['id']}")
    await page.get_by_label("Priority").select_option("High")
    await page.get_by_text("Saved").first.wait_for()
    await page.get_by_label("Tags").fill("vip, billing")
    await page.get_by_label("Tags").press("Tab")
    await page.locator("#toasts .toast", has_text="Saved").nth(1).wait_for()
    detail = (await tenant.get(f"/v1/tickets/{ticket['id']}")).json()["data"]
    assert detail["priority"] == "High"
    assert sorted(detail["tags"]) == ["billing", "vip"]

    # Panels for routes this server lacks stay hidden; those it has are shown.
    paths = (await tenant.get("/v1/openapi.json")).json()["paths"]
    for selector, route in (
        ("#canned", "/v1/canned-replies"),
        ("#attach", "/v1/attachments"),
        ("#schedule", "/v1/tickets/{ticket_id}/scheduled-replies"),
    ):
        assert await page.locator(selector).is_visible() == (route in paths), selector


async def test_note_mentions_an_agent_picked_from_the_list(page: Any, tenant: Tenant):
    ticket = await new_ticket(tenant, "Mention ticket")
    await sign_in(page, tenant)
    await page.goto(f"/#/tickets/{ticket['id']}")
    await page.get_by_role("tab", name="Internal note").click()
    await page.locator("#editor").click()
    await page.keyboard.type("Please look, @adm")
    option = page.get_by_role("listbox", name="Mention an agent").get_by_role("option")
    await expect(option).to_have_text([tenant_display(tenant)])
    await page.keyboard.press("Enter")
    await page.keyboard.type("thanks")
    await expect(page.locator("#editor")).to_contain_text(f"@{tenant_display(tenant)}")
    await page.get_by_role("button", name="Add note").click()
    await page.locator(".msg.k-note", has_text="thanks").wait_for()
    [note] = (await tenant.get(f"/v1/tickets/{ticket['id']}/comments")).json()["data"]
    assert note["mentions"] == [tenant.agent_id]


async def test_served_html_cannot_run_script(page: Any, tenant: Tenant):
    ticket = await new_ticket(
        tenant,
        "Hostile mail",
        body='<p>hi</p><img src="x" onerror="window.pwned=1"><script>window.pwned=2</script>',
    )
    await sign_in(page, tenant)
    await page.goto(f"/#/tickets/{ticket['id']}")
    await page.locator(".msg.k-customer", has_text="hi").wait_for()
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.pwned") is None


async def test_keyboard_assign_and_close(page: Any, tenant: Tenant):
    ticket = await new_ticket(tenant, "Keyboard ticket")
    await sign_in(page, tenant)
    await page.locator("#ticket-list li.ticket", has_text="Keyboard ticket").wait_for()
    await page.locator("body").press("j")
    focused = page.locator("#ticket-list li.ticket.focused")
    assert "Keyboard ticket" in await focused.inner_text()
    await page.keyboard.press("a")
    await focused.locator(".assignee", has_text=tenant_display(tenant)).wait_for()
    await page.keyboard.press("e")
    await focused.locator(".pill", has_text="Closed").wait_for()
    detail = (await tenant.get(f"/v1/tickets/{ticket['id']}")).json()["data"]
    assert detail["status"] == "Closed"
    assert detail["assignee"]["id"] == tenant.agent_id
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "search"


def tenant_display(tenant: Tenant) -> str:
    return f"Admin {tenant.subdomain}"


async def test_search_views_counts_and_bulk_update(page: Any, tenant: Tenant, artifacts: Path):
    ids = [(await new_ticket(tenant, f"Bulk candidate {i}"))["id"] for i in range(3)]
    await new_ticket(tenant, "Unrelated zebra topic")
    await sign_in(page, tenant)
    await page.locator('[data-count="open"]', has_text="4").wait_for()
    await page.get_by_label("Search tickets").fill("zebra")
    await page.get_by_label("Search tickets").press("Enter")
    await expect(page.locator("#ticket-list li.ticket")).to_have_count(1)
    await expect(page.locator("#ticket-list li.ticket")).to_contain_text("zebra")
    assert "q=zebra" in page.url  # the search is in the address: reload and back keep it
    await page.get_by_label("Search tickets").fill("")
    await page.get_by_label("Search tickets").press("Enter")
    await expect(page.locator("#ticket-list li.ticket")).to_have_count(4)

    rows = page.locator("#ticket-list li.ticket", has_text="Bulk candidate")
    for i in range(3):
        await rows.nth(i).locator(".pick").check()
    await page.get_by_label("Set status of selected").select_option("With User")
    await page.screenshot(path=artifacts / "bulk.png")
    await page.get_by_role("button", name="Apply").click()
    await page.get_by_text("3 tickets updated").wait_for()
    await expect(page.locator("#ticket-list li.ticket")).to_have_count(1)
    for ticket_id in ids:
        detail = (await tenant.get(f"/v1/tickets/{ticket_id}")).json()["data"]
        assert detail["status"] == "With User"
    await page.locator('[data-count="withuser"]', has_text="3").wait_for()
    await page.get_by_role("link", name="With user").click()
    await expect(page.locator("#ticket-list li.ticket")).to_have_count(3)


async def test_load_more_pages_with_the_cursor(page: Any, tenant: Tenant):
    await asyncio.gather(*(new_ticket(tenant, f"Paged {i:03d}") for i in range(55)))
    await sign_in(page, tenant)
    assert await page.locator("#ticket-list li.ticket").count() == 50
    await page.get_by_role("button", name="Load more").click()
    await expect(page.locator("#ticket-list li.ticket")).to_have_count(55)
    ids = await page.eval_on_selector_all(
        "#ticket-list li.ticket", "els => els.map(e => e.dataset.id)"
    )
    assert len(set(ids)) == 55
    assert await page.get_by_role("button", name="Load more").is_hidden()


async def second_agent(tenant: Tenant, smtp_server: Any, name: str) -> str:
    """Invites and accepts (as the mail link would) a second agent; returns their email."""
    email = f"{name.lower()}-{tenant.subdomain}@example.com"
    invited = await tenant.post("/v1/agents/invitations", json={"email": email, "role": "agent"})
    assert invited.status_code == 201, invited.text
    [mail] = await smtp_server.wait_for(email)
    token = re.search(r"accept-invitation\?token=([\w.~%-]+)", mail.text())
    assert token, mail.text()
    accepted = await tenant.http.post(
        "/v1/auth/invitations/accept",
        json={"token": token.group(1), "password": tenant.password, "displayName": name},
    )
    assert accepted.status_code == 200, accepted.text
    return email


async def test_live_update_from_a_second_context(
    browser: Any, server: ServerProcess, tenant: Tenant, smtp_server: Any, artifacts: Path
):
    anna = await second_agent(tenant, smtp_server, "Anna")
    first = await browser.new_context(base_url=server.url)
    second = await browser.new_context(base_url=server.url)
    try:
        watcher, actor = await first.new_page(), await second.new_page()
        await sign_in(watcher, tenant)
        await watcher.locator("#live-state", has_text="Live").wait_for()
        await sign_in(actor, tenant, email=anna)
        await actor.locator("#live-state", has_text="Live").wait_for()
        ticket = await new_ticket(tenant, "Arrives live")
        await watcher.locator("#ticket-list li.ticket", has_text="Arrives live").wait_for(
            timeout=10000
        )
        # Both open the ticket: presence shows; a note from one appears at the other.
        await watcher.goto(f"/#/tickets/{ticket['id']}")
        await actor.goto(f"/#/tickets/{ticket['id']}")
        await watcher.locator("#presence", has_text="Anna is viewing").wait_for(timeout=10000)
        await actor.get_by_role("tab", name="Internal note").click()
        await actor.locator("#editor").click()
        await actor.keyboard.type("Seen live")
        await watcher.locator("#presence", has_text="Anna is typing").wait_for(timeout=10000)
        await actor.get_by_role("button", name="Add note").click()
        await watcher.locator(".msg.k-note", has_text="Seen live").wait_for(timeout=10000)
        await watcher.screenshot(path=artifacts / "live.png", full_page=True)
    finally:
        await first.close()
        await second.close()


async def test_notifications_bell_shows_an_assignment(
    browser: Any, server: ServerProcess, tenant: Tenant, smtp_server: Any
):
    bea = await second_agent(tenant, smtp_server, "Bea")
    agents = (await tenant.get("/v1/agents", params={"limit": 50})).json()["data"]
    [bea_id] = [a["id"] for a in agents if a["email"] == bea]
    context = await browser.new_context(base_url=server.url)
    try:
        page = await context.new_page()
        await sign_in(page, tenant, email=bea)
        await page.locator("#live-state", has_text="Live").wait_for()
        ticket = await new_ticket(tenant, "Yours now")
        assigned = await tenant.patch(f"/v1/tickets/{ticket['id']}", json={"assigneeId": bea_id})
        assert assigned.status_code == 200, assigned.text
        bell = page.locator("#bell")
        await expect(bell).to_have_accessible_name("Notifications, 1 unread", timeout=10000)
        await bell.click()
        item = page.locator("#notifications li.unread")
        await expect(item).to_have_text(
            re.compile(rf"assigned you: #{ticket['number']} Yours now"), timeout=10000
        )
        await page.get_by_role("button", name="Mark all read").click()
        await expect(bell).to_have_accessible_name("Notifications")
        await expect(page.locator("#notifications li.unread")).to_have_count(0)
    finally:
        await context.close()


async def test_notification_settings_screen(page: Any, tenant: Tenant, artifacts: Path):
    await sign_in(page, tenant)
    await (
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Settings").click()
    )
    await page.get_by_role("heading", name="Notification settings").wait_for()
    assigned = page.get_by_label("In the app: A ticket is assigned to me")
    assigned_mail = page.get_by_label("By email: A ticket is assigned to me")
    mention_mail = page.get_by_label("By email: Someone mentions me in a note")
    await expect(assigned).to_be_checked()  # the server's defaults
    await expect(mention_mail).not_to_be_checked()
    await assigned.uncheck()
    await expect(assigned).to_be_enabled()
    await mention_mail.check()
    await expect(mention_mail).to_be_enabled()
    await page.screenshot(path=artifacts / "settings-notifications.png")
    saved = {s["event"]: s for s in (await tenant.get("/v1/notifications/settings")).json()["data"]}
    assert saved["ticket.assigned"] == {
        "event": "ticket.assigned",
        "enabled": False,
        "channels": [],
    }
    assert saved["mention"] == {
        "event": "mention",
        "enabled": True,
        "channels": ["in_app", "email"],
    }
    await page.reload()
    await expect(mention_mail).to_be_checked()
    await expect(assigned).not_to_be_checked()
    await assigned_mail.check()  # email only: the event is on again, without the in-app entry
    await expect(assigned_mail).to_be_enabled()
    saved = {s["event"]: s for s in (await tenant.get("/v1/notifications/settings")).json()["data"]}
    assert saved["ticket.assigned"]["enabled"] is True
    assert saved["ticket.assigned"]["channels"] == ["email"]


async def eventually(check: Any, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_socket_client_against_the_protocol(page: Any, tenant: Tenant, artifacts: Path):
    """The app's side of realtime.md, against a socket played by the test (in the browser)."""
    sent: list[dict[str, Any]] = []
    sockets: list[Any] = []

    def accept(ws: Any) -> None:
        sockets.append(ws)

        def received(message: str) -> None:
            sent.append(json.loads(message))
            if sent[-1]["type"] == "auth":  # the app subscribes only once the server is ready
                ready = {"agentId": tenant.agent_id, "workspaceId": tenant.workspace_id}
                ws.send(json.dumps({"type": "ready", "payload": ready, "ts": 0}))

        ws.on_message(received)

    await page.route_web_socket(re.compile(r".*/v1/realtime$"), accept)
    await sign_in(page, tenant)
    await page.locator("#live-state", has_text="Live").wait_for()
    await eventually(lambda: sum(m["type"] == "subscribe" for m in sent) == 2)
    token = await page.evaluate("localStorage.getItem('enque.token')")
    assert sent[0] == {"type": "auth", "token": token}  # first message; never in the URL
    assert {m["channel"] for m in sent[1:]} == {"tickets", "notifications"}

    ticket = await new_ticket(tenant, "Pushed over the socket")
    summary = (await tenant.get("/v1/tickets", params={"limit": 1})).json()["data"][0]
    assert summary["id"] == ticket["id"]
    event = {"type": "ticket.created", "payload": summary, "ts": 1, "id": "evt-1"}
    sockets[0].send(json.dumps(event))
    sockets[0].send(json.dumps(event))  # a duplicate after a reconnect is ignored
    await expect(page.locator("#ticket-list li.ticket", has_text="Pushed over")).to_have_count(1)

    changed = {**summary, "status": "In Progress", "priority": "Critical"}
    sockets[0].send(
        json.dumps(
            {
                "type": "ticket.updated",
                "payload": {"id": summary["id"], "changes": {}, "ticket": changed},
                "ts": 2,
                "id": "evt-2",
            }
        )
    )
    row = page.locator("#ticket-list li.ticket", has_text="Pushed over")
    await expect(row.locator(".prio")).to_have_text("Critical")

    await row.get_by_role("link").click()
    await page.get_by_role("heading", name="Pushed over the socket").wait_for()
    await eventually(lambda: {"type": "subscribe", "channel": f"ticket:{ticket['id']}"} in sent)
    await eventually(
        lambda: {"type": "presence", "ticketId": ticket["id"], "state": "viewing"} in sent
    )
    other = "0190f0f0-0000-7000-8000-000000000001"
    sockets[0].send(
        json.dumps(
            {
                "type": "presence",
                "payload": {"ticketId": ticket["id"], "agentId": other, "state": "typing"},
                "ts": 3,
                "id": "evt-3",
            }
        )
    )
    await page.locator("#presence", has_text="Someone is typing").wait_for()
    note = await tenant.post(f"/v1/tickets/{ticket['id']}/notes", json={"content": "<p>pushed</p>"})
    assert note.status_code == 201, note.text
    sockets[0].send(
        json.dumps(
            {
                "type": "comment.created",
                "payload": {"ticketId": ticket["id"], "comment": note.json()["data"]},
                "ts": 4,
                "id": "evt-4",
            }
        )
    )
    await page.locator(".msg.k-note", has_text="pushed").wait_for()
    await page.screenshot(path=artifacts / "ticket-presence.png", full_page=True)
    await page.get_by_role("link", name="← Inbox").click()
    await eventually(
        lambda: {"type": "presence", "ticketId": ticket["id"], "state": "left"} in sent
    )

    # A dropped socket comes back by itself and subscribes again; a revoked token signs out.
    sent.clear()
    await sockets[0].close(code=1011)
    await page.locator("#live-state", has_text="Offline").wait_for()
    await eventually(lambda: len(sockets) == 2 and len(sent) >= 3, timeout=20)
    assert sent[0] == {"type": "auth", "token": token}
    await page.locator("#live-state", has_text="Live").wait_for()
    await sockets[1].close(code=4401)
    await page.get_by_role("heading", name="Sign in to Enque").wait_for()


async def test_admin_mailbox_screen(page: Any, tenant: Tenant, artifacts: Path):
    from tests.email.servers import imap_mailbox_body

    body = imap_mailbox_body()
    await sign_in(page, tenant)
    await page.get_by_role("link", name="Admin").click()
    await page.get_by_role("link", name="Mailboxes").click()
    await page.get_by_role("heading", name="Connect an IMAP / SMTP mailbox").wait_for()
    await fill_mailbox_form(page, body)
    await page.locator("tr[data-mailbox]", has_text=body["email"]).wait_for(timeout=20000)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=artifacts / "admin-mailboxes.png", full_page=True)
    listed = (await tenant.get("/v1/mailboxes")).json()["data"]
    assert [m["email"] for m in listed] == [body["email"]]

    # A wrong password is refused with the reason shown, and nothing is saved.
    await fill_mailbox_form(
        page,
        {
            **body,
            "email": "other@acme.test",
            "imap": {**body["imap"], "password": "not-the-password"},
        },
    )
    await page.locator("#toasts .toast-error").wait_for(timeout=20000)
    assert len((await tenant.get("/v1/mailboxes")).json()["data"]) == 1


async def test_broken_mailbox_banner_follows_the_status_event(
    page: Any, tenant: Tenant, artifacts: Path
):
    from tests.email.servers import imap_mailbox_body, shared_dovecot

    body = imap_mailbox_body()
    created = await tenant.post("/v1/mailboxes/imap", json=body)
    assert created.status_code == 201, created.text
    mailbox = created.json()["data"]
    user, password = body["imap"]["username"], body["imap"]["password"]
    passwd = shared_dovecot().root / "users" / user

    async def set_password(value: str) -> None:
        await asyncio.to_thread(passwd.write_text, f"{user}:{{PLAIN}}{value}::::::\n")
        await asyncio.sleep(1.1)  # Dovecot re-reads a changed passwd-file at most once a second

    await sign_in(page, tenant)
    await page.locator("#live-state", has_text="Live").wait_for()
    banner = page.locator("#mailbox-banner")
    await expect(banner).to_be_hidden()

    await set_password("changed-elsewhere")
    synced = await tenant.post(f"/v1/mailboxes/{mailbox['id']}/sync")
    assert synced.json()["data"]["state"] == "needs_reconnect", synced.text
    await expect(banner).to_be_visible(timeout=10000)  # from the socket, no reload
    await expect(banner).to_contain_text(f"{body['email']} needs to be reconnected")
    await page.screenshot(path=artifacts / "mailbox-banner.png")
    await assert_accessible(page, "inbox with the mailbox banner")
    await page.reload()  # and from the mailbox list on a fresh load
    await expect(banner).to_contain_text(f"{body['email']} needs to be reconnected")
    await banner.get_by_role("link", name="Open mailbox settings").click()
    await page.locator("tr[data-mailbox]", has_text=body["email"]).wait_for()

    await set_password(password)
    synced = await tenant.post(f"/v1/mailboxes/{mailbox['id']}/sync")
    assert synced.json()["data"]["state"] == "active", synced.text
    await expect(banner).to_be_hidden(timeout=10000)


async def fill_mailbox_form(page: Any, body: dict[str, Any]) -> None:
    form = page.locator("#imap-form")
    await form.get_by_label("Email address").fill(body["email"])
    await form.get_by_label("Display name").fill("Support desk")
    for legend, part in (("Incoming", body["imap"]), ("Outgoing", body["smtp"])):
        box = form.locator("fieldset", has_text=legend)
        await box.get_by_label("Host").fill(part["host"])
        await box.get_by_label("Port").fill(str(part["port"]))
        await box.get_by_label("Security").select_option(part["security"])
        await box.get_by_label("Username").fill(part["username"])
        await box.get_by_label("Password").fill(part["password"])
    await form.get_by_role("button", name="Test and connect").click()


async def test_admin_screens_render(page: Any, tenant: Tenant, artifacts: Path):
    await sign_in(page, tenant)
    await page.goto("/#/admin/teams")
    await page.get_by_label("Team name").fill("Tier 1")
    await page.get_by_role("button", name="Create team").click()
    await page.get_by_role("cell", name="Tier 1").wait_for()
    await page.goto("/#/admin/categories")
    await page.get_by_label("Name").fill("Billing")
    await page.get_by_role("button", name="Add category").click()
    await page.get_by_role("cell", name="Billing").wait_for()
    await page.goto("/#/admin/agents")
    await page.get_by_label("Email", exact=True).fill("new.agent@example.com")
    await page.get_by_role("button", name="Send invitation").click()
    await page.get_by_role("cell", name="new.agent@example.com").wait_for()
    await page.screenshot(path=artifacts / "admin-agents.png", full_page=True)
    ticket = await new_ticket(tenant, "Refund please")
    await page.goto("/#/admin/automations")
    await page.get_by_label("Name").fill("Refunds are urgent")
    await page.get_by_role("button", name="Create automation").click()
    row = page.get_by_role("row", name="Refunds are urgent")
    await row.get_by_role("button", name="Dry run").click()
    await page.get_by_role("dialog").get_by_label("Ticket").fill(f"#{ticket['number']}")
    await page.get_by_role("button", name="Run", exact=True).click()
    await page.locator("#dry-result", has_text="Would run.").wait_for()
    await page.screenshot(path=artifacts / "admin-automation-dry-run.png")
    detail = (await tenant.get(f"/v1/tickets/{ticket['id']}")).json()["data"]
    assert detail["priority"] == "Medium"  # a dry run changes nothing


async def test_canned_reply_signature_and_report_volume(page: Any, tenant: Tenant):
    canned = await tenant.post(
        "/v1/canned-replies",
        json={"name": "Greeting", "shortcut": "hi", "content": "<p>Hi {{customer.name}}!</p>"},
    )
    assert canned.status_code == 201, canned.text
    signed = await tenant.put(
        "/v1/signatures/workspace", json={"content": "<p>The Support Team</p>", "isEnabled": True}
    )
    assert signed.status_code == 200, signed.text
    ticket = await new_ticket(tenant, "Canned please")
    await sign_in(page, tenant)
    await page.goto(f"/#/tickets/{ticket['id']}")
    await expect(page.locator("#signature-preview")).to_contain_text("The Support Team")
    await page.get_by_role("button", name="Canned reply").click()
    await page.get_by_label("Search").fill("hi")
    await page.locator("#canned-results").get_by_role("button", name="Greeting").click()
    await expect(page.locator("#editor")).to_have_text("Hi Casey Customer!")
    used = (await tenant.get(f"/v1/canned-replies/{canned.json()['data']['id']}")).json()["data"]
    assert used["usageCount"] == 1

    await page.goto("/#/admin/reports")
    chart = page.get_by_role("img", name=re.compile(r"^Tickets per day: .+ 1$"))
    await chart.wait_for()


async def download_csv(page: Any, button: str) -> tuple[Any, list[str]]:
    async with page.expect_download() as info:
        await page.get_by_role("button", name=button).click()
    download = await info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    return download, text.splitlines()


async def test_reports_chart_response_times_and_export_csv(
    page: Any, tenant: Tenant, artifacts: Path
):
    ticket = await new_ticket(tenant, "Answered and solved", assigneeId=tenant.agent_id)
    replied = await tenant.post(
        f"/v1/tickets/{ticket['id']}/reply", json={"content": "<p>Done.</p>", "status": "Closed"}
    )
    assert replied.status_code == 201, replied.text
    await sign_in(page, tenant)
    await page.goto("/#/admin/reports")
    times = (await tenant.get("/v1/reports/response-times")).json()["data"]
    first, resolution = times["firstResponse"], times["resolution"]
    assert first["count"] == resolution["count"] == 1
    chart = page.get_by_role("img", name=re.compile(r"^Response times: "))
    await expect(chart).to_have_accessible_name(
        f"Response times: First response, median {first['median']} s, "
        f"First response, 90th percentile {first['p90']} s, "
        f"Resolution, median {resolution['median']} s, "
        f"Resolution, 90th percentile {resolution['p90']} s"
    )
    await expect(chart.locator("rect")).to_have_count(4)
    row = page.get_by_role("table", name="Agents").get_by_role("row").nth(1)
    await expect(row.get_by_role("cell")).to_have_text(
        [tenant_display(tenant), "0", "1", "1", *(f"{first[k]} s" for k in ("median", "p90"))]
        + [f"{resolution[k]} s" for k in ("median", "p90")]
    )
    # Beside it, the tickets-per-day chart; each report downloads as CSV with the token.
    await expect(page.get_by_role("img", name=re.compile(r"^Tickets per day: "))).to_be_visible()
    download, lines = await download_csv(page, "Export CSV of response times")
    assert lines[0] == (
        "scope,id,firstResponseCount,firstResponseMedian,firstResponseP90,"
        "resolutionCount,resolutionMedian,resolutionP90"
    )
    assert lines[1].startswith("all,,1,")
    assert download.suggested_filename.startswith("response-times-")
    await page.screenshot(path=artifacts / "reports.png", full_page=True)
    _, volume = await download_csv(page, "Export CSV of tickets per day")
    assert volume[0] == "bucket,count" and volume[1].endswith(",1")


async def assert_accessible(page: Any, screen: str) -> None:
    """axe-core (bundled by axe-playwright-python) finds nothing on the page as it is now."""
    results = await Axe().run(page)
    assert results.violations_count == 0, f"{screen}: {results.generate_report()}"
    checked = {rule["id"] for rule in results.response["passes"]}
    assert {"color-contrast", "button-name"} <= checked, screen  # the rules did run


async def test_axe_finds_no_violation_on_the_screens(page: Any, tenant: Tenant):
    """Contrast, names and labels, table headers… on the sign-in page, the inbox, a ticket
    (its thread, both composer modes, the merge dialog), the admin screens and the settings."""
    ticket = await new_ticket(tenant, "Accessible ticket", priority="Critical")
    await new_ticket(tenant, "Another one", priority="High")
    for path, text in (("notes", "An internal note"), ("reply", "A reply")):
        posted = await tenant.post(
            f"/v1/tickets/{ticket['id']}/{path}", json={"content": f"<p>{text}</p>"}
        )
        assert posted.status_code == 201, posted.text
    await page.goto("/")
    await page.get_by_label("Email").wait_for()
    await assert_accessible(page, "sign-in")
    await sign_in(page, tenant)
    await page.locator("#ticket-list li.ticket").nth(1).wait_for()
    await assert_accessible(page, "inbox")
    await page.keyboard.press("?")
    await assert_accessible(page, "shortcuts dialog")
    await page.keyboard.press("Escape")

    await page.goto(f"/#/tickets/{ticket['id']}")
    await page.locator(".msg.k-note").wait_for()
    await page.locator(".msg.k-reply").wait_for()
    await assert_accessible(page, "ticket")
    await page.get_by_role("tab", name="Internal note").click()
    await assert_accessible(page, "ticket, note mode")
    await page.get_by_role("button", name="Merge…").click()
    await page.get_by_role("dialog").wait_for()
    await assert_accessible(page, "merge dialog")
    await page.keyboard.press("Escape")

    for section in (
        "agents",
        "teams",
        "mailboxes",
        "categories",
        "automations",
        "canned",
        "signatures",
        "reports",
    ):
        await page.goto(f"/#/admin/{section}")
        await page.locator(".admin-body h1").wait_for()
        await page.locator(".admin-body form, .admin-body .report").first.wait_for()
        await assert_accessible(page, f"admin {section}")
    await page.goto("/#/settings/notifications")
    await page.locator("main tbody tr").first.wait_for()
    await assert_accessible(page, "notification settings")


OVERFLOW = "document.scrollingElement.scrollWidth - window.innerWidth"


async def test_a_laptop_screen_fits(
    browser: Any, server: ServerProcess, tenant: Tenant, artifacts: Path
):
    ticket = await new_ticket(tenant, "A subject long enough to need truncation " * 3)
    laptop = {"width": 1024, "height": 640}
    context = await browser.new_context(base_url=server.url, viewport=laptop)
    page = await context.new_page()
    try:
        await sign_in(page, tenant)
        screens = [
            ("inbox", "/#/inbox/open", "#ticket-list li.ticket"),
            ("ticket", f"/#/tickets/{ticket['id']}", "#editor"),
            ("mailboxes", "/#/admin/mailboxes", "#imap-form"),
            ("agents", "/#/admin/agents", "#invite-email"),
            ("automations", "/#/admin/automations", "#auto-name"),
        ]
        for name, url, ready in screens:
            await page.goto(url)
            await page.locator(ready).first.wait_for()
            assert await page.evaluate(OVERFLOW) <= 0, f"{name} scrolls sideways at 1024 px"
            await page.screenshot(path=artifacts / f"laptop-{name}.png")
        # Keyboard users reach the content first: the skip link leads to <main>.
        await page.goto("/#/inbox/open")
        await page.reload()
        await page.locator("#ticket-list li.ticket").first.wait_for()
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    finally:
        await context.close()


def test_ci_runs_the_browser_tests():
    """CI installs Chromium (scripts/install-test-services.sh): a skip there would hide a gap."""
    if os.environ.get("CI") == "true":
        from tests.web.conftest import chromium_path

        assert chromium_path() is not None


async def test_invitation_link_from_the_mail_signs_the_agent_in(
    page: Any, tenant: Tenant, smtp_server: Any, artifacts: Path
):
    email = f"invitee-{tenant.subdomain}@example.com"
    invited = await tenant.post("/v1/agents/invitations", json={"email": email, "role": "agent"})
    assert invited.status_code == 201, invited.text
    [mail] = await smtp_server.wait_for(email)
    match = re.search(r"http://enque\.test(/accept-invitation\?token=[\w.~%-]+)", mail.text())
    assert match, mail.text()
    await page.goto(match.group(1))
    await page.get_by_label("Your name").fill("Ivy Invitee")
    await page.get_by_label("New password").fill("a long enough password")
    await page.screenshot(path=artifacts / "accept-invitation.png")
    await page.get_by_role("button", name="Accept invitation").click()
    await page.get_by_role("heading", name="All open").wait_for()
    assert "token" not in page.url
    await expect(page.locator(".topbar .who")).to_have_text("Ivy Invitee")
