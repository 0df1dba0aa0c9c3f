"""Walks over every operation of the OpenAPI document; routes added later join automatically.

- Tenant walk: every operation with an id in its path, called by workspace A's admin with the
  id of workspace B's resource (made by the factory of tests/support/factories.py for the path
  segment before the id), answers 404 — and B's resource is still there.
- List walk: every GET without an id, called by A, never shows an id of B's resources.
- Unauthenticated walk: every operation not public by api.md answers 401 without a token and
  with a garbage one.
"""

from __future__ import annotations

from typing import Any

import pytest

from enque.app import create_app
from tests.support.api import Tenant
from tests.support.factories import FACTORIES
from tests.support.walk import Operation, body_for, operations, query_for

PUBLIC = {
    ("POST", "/v1/auth/register"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/password/forgot"),
    ("POST", "/v1/auth/password/reset"),
    ("POST", "/v1/auth/invitations/accept"),
    ("GET", "/v1/auth/microsoft"),
    ("GET", "/v1/auth/microsoft/callback"),
    ("GET", "/v1/mailboxes/microsoft/callback"),
    ("GET", "/v1/csat/{token}"),
    ("POST", "/v1/csat/{token}"),
}
# path parameters that are not ids of tenant resources
NOT_IDS = {"token"}

OPENAPI = create_app().openapi()
OPERATIONS = operations(OPENAPI)
WITH_IDS = [op for op in OPERATIONS if set(op.params) - NOT_IDS]
LISTS = [op for op in OPERATIONS if op.method == "GET" and not op.params]
PRIVATE = [op for op in OPERATIONS if (op.method, op.path) not in PUBLIC]


def fill(op: Operation, ids: dict[str, str]) -> str:
    path = op.path
    for param in op.params:
        path = path.replace("{" + param + "}", ids.get(param, "walk-id"))
    return path


async def ids_in(op: Operation, owner: Tenant) -> dict[str, str]:
    ids = {}
    for param in op.params:
        if param in NOT_IDS:
            continue
        segment = op.segment_of(param)
        factory = FACTORIES.get(segment)
        assert factory is not None, (
            f"{op}: no factory for '{segment}'. Register one in tests/support/factories.py "
            f"with @factory('{segment}') so the tenant walk covers this route."
        )
        ids[param] = await factory(owner)
    return ids


@pytest.mark.parametrize("op", WITH_IDS, ids=str)
async def test_other_workspaces_ids_are_not_found(op: Operation, tenant: Tenant, make_tenant):
    other = await make_tenant()
    ids = await ids_in(op, other)
    response = await tenant.request(
        op.method,
        fill(op, ids),
        json=body_for(op, OPENAPI),
        params=query_for(op, OPENAPI),
    )
    assert response.status_code == 404, (
        f"{op} with another workspace's id answered {response.status_code}: {response.text[:300]}"
        " (a 422 means the walk's body is not valid: add one in tests/support/walk.py"
        " BODY_OVERRIDES)"
    )
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.fixture(scope="module")
async def foreign(http_module: Any) -> tuple[Tenant, set[str]]:
    """A workspace holding one resource of every kind the factories make, and their ids."""
    from tests.support.api import register

    owner = await register(http_module)
    made = set()
    for segment, factory in sorted(FACTORIES.items()):
        if segment == "workspaces":
            continue
        made.add(await factory(owner))
    return owner, made


@pytest.mark.parametrize("op", LISTS, ids=str)
async def test_lists_never_show_other_workspaces_rows(op: Operation, foreign, make_tenant):
    _, foreign_ids = foreign
    viewer = await make_tenant()
    response = await viewer.request("GET", op.path, params=query_for(op, OPENAPI))
    assert response.status_code < 500, f"{op}: {response.status_code} {response.text[:300]}"
    leaked = [i for i in foreign_ids if i in response.text]
    assert not leaked, f"{op} shows another workspace's ids: {leaked}"


@pytest.mark.parametrize("op", PRIVATE, ids=str)
@pytest.mark.parametrize("token", [None, "garbage.token.value"], ids=["no-token", "garbage"])
async def test_private_routes_need_a_token(op: Operation, token: str | None, http):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.request(
        op.method,
        fill(op, {p: "00000000-0000-7000-8000-000000000000" for p in op.params}),
        json=body_for(op, OPENAPI),
        params=query_for(op, OPENAPI),
        headers=headers,
    )
    assert response.status_code == 401, f"{op}: {response.status_code} {response.text[:200]}"
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
