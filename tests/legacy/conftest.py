"""Fixtures of the legacy-migration tests: the MariaDB server, an S3 server, a built database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.legacy.generator import Manifest, Scale, Server, build, drop_database
from tests.support.s3 import S3Server
from tests.support.services import port_open, require


def mariadb_available() -> bool:
    return port_open("127.0.0.1", 3306)


@pytest.fixture(scope="session")
def mariadb() -> Server:
    require(mariadb_available(), "MariaDB/MySQL on 127.0.0.1:3306")
    return Server()


@pytest.fixture(scope="session")
def legacy_name(worker_id_suffix: str) -> str:
    return f"enque_legacy_{worker_id_suffix}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
async def legacy(mariadb: Server, s3_server: S3Server, legacy_name: str) -> AsyncIterator[Manifest]:
    """A small legacy database holding every edge case, and its bucket (read-only for tests)."""
    bucket = f"legacy-{os.getpid()}"
    s3_server.create_bucket(bucket)
    manifest = await build(mariadb, legacy_name, Scale(), s3=(s3_server, bucket))
    yield manifest
    await drop_database(mariadb, legacy_name)
