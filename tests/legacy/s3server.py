"""A real S3-protocol server for the legacy tests: moto's standalone server on 127.0.0.1.

Runs in its own process (stopped by its pid), so a generator uploading thousands of objects
does not share the interpreter with the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from obstore.store import S3Store

from tests.support.services import free_port

REGION = "us-east-2"
ACCESS_KEY = "legacy-test-key"
SECRET_KEY = "legacy-test-secret"


class MotoS3Server:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> MotoS3Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto server exited at start")
            try:
                httpx.get(self.endpoint + "/moto-api/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server not answering within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def create_bucket(self, name: str) -> None:
        body = (
            "<CreateBucketConfiguration><LocationConstraint>"
            f"{REGION}</LocationConstraint></CreateBucketConfiguration>"
        )
        response = httpx.put(f"{self.endpoint}/{name}", content=body, timeout=10)
        response.raise_for_status()

    def store(self, bucket: str) -> Any:
        """An obstore client of `bucket` on this server."""
        return S3Store(
            bucket,
            config={
                "endpoint": self.endpoint,
                "region": REGION,
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
            },
            client_options={"allow_http": True},
        )

    def storage_url(self, bucket: str) -> str:
        """The `--storage-from` form of `bucket` on this server."""
        return (
            f"s3://{bucket}?region={REGION}&endpoint={self.endpoint}"
            f"&access_key_id={ACCESS_KEY}&secret_access_key={SECRET_KEY}"
        )

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
