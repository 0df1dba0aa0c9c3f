from tests.support.api import Tenant, data
from tests.support.factories import FACTORIES


async def test_automations_factory(tenant: Tenant) -> None:
    rule_id = await FACTORIES["automations"](tenant)
    assert data(await tenant.get(f"/v1/automations/{rule_id}"))["id"] == rule_id
