"""The `enque` command line, run as a real process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess


def enque(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enque.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(base_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        **base_env,
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "DATA_DIR": str(tmp_path),
        "ENQUE_TEST_LOGS": str(tmp_path),
    }


def test_every_command_has_help_with_an_example(env: dict[str, str]):
    listing = enque("--help", env=env)
    assert listing.returncode == 0
    commands = re.findall(r"^  ([a-z][a-z-]+)", listing.stdout.split("Commands:")[1], re.M)
    assert {"serve", "db", "check", "create-admin"} <= set(commands)
    for command in commands:
        helped = enque(command, "--help", env=env)
        assert helped.returncode == 0, helped.stderr
        if command not in ("db", "migrate"):  # groups list their commands
            assert "xample" in helped.stdout, f"`enque {command} --help` shows no example"


@pytest.mark.slow
def test_serve_prints_the_demo_login_only_on_first_run(env: dict[str, str]):
    with ServerProcess(env, demo=True) as server:
        first_logs = server.logs()
        match = re.search(r"email:\s+(\S+)\s+password:\s+(\S+)", first_logs)
        assert match, first_logs
        login = httpx.post(
            server.url + "/v1/auth/login",
            json={"email": match.group(1), "password": match.group(2)},
        )
        assert login.status_code == 200
    with ServerProcess(env, demo=True) as server:
        assert "password:" not in server.logs()


def test_db_upgrade_and_downgrade(env: dict[str, str]):
    up = enque("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    down = enque("db", "downgrade", "base", env=env)
    assert down.returncode == 0, down.stderr
    again = enque("db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr


def test_check_reports_each_dependency(env: dict[str, str]):
    enque("db", "upgrade", env=env)
    healthy = enque("check", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert re.search(r"database:\s+ok", healthy.stdout)
    broken = enque("check", env={**env, "DATABASE_URL": "postgresql://enque@127.0.0.1:9/none"})
    assert broken.returncode != 0
    assert re.search(r"database:\s+FAILED", broken.stdout)


@pytest.mark.parametrize(
    ("overrides", "args", "says"),
    [
        ({"SECRET_KEY": "", "ENCRYPTION_KEY": ""}, [], "SECRET_KEY must be set"),
        ({"CORS_ORIGINS": "*"}, [], "CORS_ORIGINS must not be '*'"),
        ({}, ["--workers", "2"], "several workers need PostgreSQL"),
    ],
)
def test_production_refuses_insecure_settings(env, overrides, args, says):
    production = {
        **env,
        "ENV": "production",
        "PUBLIC_URL": "https://help.example.com",
        "SECRET_KEY": "s" * 40,
        **overrides,
    }
    result = enque("serve", "--port", "9", *args, env=production, timeout=60)
    assert result.returncode != 0
    assert says in result.stderr
