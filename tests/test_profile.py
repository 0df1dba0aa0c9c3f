"""The caller's own profile: fields, sanitized signature, password change with a fresh token."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from enque.activity.models import Activity
from tests.support.api import Tenant, data, error
from tests.support.people import add_member

NEW_PASSWORD = "another long passphrase"


async def test_read(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server, "manager", name="Ada Lovelace")
    profile = data(await member.request("GET", "/v1/profile"))
    assert profile["id"] == member.agent_id and profile["email"] == member.email
    assert profile["displayName"] == "Ada Lovelace" and profile["role"] == "manager"
    assert profile["signature"] is None and profile["isActive"] is True
    assert "passwordHash" not in profile and "token" not in profile


async def test_update_fields(tenant: Tenant, app_runtime: Any) -> None:
    body = {
        "displayName": "Grace",
        "avatarUrl": "https://cdn.example.com/grace.png",
        "jobTitle": "Admiral",
        "phone": "+1 555 0199",
        "signature": "<p>Best,<br><strong>Grace</strong></p>",
    }
    updated = data(await tenant.patch("/v1/profile", json=body))
    for key, value in body.items():
        assert updated[key] == value
    assert updated["token"] is None and updated["expiresAt"] is None
    assert data(await tenant.get("/v1/profile"))["signature"] == body["signature"]
    cleared = data(await tenant.patch("/v1/profile", json={"avatarUrl": None, "signature": None}))
    assert cleared["avatarUrl"] is None and cleared["signature"] is None
    assert cleared["jobTitle"] == "Admiral"
    assert (await tenant.get("/v1/auth/me")).status_code == 200  # token still valid
    async with app_runtime.db.session(write=False) as session:
        rows = (
            (
                await session.execute(
                    select(Activity)
                    .where(Activity.subject_id == tenant.agent_id, Activity.verb == "agent.updated")
                    .order_by(Activity.id)
                )
            )
            .scalars()
            .all()
        )
    assert [sorted(r.after) for r in rows] == [
        ["avatar_url", "display_name", "job_title", "phone", "signature"],
        ["avatar_url", "signature"],
    ]


async def test_signature_is_sanitized(tenant: Tenant) -> None:
    dirty = (
        '<p onclick="steal()">Hi <a href="javascript:alert(1)">x</a>'
        '<a href="https://example.com" target="_blank">site</a></p>'
        '<script>alert(1)</script><img src="https://example.com/l.png" onerror="x()">'
        '<style>body{display:none}</style><iframe src="https://evil.test"></iframe>'
        '<table><tr><td colspan="2" style="color:red">cell</td></tr></table>'
    )
    clean = data(await tenant.patch("/v1/profile", json={"signature": dirty}))["signature"]
    for banned in ("onclick", "javascript:", "<script", "onerror", "<style", "<iframe", "style="):
        assert banned not in clean
    assert '<a href="https://example.com" rel="noopener noreferrer">site</a>' in clean
    assert '<img src="https://example.com/l.png">' in clean
    assert '<td colspan="2">cell</td>' in clean


async def test_validation(tenant: Tenant) -> None:
    for body in (
        {"avatarUrl": "javascript:alert(1)"},
        {"avatarUrl": "data:image/png;base64,AAAA"},
        {"displayName": ""},
        {"displayName": None},
        {"role": "admin"},
        {"email": "new@example.com"},
        {"signature": "x" * 20_001},
        {"password": "short", "currentPassword": "whatever"},
    ):
        error(await tenant.patch("/v1/profile", json=body), 422, "VALIDATION_ERROR")


async def test_password_change(tenant: Tenant, app_runtime: Any) -> None:
    missing = error(
        await tenant.patch("/v1/profile", json={"password": NEW_PASSWORD}), 422, "VALIDATION_ERROR"
    )
    assert missing["details"] == [
        {"path": "currentPassword", "message": "required to change the password"}
    ]
    wrong = {"currentPassword": "not it at all", "password": NEW_PASSWORD}
    failure = error(await tenant.patch("/v1/profile", json=wrong), 422, "VALIDATION_ERROR")
    assert failure["details"][0]["path"] == "currentPassword"
    assert (await tenant.get("/v1/auth/me")).status_code == 200  # nothing changed

    body = {"currentPassword": tenant.password, "password": NEW_PASSWORD, "jobTitle": "Chief"}
    changed = data(await tenant.patch("/v1/profile", json=body))
    assert changed["token"] and changed["expiresAt"] and changed["jobTitle"] == "Chief"
    error(await tenant.get("/v1/auth/me"), 401, "UNAUTHORIZED")
    me = data(await tenant.get("/v1/auth/me", token=changed["token"]))
    assert me["workspace"]["id"] == tenant.workspace_id and me["role"] == "admin"
    old = {"email": tenant.email, "password": tenant.password}
    error(await tenant.http.post("/v1/auth/login", json=old), 401, "UNAUTHORIZED")
    new = {"email": tenant.email, "password": NEW_PASSWORD}
    assert (await tenant.http.post("/v1/auth/login", json=new)).status_code == 200
    async with app_runtime.db.session(write=False) as session:
        verbs = (
            (
                await session.execute(
                    select(Activity.verb).where(Activity.subject_id == tenant.agent_id)
                )
            )
            .scalars()
            .all()
        )
    assert "agent.password_changed" in verbs


async def test_password_with_spaces_is_kept_as_typed(tenant: Tenant) -> None:
    spaced = "  spaces around  "
    body = {"currentPassword": tenant.password, "password": spaced}
    data(await tenant.patch("/v1/profile", json=body))
    login = {"email": tenant.email, "password": spaced.strip()}
    error(await tenant.http.post("/v1/auth/login", json=login), 401, "UNAUTHORIZED")
    login["password"] = spaced
    assert (await tenant.http.post("/v1/auth/login", json=login)).status_code == 200


async def test_agent_role_may_edit_own_profile(tenant: Tenant, smtp_server: Any) -> None:
    member = await add_member(tenant, smtp_server, "agent")
    updated = data(await member.request("PATCH", "/v1/profile", json={"jobTitle": "Helper"}))
    assert updated["jobTitle"] == "Helper" and updated["role"] == "agent"
    admin_view = data(await tenant.get(f"/v1/agents/{member.agent_id}"))
    assert admin_view["jobTitle"] == "Helper"


async def test_notification_choices_live_in_the_profile(tenant: Tenant) -> None:
    """The profile shows and changes the same choices as `/v1/notifications/settings`."""
    profile = data(await tenant.get("/v1/profile"))
    assert profile["notifications"] == data(await tenant.get("/v1/notifications/settings"))
    change = {"event": "ticket.assigned", "enabled": True, "channels": ["in_app", "email"]}
    updated = data(await tenant.patch("/v1/profile", json={"notifications": [change]}))
    assigned = next(s for s in updated["notifications"] if s["event"] == "ticket.assigned")
    assert assigned == change
    assert data(await tenant.get("/v1/notifications/settings")) == updated["notifications"]


async def test_bad_notification_choice_changes_nothing(tenant: Tenant) -> None:
    before = data(await tenant.get("/v1/profile"))
    body = {"jobTitle": "Changed", "notifications": [{"event": "no.such.event", "enabled": False}]}
    error(await tenant.patch("/v1/profile", json=body), 422, "VALIDATION_ERROR")
    assert data(await tenant.get("/v1/profile")) == before


async def test_wrong_password_keeps_notification_choices(tenant: Tenant) -> None:
    before = data(await tenant.get("/v1/profile"))["notifications"]
    body = {
        "currentPassword": "not the password at all",
        "password": NEW_PASSWORD,
        "notifications": [{"event": "ticket.assigned", "enabled": False}],
    }
    error(await tenant.patch("/v1/profile", json=body), 422, "VALIDATION_ERROR")
    assert data(await tenant.get("/v1/profile"))["notifications"] == before
