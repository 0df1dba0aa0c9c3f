from tests.support.api import Tenant, data


async def test_health(http):
    response = await http.get("/health")
    assert response.status_code == 200 and response.text == "ok"
    assert response.headers["x-request-id"]


async def test_register_and_me(tenant: Tenant):
    me = data(await tenant.get("/v1/auth/me"))
    assert me["agent"]["id"] == tenant.agent_id
    assert me["workspace"]["id"] == tenant.workspace_id
    assert me["role"] == "admin"
