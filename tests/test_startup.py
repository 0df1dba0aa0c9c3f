"""What a start of the app loads and builds (docs/architecture.md, Start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enque.app import YOUNG_GENERATION_THRESHOLD

# Libraries only some requests or jobs use: a start must not import them.
FIRST_USE = ("alembic", "redis", "httpx", "httpcore", "jinja2", "aiosmtplib", "lxml", "html_text")

PROBE = """
import gc, json, sys
from enque.app import serving_app
from enque.core.api import ApiModel, Envelope, ErrorBody, ErrorEnvelope

def family(cls):
    yield cls
    for sub in cls.__subclasses__():
        yield from family(sub)

gc.disable()  # as `enque serve` does
serving_app()
bases = (ApiModel, Envelope, ErrorBody, ErrorEnvelope)
models = {model for base in bases for model in family(base)}
built = sorted(model.__qualname__ for model in models if model.__pydantic_complete__)
print(json.dumps({
    "imported": sorted(name for name in sys.modules if name.split(".")[0] in %r),
    "gc_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "young_threshold": gc.get_threshold()[0],
    "built": built,
    "models": len(models),
}))
"""


@pytest.fixture
def start(base_env: dict[str, str], tmp_path: Path) -> dict[str, object]:
    env = {
        **os.environ,
        **base_env,
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'start.db'}",
        "DATA_DIR": str(tmp_path),
    }
    env.pop("SMTP_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (FIRST_USE,)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_start_imports_no_library_that_waits_for_first_use(start: dict[str, object]):
    assert start["imported"] == []


def test_a_start_builds_almost_no_api_schema(start: dict[str, object]):
    """Only models instantiated while others are defined (a field default such as
    `match: MatchIn = MatchIn()`) and the generic envelope itself (built by pydantic when it
    is first parametrised) are built."""
    assert isinstance(start["models"], int) and start["models"] > 150
    assert isinstance(start["built"], list) and len(start["built"]) <= 5, start["built"]


def test_the_collector_runs_again_once_the_app_is_built(start: dict[str, object]):
    assert start["gc_enabled"] is True
    assert isinstance(start["frozen"], int) and start["frozen"] > 100_000
    assert start["young_threshold"] == YOUNG_GENERATION_THRESHOLD
