"""Test set-up: a real database (SQLite file or PostgreSQL), the app with its lifespan,
and factories of isolated workspaces. `ENQUE_TEST_DB=postgres` runs on PostgreSQL."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from enque.app import create_app
from enque.config import Settings
from enque.core.events import Event
from enque.core.migrate import upgrade
from enque.core.runtime import Runtime
from tests.support.api import Tenant, register
from tests.support.services import (
    SmtpServer,
    create_pg_database,
    drop_pg_database,
    postgres_available,
    require,
)

# fixtures shared by modules in several folders
pytest_plugins = ["tests.support.workers"]

BACKEND = os.environ.get("ENQUE_TEST_DB", "sqlite")


def pytest_report_header() -> str:
    return f"enque test database: {BACKEND}"


@pytest.fixture(scope="session")
def worker_id_suffix(request: pytest.FixtureRequest) -> str:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    return f"{worker}_{os.getpid()}"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_mail_servers() -> Iterator[None]:
    """Mail servers started on demand (tests/email/servers.py) stop with the session."""
    yield
    from tests.email.servers import stop_shared_servers

    stop_shared_servers()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def make_database_url(kind: str, data_dir: Path, name: str) -> tuple[str, Callable[[], None]]:
    """A new empty database of `kind`; returns its URL and a clean-up function."""
    if kind == "postgres":
        require(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
        url = create_pg_database(name)
        return url, lambda: drop_pg_database(name)
    return f"sqlite:///{data_dir / (name + '.db')}", lambda: None


@pytest.fixture(scope="session")
def base_env(data_dir: Path, smtp_server: SmtpServer) -> dict[str, str]:
    """Environment values every test configuration shares."""
    return {
        "ENV": "test",
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "STORAGE_URL": f"file://{data_dir / 'files'}",
        "SMTP_URL": smtp_server.url,
        "MAIL_FROM": "Enque <no-reply@enque.test>",
        "PUBLIC_URL": "http://enque.test",
        "RATE_LIMIT_ENABLED": "false",
        "SCHEDULER_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }


def settings_from(env: dict[str, str], **overrides: Any) -> Settings:
    values = {k.lower(): v for k, v in env.items()}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def database_url(data_dir: Path, worker_id_suffix: str) -> Iterator[str]:
    url, cleanup = make_database_url(BACKEND, data_dir, f"enque_test_{worker_id_suffix}")
    yield url
    cleanup()


@pytest.fixture(scope="session")
def settings(base_env: dict[str, str], database_url: str) -> Settings:
    return settings_from(base_env, database_url=database_url)


@pytest.fixture(scope="session")
async def migrated(settings: Settings) -> Settings:
    """The test database with every migration applied."""
    await upgrade(settings)
    return settings


@pytest.fixture(scope="session")
async def app(migrated: Settings) -> AsyncIterator[Any]:
    application = create_app(migrated)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def http_module(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client shared by the tests of one module (for module-scoped data)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as client:
        yield client


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://enque.test") as client:
        yield client


@pytest.fixture
def app_runtime(app: Any) -> Runtime:
    return app.state.runtime  # type: ignore[no-any-return]


@pytest.fixture
async def tenant(http: httpx.AsyncClient) -> Tenant:
    """A new workspace with its admin signed in."""
    return await register(http)


@pytest.fixture
def make_tenant(http: httpx.AsyncClient) -> Callable[..., Awaitable[Tenant]]:
    async def factory(**overrides: Any) -> Tenant:
        return await register(http, **overrides)

    return factory


@pytest.fixture
async def graph_emulator() -> AsyncIterator[Any]:
    """The Microsoft identity + Graph emulator on 127.0.0.1 (tests/emulators/graph.py)."""
    from tests.emulators.graph import GraphEmulator

    emulator = GraphEmulator()
    async with emulator.serve():
        yield emulator


@pytest.fixture
def events(app_runtime: Runtime) -> Iterator[list[Event]]:
    """Every event emitted (after commit) while the test runs, in order."""
    seen: list[Event] = []

    async def capture(event: Event) -> None:
        seen.append(event)

    app_runtime.reactions.append(capture)
    yield seen
    app_runtime.reactions.remove(capture)
