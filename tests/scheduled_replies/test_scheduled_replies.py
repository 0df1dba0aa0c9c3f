"""Scheduled replies: create, list, cancel; sent at `sendAt` through the reply path, exactly
once across concurrent senders, failures retried with backoff and then marked failed.

`send_due_replies` handles every workspace's due replies, so tests look at their own rows
only (other tests' replies may be due at the same `now`).
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select, update

from enque.comments.models import Comment
from enque.core.errors import validation_error
from enque.core.runtime import Runtime
from enque.scheduled_replies import hooks
from enque.scheduled_replies.models import ScheduledReply
from enque.scheduled_replies.service import (
    BACKOFF,
    CLAIM_LEASE,
    MAX_ATTEMPTS,
    LostClaim,
    _claim,
    _due_ids,
    _send,
    _take,
    send_due_replies,
)
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import add_agent, new_ticket

KEYS = {
    "id",
    "ticketId",
    "agentId",
    "content",
    "to",
    "cc",
    "bcc",
    "attachmentIds",
    "ticketStatus",
    "sendAt",
    "status",
    "attempts",
    "lastError",
    "nextAttemptAt",
    "sentCommentId",
    "sentAt",
    "cancelledAt",
    "createdAt",
    "updatedAt",
}


def soon(seconds: int = 120) -> int:
    return int(time.time()) + seconds


async def schedule(
    tenant: Tenant, ticket_id: str, send_at: int, token: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"content": "<p>Later</p>", "sendAt": send_at, **fields}
    response = await tenant.post(
        f"/v1/tickets/{ticket_id}/scheduled-replies", json=body, token=token
    )
    return data(response, 201)  # type: ignore[no-any-return]


async def row(runtime: Runtime, row_id: str) -> ScheduledReply:
    async with runtime.db.session(write=False) as session:
        return (
            await session.execute(select(ScheduledReply).where(ScheduledReply.id == row_id))
        ).scalar_one()


async def replies_on(runtime: Runtime, ticket_id: str) -> list[Comment]:
    async with runtime.db.session(write=False) as session:
        rows = await session.execute(
            select(Comment)
            .where(Comment.ticket_id == ticket_id, Comment.kind == "reply")
            .order_by(Comment.created_at, Comment.id)
        )
        return list(rows.scalars())


async def test_create_list_and_validation(tenant: Tenant, make_tenant):
    ticket = await new_ticket(tenant)
    at = soon(600)
    made = await schedule(
        tenant,
        ticket["id"],
        at,
        content="<p>Hello <script>x()</script>later</p>",
        cc=["boss@example.com"],
        ticketStatus="With User",
    )
    assert set(made) == KEYS
    assert made["status"] == "pending" and made["sendAt"] == at == made["nextAttemptAt"]
    assert made["content"] == "<p>Hello later</p>" and made["agentId"] == tenant.agent_id
    assert made["cc"] == ["boss@example.com"] and made["to"] == [] and made["attempts"] == 0
    assert made["ticketStatus"] == "With User" and made["sentCommentId"] is None

    early = await schedule(tenant, ticket["id"], soon(300))
    path = f"/v1/tickets/{ticket['id']}/scheduled-replies"
    listed = data(await tenant.get(path))
    assert [r["id"] for r in listed] == [early["id"], made["id"]]
    assert [r["id"] for r in data(await tenant.get(path + "?limit=1"))] == [early["id"]]
    assert data(await tenant.get(path + "?status=sent")) == []
    error(await tenant.get(path + "?status=bogus"), 422, "VALIDATION_ERROR")

    cases = [
        ({"content": "<p>x</p>", "sendAt": soon(-3600)}, "sendAt"),
        ({"content": "<p>x</p>", "sendAt": soon(400 * 86400)}, "sendAt"),
        ({"content": "<p> </p>", "sendAt": soon()}, "content"),
        ({"content": "x", "sendAt": soon(), "attachmentIds": ["a"]}, "attachmentIds"),
        ({"content": "x", "sendAt": soon(), "ticketStatus": "Gone"}, "ticketStatus"),
        ({"content": "x"}, "sendAt"),
    ]
    for body, field in cases:
        err = error(await tenant.post(path, json=body), 422, "VALIDATION_ERROR")
        assert err["details"][0]["path"] == field, (body, err)

    elsewhere = await make_tenant()
    foreign = await new_ticket(elsewhere)
    foreign_path = f"/v1/tickets/{foreign['id']}/scheduled-replies"
    error(
        await tenant.post(foreign_path, json={"content": "x", "sendAt": soon()}), 404, "NOT_FOUND"
    )
    error(await tenant.get(foreign_path), 404, "NOT_FOUND")
    assert data(await elsewhere.get(foreign_path)) == []

    await tenant.delete(f"/v1/tickets/{ticket['id']}")
    error(await tenant.post(path, json={"content": "x", "sendAt": soon()}), 409, "CONFLICT")


async def test_sent_at_send_at_through_the_reply_path_once(
    tenant: Tenant, app_runtime: Runtime, events
):
    await tenant.put("/v1/signatures/workspace", json={"content": "<p>Acme</p>"})
    ticket = await new_ticket(tenant, customer={"email": "sam@customer.test", "name": "Sam"})
    at = soon()
    made = await schedule(
        tenant,
        ticket["id"],
        at,
        content="<p>As promised</p>",
        to=["extra@customer.test"],
        bcc=["audit@example.com"],
        ticketStatus="With User",
    )
    await send_due_replies(app_runtime, now=at - 1)
    assert (await row(app_runtime, made["id"])).status == "pending"
    assert await replies_on(app_runtime, ticket["id"]) == []

    assert await send_due_replies(app_runtime, now=at) >= 1
    sent = await row(app_runtime, made["id"])
    assert sent.status == "sent" and sent.attempts == 1 and sent.last_error is None
    [comment] = await replies_on(app_runtime, ticket["id"])
    assert sent.sent_comment_id == comment.id and sent.claim_token is None
    assert comment.author_type == "agent" and comment.author_id == tenant.agent_id
    assert comment.content == "<p>As promised</p><div><p>Acme</p></div>"
    assert comment.to == ["sam@customer.test", "extra@customer.test"]
    assert comment.bcc == ["audit@example.com"] and comment.delivery == "pending"
    after = data(await tenant.get(f"/v1/tickets/{ticket['id']}"))
    assert after["status"] == "With User" and after["lastAgentReplyAt"] == comment.created_at

    # later runs never send it again
    await send_due_replies(app_runtime, now=at + 10 * CLAIM_LEASE)
    assert len(await replies_on(app_runtime, ticket["id"])) == 1

    listed = data(await tenant.get(f"/v1/tickets/{ticket['id']}/scheduled-replies"))
    assert listed[0]["status"] == "sent" and listed[0]["sentCommentId"] == comment.id
    assert listed[0]["nextAttemptAt"] is None and listed[0]["sentAt"] >= listed[0]["createdAt"]
    mine = [e for e in events if e.workspace_id == tenant.workspace_id]
    kinds = [e.type for e in mine]
    assert "scheduled_reply.created" in kinds and "scheduled_reply.sent" in kinds
    assert kinds.index("comment.created") < kinds.index("scheduled_reply.sent")
    created = next(e for e in mine if e.type == "comment.created")
    assert created.payload["comment"]["id"] == comment.id
    assert created.channels == ["tickets", f"ticket:{ticket['id']}"]


async def test_cancel_until_sent_and_who_may(tenant: Tenant, app_runtime: Runtime):
    author = await add_agent(app_runtime, tenant, "agent")
    other = await add_agent(app_runtime, tenant, "agent")
    manager = await add_agent(app_runtime, tenant, "manager")
    ticket = await new_ticket(tenant)
    at = soon()
    first = await schedule(tenant, ticket["id"], at, token=author.token)
    second = await schedule(tenant, ticket["id"], at, token=author.token)
    third = await schedule(tenant, ticket["id"], at, token=author.token)

    error(
        await tenant.delete(f"/v1/scheduled-replies/{first['id']}", token=other.token),
        403,
        "FORBIDDEN",
    )
    assert (
        await tenant.delete(f"/v1/scheduled-replies/{first['id']}", token=author.token)
    ).status_code == 204
    assert (
        await tenant.delete(f"/v1/scheduled-replies/{second['id']}", token=manager.token)
    ).status_code == 204
    err = error(
        await tenant.delete(f"/v1/scheduled-replies/{first['id']}", token=author.token),
        409,
        "CONFLICT",
    )
    assert err["details"] == {"status": "cancelled"}
    cancelled = await row(app_runtime, first["id"])
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None

    await send_due_replies(app_runtime, now=at)
    replies = await replies_on(app_runtime, ticket["id"])
    assert [r.author_id for r in replies] == [author.agent_id]
    assert (await row(app_runtime, third["id"])).sent_comment_id == replies[0].id
    assert (await row(app_runtime, first["id"])).status == "cancelled"
    err = error(
        await tenant.delete(f"/v1/scheduled-replies/{third['id']}", token=author.token),
        409,
        "CONFLICT",
    )
    assert err["details"] == {"status": "sent"}
    error(await tenant.delete("/v1/scheduled-replies/no-such-id"), 404, "NOT_FOUND")


async def test_failures_retry_with_backoff_then_fail_with_the_reason(
    tenant: Tenant, app_runtime: Runtime
):
    ticket = await new_ticket(tenant)
    at = soon()
    made = await schedule(tenant, ticket["id"], at)
    await tenant.delete(f"/v1/tickets/{ticket['id']}")  # replies to it are refused (409)

    moment = at
    for attempt in range(1, MAX_ATTEMPTS):
        await send_due_replies(app_runtime, now=moment)
        state = await row(app_runtime, made["id"])
        assert state.status == "pending" and state.attempts == attempt
        assert state.last_error == "The ticket is deleted; restore it first"
        assert state.next_attempt_at == moment + BACKOFF[attempt - 1]
        await send_due_replies(app_runtime, now=state.next_attempt_at - 1)  # not yet
        assert (await row(app_runtime, made["id"])).attempts == attempt
        moment = state.next_attempt_at

    await send_due_replies(app_runtime, now=moment)
    failed = await row(app_runtime, made["id"])
    assert failed.status == "failed" and failed.attempts == MAX_ATTEMPTS
    assert failed.last_error == "The ticket is deleted; restore it first"
    await send_due_replies(app_runtime, now=moment + 10 * 86400)
    assert (await row(app_runtime, made["id"])).attempts == MAX_ATTEMPTS
    assert await replies_on(app_runtime, ticket["id"]) == []
    listed = data(await tenant.get(f"/v1/tickets/{ticket['id']}/scheduled-replies"))
    assert listed[0]["status"] == "failed" and listed[0]["lastError"] == failed.last_error
    error(await tenant.delete(f"/v1/scheduled-replies/{made['id']}"), 409, "CONFLICT")


async def test_a_retry_that_succeeds(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant)
    at = soon()
    made = await schedule(tenant, ticket["id"], at)
    await tenant.delete(f"/v1/tickets/{ticket['id']}")
    await send_due_replies(app_runtime, now=at)
    assert (await row(app_runtime, made["id"])).attempts == 1
    data(await tenant.post(f"/v1/tickets/{ticket['id']}/restore"))
    await send_due_replies(app_runtime, now=at + BACKOFF[0])
    done = await row(app_runtime, made["id"])
    assert done.status == "sent" and done.attempts == 2 and done.last_error is None
    assert len(await replies_on(app_runtime, ticket["id"])) == 1


class Files:
    """An attachments seam that accepts any upload when a reply is scheduled and whose
    `link` (at sending time) fails the way it is told."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def check(self, session: Any, **kw: Any) -> list[Any]:
        return []

    async def link(self, session: Any, **kw: Any) -> None:
        raise self.exc

    async def for_comments(self, session: Any, **kw: Any) -> dict[str, list[Any]]:
        return {}

    async def for_bodies(self, session: Any, **kw: Any) -> dict[str, list[Any]]:
        return {}

    async def move(self, session: Any, **kw: Any) -> None:
        return None


