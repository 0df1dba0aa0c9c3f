"""Attachment throughput and server memory, on local disk and on an S3-protocol server.

For each backend: a 25 MB upload (`POST /v1/attachments`, streamed multipart) and download
(`GET /v1/attachments/{id}/content`; on S3 the 302 to the signed URL is followed), beside a
plain copy of the same bytes measured in the same run (a file copy for local disk, a direct
`put`/`get` against the same S3 server for S3). The server's resident memory is sampled
throughout; the last row streams 1 GB without a length, which must be refused with 413 while
memory stays flat.

    .venv/bin/python -m bench.storage_bench [--mb 25] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.harness import bench_env, scratch_dir, start_enque
from enque.core.storage import open_storage
from tests.support.s3 import S3Server

BOUNDARY = "benchboundary0123456789"
CHUNK = 256 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class MemoryWatch:
    """Samples a process's resident memory every 10 ms; `peak` since the last `reset`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return
            time.sleep(0.01)

    def reset(self) -> int:
        self.peak = rss_kb(self.pid)
        return self.peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def multipart(path: Path) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def endless(total: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="huge.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    chunk = os.urandom(CHUNK)
    for _ in range(total // CHUNK):
        yield chunk


@contextmanager
def timed(samples: list[float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    samples.append(time.perf_counter() - started)


def rate(mb: float, samples: list[float]) -> str:
    return f"{mb / statistics.median(samples):8.1f} MB/s"


async def register(client: httpx.AsyncClient) -> str:
    tag = os.urandom(4).hex()
    response = await client.post(
        "/v1/auth/register",
        json={
            "email": f"bench-{tag}@example.com",
            "password": "correct horse battery staple",
            "displayName": "Bench",
            "workspaceName": f"Bench {tag}",
            "subdomain": f"bench-{tag}",
        },
    )
    response.raise_for_status()
    return str(response.json()["data"]["token"])


async def run_backend(
    name: str, env: dict[str, str], source: Path, args: argparse.Namespace
) -> None:
    mb = args.mb
    size = mb * 1024 * 1024
    server = start_enque(env)
    watch = MemoryWatch(server.proc.pid)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
            token = await register(client)
            client.headers["Authorization"] = f"Bearer {token}"
            baseline = watch.reset()
            ups: list[float] = []
            downs: list[float] = []
            ids = []
            for _ in range(args.rounds):
                with timed(ups):
                    response = await client.post(
                        "/v1/attachments",
                        content=multipart(source),
                        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                    )
                response.raise_for_status()
                ids.append(response.json()["data"]["id"])
            up_peak = watch.peak
            watch.reset()
            for attachment_id in ids:
                with timed(downs):
                    got = 0
                    async with client.stream(
                        "GET", f"/v1/attachments/{attachment_id}/content"
                    ) as response:
                        if response.status_code == 302:
                            async with (
                                httpx.AsyncClient(timeout=300) as direct,
                                direct.stream("GET", response.headers["location"]) as signed,
                            ):
                                async for chunk in signed.aiter_bytes():
                                    got += len(chunk)
                        else:
                            async for chunk in response.aiter_bytes():
                                got += len(chunk)
                assert got == size, got
            down_peak = watch.peak
            watch.reset()
            status = 0
            try:
                response = await client.post(
                    "/v1/attachments",
                    content=endless(1024 * 1024 * 1024),
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                )
                status = response.status_code
            except httpx.HTTPError as exc:  # the server may close while the client still sends
                status = -1
                print(f"  (1 GB stream ended by the server: {type(exc).__name__})")
            huge_peak = watch.peak
        print(f"{name}: server RSS at rest {baseline / 1024:.0f} MB")
        print(f"  upload   {mb} MB via API  {rate(mb, ups)}   peak RSS {up_peak / 1024:6.0f} MB")
        print(
            f"  download {mb} MB via API  {rate(mb, downs)}   peak RSS {down_peak / 1024:6.0f} MB"
        )
        print(f"  1 GB upload refused: HTTP {status}           peak RSS {huge_peak / 1024:6.0f} MB")
    finally:
        watch.stop()
        server.stop()


def plain_local(source: Path, folder: Path, args: argparse.Namespace) -> None:
    copies: list[float] = []
    reads: list[float] = []
    for i in range(args.rounds):
        target = folder / f"copy{i}"
        with timed(copies):
            shutil.copyfile(source, target)
            with target.open("rb+") as handle:
                os.fsync(handle.fileno())
        with timed(reads), target.open("rb") as handle:
            while handle.read(CHUNK):
                pass
    print(f"local plain copy: write {rate(args.mb, copies)}   read {rate(args.mb, reads)}")


async def plain_s3(storage_url: str, source: Path, args: argparse.Namespace) -> None:
    storage = open_storage(storage_url)

    async def chunks() -> AsyncIterator[bytes]:
        with source.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    puts: list[float] = []
    gets: list[float] = []
    for i in range(args.rounds):
        with timed(puts):
            await storage.put(f"plain/{i}", chunks())
        with timed(gets):
            download = await storage.open(f"plain/{i}")
            async for _ in download.chunks:
                pass
    print(f"s3 plain put/get (no API): put {rate(args.mb, puts)}   get {rate(args.mb, gets)}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = scratch_dir()
    source = work / "source.bin"
    source.write_bytes(os.urandom(args.mb * 1024 * 1024))
    s3 = S3Server().start()
    try:
        print(f"{args.mb} MB file, median of {args.rounds} rounds\n")
        plain_local(source, work, args)
        local_dir = work / "local"
        local_dir.mkdir()
        await run_backend("local disk", bench_env(local_dir), source, args)
        print()
        bucket = "bench-" + os.urandom(3).hex()
        s3.create_bucket(bucket)
        await plain_s3(s3.storage_url(bucket), source, args)
        s3_dir = work / "s3"
        s3_dir.mkdir()
        env = bench_env(s3_dir, STORAGE_URL=s3.storage_url(bucket))
        await run_backend("s3 (moto_server)", env, source, args)
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
