"""Back from Microsoft: the app takes the token from `/signin#token=…` (and drops it from the
address bar and history) or shows why sign-in failed (`/signin?error=…`). The server side of the
flow is tested against the identity emulator in tests/test_auth_microsoft.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tests.support.api import Tenant


async def test_token_from_the_fragment_signs_in(page: Any, tenant: Tenant) -> None:
    await page.goto("/signin#" + urlencode({"token": tenant.token, "expiresAt": 0}))
    await page.wait_for_selector("body[data-inbox-ready]")
    assert tenant.token not in page.url
    assert page.url.endswith("/#/inbox/open")
    assert await page.evaluate("history.state") is None  # nothing of the token kept


async def test_failure_is_explained_on_the_sign_in_page(page: Any) -> None:
    await page.goto("/signin?error=no_account")
    alert = page.locator(".toast-error")
    await alert.wait_for()
    assert "No active Enque agent matches that Microsoft account" in await alert.inner_text()
    await page.get_by_label("Password").wait_for()
    assert "error=" not in page.url