async def test_permanent_errors_fail_at_once_others_are_retried(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    ticket = await new_ticket(tenant)
    at = soon()
    refused = Files(validation_error("attachmentIds", "no such file"))
    monkeypatch.setitem(app_runtime.services, "attachments", refused)
    permanent = await schedule(tenant, ticket["id"], at, attachmentIds=["f1"])
    await send_due_replies(app_runtime, now=at)
    state = await row(app_runtime, permanent["id"])
    assert state.status == "failed" and state.attempts == 1
    assert state.last_error == "Validation failed (attachmentIds: no such file)"

    monkeypatch.setitem(app_runtime.services, "attachments", Files(RuntimeError("disk: secret")))
    transient = await schedule(tenant, ticket["id"], at, attachmentIds=["f2"])
    await send_due_replies(app_runtime, now=at)
    state = await row(app_runtime, transient["id"])
    assert state.status == "pending" and state.next_attempt_at == at + BACKOFF[0]
    assert state.last_error == "internal error (RuntimeError)"  # no details leak
    assert await replies_on(app_runtime, ticket["id"]) == []  # nothing half-written


async def test_concurrent_senders_send_each_reply_once(
    tenant: Tenant, app_runtime: Runtime, settings
):
    tickets = [await new_ticket(tenant) for _ in range(4)]
    at = soon()
    made = [await schedule(tenant, t["id"], at) for t in tickets for _ in range(10)]
    senders = [Runtime.build(settings) for _ in range(3)]
    try:
        counts = await asyncio.gather(
            *(send_due_replies(r, now=at) for r in senders),
            send_due_replies(app_runtime, now=at),
        )
    finally:
        for runtime in senders:
            await runtime.close()
    assert sum(counts) >= len(made)
    for ticket in tickets:
        assert len(await replies_on(app_runtime, ticket["id"])) == 10
    states = [await row(app_runtime, m["id"]) for m in made]
    assert {s.status for s in states} == {"sent"} and {s.attempts for s in states} == {1}
    comment_ids = {s.sent_comment_id for s in states}
    assert len(comment_ids) == len(made)


async def test_a_crashed_claim_is_taken_over_after_its_lease(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant)
    at = soon()
    made = await schedule(tenant, ticket["id"], at)
    token, ids = await _claim(app_runtime, at, 1000)  # claimed, then the sender "crashes"
    assert made["id"] in ids
    assert (await row(app_runtime, made["id"])).status == "sending"
    await send_due_replies(app_runtime, now=at + CLAIM_LEASE - 1)  # still held
    assert await replies_on(app_runtime, ticket["id"]) == []
    error(await tenant.delete(f"/v1/scheduled-replies/{made['id']}"), 409, "CONFLICT")

    await send_due_replies(app_runtime, now=at + CLAIM_LEASE)
    state = await row(app_runtime, made["id"])
    assert state.status == "sent" and state.attempts == 2
    # the first sender wakes up: its claim is gone, it sends nothing
    with pytest.raises(LostClaim):
        await _send(app_runtime, made["id"], token)
    assert len(await replies_on(app_runtime, ticket["id"])) == 1


async def test_a_sender_that_lost_its_lease_rolls_its_reply_back(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    """The claim is taken over while the first sender is writing: its reply is undone."""
    ticket = await new_ticket(tenant)
    at = soon()
    made = await schedule(tenant, ticket["id"], at)
    token, ids = await _claim(app_runtime, at, 1000)
    assert made["id"] in ids
    from enque.scheduled_replies import service

    real_add_reply = service.add_reply

    async def slow_add_reply(session: Any, **kw: Any) -> Any:
        comment = await real_add_reply(session, **kw)
        # meanwhile another sender takes the row over (as after the lease ran out)
        await session.execute(
            update(ScheduledReply)
            .where(ScheduledReply.id == made["id"])
            .values(claim_token="someone-else")
        )
        return comment

    monkeypatch.setattr(service, "add_reply", slow_add_reply)
    with pytest.raises(LostClaim):
        await _send(app_runtime, made["id"], token)
    assert await replies_on(app_runtime, ticket["id"]) == []
    async with app_runtime.db.session(write=False) as session:
        count = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.ticket_id == ticket["id"])
        )
    assert count == 0


