"""The inbox shows each ticket's SLA state, filters breached tickets and sorts by the soonest
SLA target; the rule editor offers the SLA triggers."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.support.api import Tenant, data
from tests.support.helpdesk import new_ticket
from tests.web.conftest import sign_in


async def test_sla_state_filter_and_sort(page: Any, tenant: Tenant) -> None:
    targets = {"firstResponseMinutes": 60, "resolutionMinutes": 480}
    data(await tenant.post("/v1/sla-policies", json={"name": "Standard", "targets": targets}), 201)
    ticket = await new_ticket(tenant, subject="Needs an answer within the hour")
    assert data(await tenant.get(f"/v1/tickets/{ticket['id']}"))["slaDueAt"] is not None
    await sign_in(page, tenant)
    await page.goto("/#/inbox/all")
    row = page.locator(f'li.ticket[data-id="{ticket["id"]}"]')
    await expect(row.locator(".sla")).to_contain_text("SLA due")

    await page.locator("details.filters summary").click()
    async with page.expect_request(lambda r: "/v1/tickets?" in r.url and "breached=true" in r.url):
        await page.get_by_label("SLA", exact=True).select_option("true")
    await expect(row).to_have_count(0)  # nothing breached yet
    assert "breached=true" in page.url
    await page.get_by_label("SLA", exact=True).select_option("")
    async with page.expect_request(lambda r: "/v1/tickets?" in r.url and "sort=slaDue" in r.url):
        await page.get_by_label("Sort").select_option("slaDue")
    await expect(row).to_have_count(1)


async def test_rule_editor_offers_sla_triggers(page: Any, tenant: Tenant) -> None:
    await sign_in(page, tenant)
    await page.goto("/#/admin/automations")
    trigger = page.locator("#auto-trigger")
    await trigger.wait_for()
    options = await trigger.locator("option").all_inner_texts()
    assert {"sla.warning", "sla.breached"} <= set(options)
