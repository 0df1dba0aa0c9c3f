"""The real server in a subprocess and headless Chromium (Debian's package) driven by
Playwright. Screenshots go to `artifacts/web/` (or `$ENQUE_TEST_ARTIFACTS/web`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND, make_database_url
from tests.support.api import Tenant, register
from tests.support.server import ServerProcess
from tests.support.services import require

ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    base = Path(os.environ.get("ENQUE_TEST_ARTIFACTS") or ROOT / "artifacts")
    out = base / "web"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def server(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("web")
    url, cleanup = make_database_url(BACKEND, data, f"enque_web_{os.getpid()}")
    env = {
        **base_env,
        "DATABASE_URL": url,
        "DATA_DIR": str(data),
        "STORAGE_URL": f"file://{data / 'files'}",
        "ENQUE_TEST_LOGS": str(data),
    }
    process = ServerProcess(env).start(timeout=60)
    try:
        yield process
    finally:
        process.stop()
        cleanup()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    return await register(client)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    require(path is not None, "Chromium (scripts/install-test-services.sh installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox"]
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def page(browser: Any, server: ServerProcess) -> AsyncIterator[Any]:
    context = await browser.new_context(
        base_url=server.url, viewport={"width": 1366, "height": 800}
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def sign_in(page: Any, tenant: Tenant, *, email: str | None = None) -> None:
    await page.goto("/")
    await page.get_by_label("Email").fill(email or tenant.email)
    await page.get_by_label("Password").fill(tenant.password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_selector("body[data-inbox-ready]")