async def test_scheduled_replies_job_is_registered_with_the_scheduler(app_runtime: Runtime):
    registered: list[tuple[str, int, Any]] = []

    class Scheduler:
        def register(self, name: str, interval: int, job: Any) -> None:
            registered.append((name, interval, job))

    process = SimpleNamespace(services={"scheduler": Scheduler()}, db=app_runtime.db)
    await hooks.on_startup(process)  # type: ignore[arg-type]
    [(name, interval, job)] = registered
    assert name == "replies.scheduled" and 1 <= interval <= 60
    assert isinstance(await job(), int)
    assert callable(app_runtime.services["send_due_replies"])


async def test_a_claim_race_is_won_by_one_sender(tenant: Tenant, app_runtime: Runtime):
    """Two senders read the same due rows; the second one's conditional UPDATE takes none."""
    ticket = await new_ticket(tenant)
    at = soon()
    made = await schedule(tenant, ticket["id"], at)
    async with app_runtime.db.session(write=False) as session:
        seen_by_late_sender = await _due_ids(session, at, 1000)
    assert made["id"] in seen_by_late_sender
    token, first = await _claim(app_runtime, at, 1000)
    assert made["id"] in first
    async with app_runtime.db.transaction() as session:
        late = await _take(session, seen_by_late_sender, at, "late-sender")
    assert made["id"] not in late
    claimed = await row(app_runtime, made["id"])
    assert claimed.claim_token == token and claimed.attempts == 1
    await _send(app_runtime, made["id"], token)
    assert len(await replies_on(app_runtime, ticket["id"])) == 1


