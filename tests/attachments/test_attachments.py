"""Uploads streamed to storage, downloads, links to comments, deletes and the orphan sweep."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
from sqlalchemy import text, update

from enque.app import create_app
from enque.attachments import service
from enque.attachments.models import Attachment
from enque.comments.models import Comment
from enque.config import Settings
from enque.core.runtime import Runtime
from enque.core.storage import storage_of
from tests.support.api import Tenant, data, error, register, unique
from tests.support.helpdesk import new_ticket
from tests.support.s3 import S3Server

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(2000)
ELF = b"\x7fELF\x02\x01\x01\x00" + os.urandom(500)
PE = b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(500)


async def upload(
    tenant: Tenant,
    content: bytes,
    name: str = "photo.png",
    claimed: str = "text/plain",
    **form: Any,
) -> httpx.Response:
    return await tenant.post(
        "/v1/attachments", files={"file": (name, content, claimed)}, data=form or None
    )


async def raw_upload(tenant: Tenant, content: bytes, name: str) -> httpx.Response:
    """A multipart body written by hand, so the name reaches the server byte for byte."""
    boundary = "rawboundary7f3a"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{name}"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return await tenant.post(
        "/v1/attachments",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def stored_files(runtime: Runtime, workspace_id: str) -> list[Path]:
    root = Path(storage_of(runtime).description.removeprefix("file://")) / workspace_id
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_upload_sniffs_hashes_and_downloads(tenant: Tenant, app_runtime: Runtime) -> None:
    meta = data(await upload(tenant, PNG, claimed="application/x-msdownload"), 201)
    assert meta["contentType"] == "image/png"  # from the bytes, not the claim
    assert meta["size"] == len(PNG)
    assert meta["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert meta["fileName"] == "photo.png" and meta["commentId"] is None

    [path] = stored_files(app_runtime, tenant.workspace_id)
    assert path.name == meta["id"] and path.read_bytes() == PNG
    assert path.parent.parent.parent.name == tenant.workspace_id  # {ws}/{yyyy}/{mm}/{id}

    assert data(await tenant.get(f"/v1/attachments/{meta['id']}")) == meta
    response = await tenant.get(f"/v1/attachments/{meta['id']}/content")
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["accept-ranges"] == "bytes"


async def test_html_and_svg_are_never_inline(tenant: Tenant) -> None:
    for body, mime in [
        (b"<html><body><script>alert(1)</script></body></html>", "text/html"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>', "image/svg+xml"),
    ]:
        meta = data(await upload(tenant, body, name="x.png", claimed="image/png"), 201)
        assert meta["contentType"] == mime
        response = await tenant.get(f"/v1/attachments/{meta['id']}/content")
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("evil\x00.png", "evil.png"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("a" * 10_000 + ".pdf", "a" * 251 + ".pdf"),
        ("..", "file"),
    ],
)
async def test_client_names_are_only_display_names(
    tenant: Tenant, app_runtime: Runtime, raw: str, shown: str
) -> None:
    meta = data(await raw_upload(tenant, b"plain words", raw), 201)
    assert meta["fileName"] == shown
    assert meta["contentType"] == "text/plain"
    [path] = stored_files(app_runtime, tenant.workspace_id)
    assert path.name == meta["id"]
    response = await tenant.get(f"/v1/attachments/{meta['id']}/content")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "/" not in disposition.split("filename=")[1].split(";")[0]
    assert response.content == b"plain words"


@pytest.mark.parametrize("content", [ELF, PE, b"#!/bin/sh\nrm -rf /\n"])
async def test_refused_types_are_415_and_leave_nothing(
    tenant: Tenant, app_runtime: Runtime, content: bytes
) -> None:
    error(await upload(tenant, content, name="report.pdf"), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert stored_files(app_runtime, tenant.workspace_id) == []


async def test_over_the_limit_streamed_without_length_is_413(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    limit = app_runtime.settings.max_upload_bytes
    boundary = "enqueboundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        chunk = b"\x00\x01" * (512 * 1024)
        for _ in range(limit // len(chunk) + 4):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await tenant.post(
        "/v1/attachments",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    error(response, 413, "PAYLOAD_TOO_LARGE")
    assert stored_files(app_runtime, tenant.workspace_id) == []


async def test_bad_requests(tenant: Tenant) -> None:
    error(await tenant.post("/v1/attachments", json={"file": "x"}), 415, "UNSUPPORTED_MEDIA_TYPE")
    error(
        await tenant.post("/v1/attachments", files={"other": ("a.txt", b"x")}),
        422,
        "VALIDATION_ERROR",
    )
    error(await upload(tenant, b""), 422, "VALIDATION_ERROR")
    error(await upload(tenant, PNG, ticketId="nope"), 422, "VALIDATION_ERROR")


async def test_ranges(tenant: Tenant) -> None:
    content = os.urandom(100_000)
    meta = data(await upload(tenant, content, name="blob.bin"), 201)
    path = f"/v1/attachments/{meta['id']}/content"
    part = await tenant.get(path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == content[10:20]
    assert part.headers["content-range"] == "bytes 10-19/100000"
    assert part.headers["content-length"] == "10"
    tail = await tenant.get(path, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == content[-5:]
    rest = await tenant.get(path, headers={"Range": "bytes=99990-"})
    assert rest.content == content[99990:]
    beyond = await tenant.get(path, headers={"Range": "bytes=100000-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */100000"
    several = await tenant.get(path, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == content


async def test_links_to_notes_and_replies(tenant: Tenant, make_tenant: Any) -> None:
    ticket = await new_ticket(tenant)
    first = data(await upload(tenant, PNG, ticketId=ticket["id"]), 201)
    second = data(await upload(tenant, b"notes", name="n.txt"), 201)
    assert first["ticketId"] == ticket["id"]
    note = data(
        await tenant.post(
            f"/v1/tickets/{ticket['id']}/notes",
            json={"content": "<p>see files</p>", "attachmentIds": [first["id"], second["id"]]},
        ),
        201,
    )
    assert [a["id"] for a in note["attachments"]] == [first["id"], second["id"]]
    thread = data(await tenant.get(f"/v1/tickets/{ticket['id']}/comments"))
    linked = next(c for c in thread if c["id"] == note["id"])
    assert {a["fileName"] for a in linked["attachments"]} == {"photo.png", "n.txt"}
    assert data(await tenant.get(f"/v1/attachments/{first['id']}"))["commentId"] == note["id"]

    again = await tenant.post(
        f"/v1/tickets/{ticket['id']}/reply",
        json={"content": "<p>again</p>", "attachmentIds": [first["id"]]},
    )
    error(again, 422, "VALIDATION_ERROR")

    other_ticket = await new_ticket(tenant)
    elsewhere = data(await upload(tenant, PNG, ticketId=ticket["id"]), 201)
    wrong = await tenant.post(
        f"/v1/tickets/{other_ticket['id']}/notes",
        json={"content": "<p>x</p>", "attachmentIds": [elsewhere["id"]]},
    )
    error(wrong, 422, "VALIDATION_ERROR")

    stranger = await make_tenant()
    theirs = data(await upload(stranger, PNG), 201)
    foreign = await tenant.post(
        f"/v1/tickets/{ticket['id']}/notes",
        json={"content": "<p>x</p>", "attachmentIds": [theirs["id"]]},
    )
    error(foreign, 422, "VALIDATION_ERROR")
    for path in (f"/v1/attachments/{theirs['id']}", f"/v1/attachments/{theirs['id']}/content"):
        error(await tenant.get(path), 404, "NOT_FOUND")
    error(await tenant.delete(f"/v1/attachments/{theirs['id']}"), 404, "NOT_FOUND")


async def test_merge_moves_files(tenant: Tenant) -> None:
    target, source = await new_ticket(tenant), await new_ticket(tenant)
    meta = data(await upload(tenant, PNG, ticketId=source["id"]), 201)
    await tenant.post(
        f"/v1/tickets/{source['id']}/notes",
        json={"content": "<p>f</p>", "attachmentIds": [meta["id"]]},
    )
    merged = await tenant.post(
        f"/v1/tickets/{target['id']}/merge", json={"sourceTicketIds": [source["id"]]}
    )
    assert merged.status_code == 200, merged.text
    assert data(await tenant.get(f"/v1/attachments/{meta['id']}"))["ticketId"] == target["id"]


async def test_delete_rules(tenant: Tenant, app_runtime: Runtime) -> None:
    ticket = await new_ticket(tenant)
    loose = data(await upload(tenant, b"loose"), 201)
    assert (await tenant.delete(f"/v1/attachments/{loose['id']}")).status_code == 204
    error(await tenant.get(f"/v1/attachments/{loose['id']}"), 404, "NOT_FOUND")
    assert stored_files(app_runtime, tenant.workspace_id) == []

    sent = data(await upload(tenant, b"sent"), 201)
    reply = data(
        await tenant.post(
            f"/v1/tickets/{ticket['id']}/reply",
            json={"content": "<p>here</p>", "attachmentIds": [sent["id"]]},
        ),
        201,
    )
    async with app_runtime.db.transaction() as session:
        await session.execute(
            update(Comment).where(Comment.id == reply["id"]).values(delivery="sent")
        )
    error(await tenant.delete(f"/v1/attachments/{sent['id']}"), 409, "CONFLICT")
    assert len(stored_files(app_runtime, tenant.workspace_id)) == 1


async def _age(runtime: Runtime, attachment_id: str, seconds: int) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Attachment)
            .where(Attachment.id == attachment_id)
            .values(created_at=Attachment.created_at - seconds)
        )


async def test_orphan_sweep_and_tickets_deleted_for_good(
    tenant: Tenant, app_runtime: Runtime
) -> None:
    ticket = await new_ticket(tenant)
    old = data(await upload(tenant, b"old orphan"), 201)
    fresh = data(await upload(tenant, b"fresh orphan"), 201)
    kept = data(await upload(tenant, b"linked long ago"), 201)
    await tenant.post(
        f"/v1/tickets/{ticket['id']}/notes",
        json={"content": "<p>f</p>", "attachmentIds": [kept["id"]]},
    )
    await _age(app_runtime, old["id"], 24 * 3600 + 5)
    await _age(app_runtime, kept["id"], 48 * 3600)

    await service.sweep_orphans(app_runtime)
    error(await tenant.get(f"/v1/attachments/{old['id']}"), 404, "NOT_FOUND")
    data(await tenant.get(f"/v1/attachments/{fresh['id']}"))
    data(await tenant.get(f"/v1/attachments/{kept['id']}"))
    assert {p.name for p in stored_files(app_runtime, tenant.workspace_id)} == {
        fresh["id"],
        kept["id"],
    }

    # the ticket deleted for good (its comments go with it): its files go at the next sweep
    async with app_runtime.db.transaction() as session:
        await session.execute(text("DELETE FROM tickets WHERE id = :t"), {"t": ticket["id"]})
    await service.sweep_orphans(app_runtime)
    error(await tenant.get(f"/v1/attachments/{kept['id']}"), 404, "NOT_FOUND")
    assert {p.name for p in stored_files(app_runtime, tenant.workspace_id)} == {fresh["id"]}


async def test_purge_removes_a_tickets_files(tenant: Tenant, app_runtime: Runtime) -> None:
    ticket = await new_ticket(tenant)
    meta = data(await upload(tenant, PNG, ticketId=ticket["id"]), 201)
    async with app_runtime.db.transaction() as session:
        links = app_runtime.services["attachments"]
        assert (
            await links.purge(session, workspace_id=tenant.workspace_id, ticket_ids=[ticket["id"]])
            == 1
        )
    assert stored_files(app_runtime, tenant.workspace_id) == []
    error(await tenant.get(f"/v1/attachments/{meta['id']}"), 404, "NOT_FOUND")


@pytest.fixture
async def s3_http(migrated: Settings, s3_server: S3Server) -> AsyncIterator[httpx.AsyncClient]:
    bucket = unique("att").lower()
    s3_server.create_bucket(bucket)
    settings = migrated.model_copy(
        update={"storage_url": s3_server.storage_url(bucket), "max_upload_mb": 7}
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as client:
            yield client


async def test_s3_upload_and_signed_redirect(s3_http: httpx.AsyncClient) -> None:
    tenant = await register(s3_http)
    content = os.urandom(6 * 1024 * 1024)
    meta = data(await upload(tenant, content, name="über report.bin"), 201)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest()
    response = await tenant.get(f"/v1/attachments/{meta['id']}/content")
    assert response.status_code == 302
    url = response.headers["location"]
    assert url.startswith("http://127.0.0.1:") and "X-Amz-Expires=300" in url
    assert tenant.workspace_id in url and "report" not in url
    async with httpx.AsyncClient() as client:
        fetched = await client.get(url)
        assert fetched.status_code == 200 and fetched.content == content
        assert fetched.headers["content-disposition"].startswith("attachment;")
        assert "%C3%BCber%20report.bin" in fetched.headers["content-disposition"]
        ranged = await client.get(url, headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == content[:10]

    error(await upload(tenant, ELF), 415, "UNSUPPORTED_MEDIA_TYPE")
    error(await upload(tenant, os.urandom(8 * 1024 * 1024)), 413, "PAYLOAD_TOO_LARGE")
    storage = storage_of(s3_http._transport.app.state.runtime)  # type: ignore[attr-defined]
    keys = [o["path"] async for batch in obstore.list(storage.store) for o in batch]
    assert len(keys) == 1  # the 413 left no object and no unfinished upload behind
    assert keys[0].startswith(f"{tenant.workspace_id}/") and keys[0].endswith(f"/{meta['id']}")
    assert (await tenant.delete(f"/v1/attachments/{meta['id']}")).status_code == 204
