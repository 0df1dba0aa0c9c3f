"""OpenAPI-driven fuzzing (Schemathesis) of every documented route of a running server: no 5xx,
every answer in the envelope and matching the documented schema, status and content type."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.conftest import BACKEND, make_database_url
from tests.support.server import ServerProcess

# `positive_data_acceptance` is left out: rules a JSON schema cannot state (a valid email
# address, `to` after `from`, an id of this workspace) rightly refuse schema-valid data with 422.

# Routes that end the fuzzing identity (its token or workspace) are left out: everything after
# them would only exercise 401s.
IDENTITY_ENDING = r"^/v1/(auth/logout|auth/switch-workspace|workspaces/current)$"
EXAMPLES = int(os.environ.get("ENQUE_FUZZ_EXAMPLES", "2"))


@pytest.fixture(scope="module")
def fuzz_server(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("fuzz")
    url, cleanup = make_database_url(BACKEND, folder, f"enque_fuzz_{secrets.token_hex(4)}")
    env = {
        **base_env,
        "DATABASE_URL": url,
        "DATA_DIR": str(folder),
        "ENQUE_TEST_LOGS": str(folder),
        "RATE_LIMIT_ENABLED": "false",
    }
    try:
        with ServerProcess(env) as server:
            yield server
    finally:
        cleanup()


@pytest.fixture(scope="module")
def fuzz_token(fuzz_server: ServerProcess) -> str:
    registered = httpx.post(
        fuzz_server.url + "/v1/auth/register",
        json={
            "email": f"fuzz-{secrets.token_hex(4)}@example.com",
            "password": "fuzzing-password-1",
            "displayName": "Fuzz",
            "workspaceName": "Fuzz",
            "subdomain": f"fuzz-{secrets.token_hex(4)}",
        },
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    return str(registered.json()["data"]["token"])


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> Any:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/v1/openapi.json")
    return schema.exclude(path_regex=IDENTITY_ENDING)


def test_every_route_answers_in_the_documented_envelope(
    api_schema: Any, fuzz_server: ServerProcess, fuzz_token: str
) -> None:
    headers = {"Authorization": f"Bearer {fuzz_token}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 50, "the whole API is fuzzed"

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call_and_validate(
                base_url=fuzz_server.url,
                headers=headers,
                excluded_checks=[positive_data_acceptance],
            )
            content_type = response.headers.get("content-type") or [""]
            if content_type[0].startswith("application/json"):
                body = response.json()
                assert isinstance(body, dict) and "success" in body, response.text
                assert body["success"] is (response.status_code < 400), response.text

        try:
            fuzz()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # every operation is run; all failures are reported together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