async def test_list_takes_a_constant_number_of_queries(tenant: Tenant, app_runtime: Runtime):
    from tests.tickets.test_queries import statements

    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}/scheduled-replies"
    for _ in range(2):
        await schedule(tenant, ticket["id"], soon(3600))
    with statements(app_runtime) as small:
        assert len(data(await tenant.get(path))) == 2
    for _ in range(10):
        await schedule(tenant, ticket["id"], soon(3600))
    with statements(app_runtime) as large:
        assert len(data(await tenant.get(path))) == 12
    assert len(large) == len(small)


async def test_uploads_of_waiting_replies_are_held(
    tenant: Tenant, app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(app_runtime.services, "attachments", Files(RuntimeError("x")))
    ticket = await new_ticket(tenant)
    waiting = await schedule(tenant, ticket["id"], soon(3600), attachmentIds=["up-1", "up-2"])
    cancelled = await schedule(tenant, ticket["id"], soon(3600), attachmentIds=["up-3"])
    await tenant.delete(f"/v1/scheduled-replies/{cancelled['id']}")
    held = app_runtime.services["held_attachment_ids"]
    async with app_runtime.db.session(write=False) as session:
        assert await held(session, workspace_id=tenant.workspace_id) == {"up-1", "up-2"}
        assert {"up-1", "up-2"} <= await held(session)
    assert waiting["attachmentIds"] == ["up-1", "up-2"]


async def test_attachments_are_checked_when_the_reply_is_scheduled(tenant: Tenant, make_tenant):
    ticket = await new_ticket(tenant)
    unknown = {"content": "x", "sendAt": soon(600), "attachmentIds": ["no-such-upload"]}
    response = await tenant.post(f"/v1/tickets/{ticket['id']}/scheduled-replies", json=unknown)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "attachmentIds"
    other = await make_tenant()
    upload = await other.post(
        "/v1/attachments", files={"file": ("a.txt", b"someone else's", "text/plain")}
    )
    foreign = {**unknown, "attachmentIds": [upload.json()["data"]["id"]]}
    response = await tenant.post(f"/v1/tickets/{ticket['id']}/scheduled-replies", json=foreign)
    assert response.status_code == 422
    mine = await tenant.post("/v1/attachments", files={"file": ("b.txt", b"mine", "text/plain")})
    ok = {**unknown, "attachmentIds": [mine.json()["data"]["id"]]}
    created = await tenant.post(f"/v1/tickets/{ticket['id']}/scheduled-replies", json=ok)
    assert created.status_code == 201, created.text
