"""Private Redis and PostgreSQL servers on free loopback ports, for outage tests and benchmarks.

They can be stopped and started again at will without touching the machine's shared servers.
Each is stopped by its own pid (Redis) or data folder (`pg_ctl`), and its folder removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.services import free_port, port_open


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.02)


def _pg_tool(name: str) -> str | None:
    """A PostgreSQL program: on the PATH, or in the server's own folder (where Debian keeps
    initdb and pg_ctl), which `pg_config --bindir` names."""
    found = shutil.which(name)
    if found or shutil.which("pg_config") is None:
        return found
    folder = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout
    return shutil.which(name, path=folder.strip()) if folder.strip() else None


class PrivateRedis:
    """`redis-server` without persistence on its own port; `stop()` kills it like a crash."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="enque-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        args += ["--maxclients", "2000"]
        self.proc = subprocess.Popen(
            args,
            stdout=(self.dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port(self.port, 10)
        return self

    def stop(self) -> None:
        """SIGKILL: the server vanishes with its open connections, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (`initdb`, `pg_ctl`), its socket in its own folder.

    As root, the server programs run as the `postgres` OS user, which owns the folder.
    """

    def __init__(self, *, fsync: bool = True) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="enque-pg-"))
        self.data = self.dir / "data"
        self.fsync = fsync
        self._as_postgres = os.geteuid() == 0

    @staticmethod
    def available() -> bool:
        return all(_pg_tool(tool) for tool in ("initdb", "pg_ctl", "psql"))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        command = [*prefix, _pg_tool(tool) or tool, *args]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def init(self) -> PrivatePostgres:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        return self

    def start(self, timeout: float = 30, wait: bool = True) -> PrivatePostgres:
        """Start the server; with `wait=False`, return before it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
            f" -c fsync={'on' if self.fsync else 'off'}"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"),
            "-w" if wait else "-W", "-t", str(int(timeout)), "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every server process exits at once, as in a crash (WAL replay next)."""
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                _pg_tool("psql") or "psql",
                self.url(),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
