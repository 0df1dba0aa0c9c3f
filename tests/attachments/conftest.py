from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server().start()
    yield server
    server.stop()
