"""The rule editor lists the condition fields, the workspace's custom fields among them with the
operators their type allows."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.support.api import Tenant, data
from tests.web.conftest import sign_in


async def test_rule_editor_lists_custom_fields(page: Any, tenant: Tenant) -> None:
    body = {"entity": "user", "key": "tier", "label": "Tier", "type": "dropdown"}
    data(await tenant.post("/v1/custom-fields", json={**body, "options": ["free", "paid"]}), 201)
    await sign_in(page, tenant)
    await page.goto("/#/admin/automations")
    fields = page.locator("#auto-condition-fields")
    await fields.locator("summary").click()
    await expect(fields).to_contain_text("customer.custom.tier")
    await expect(fields).to_contain_text("Tier (dropdown: free, paid): is, is_not, in, not_in")
    await expect(fields).to_contain_text("hours_since_created")
