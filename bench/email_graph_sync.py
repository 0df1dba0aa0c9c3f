"""Microsoft Graph sync through the emulator: wall time and the number of Graph calls.

Delivers N messages (a fifth with a file attachment) to an emulated Microsoft 365 mailbox and
syncs it into tickets with one worker (delta pages of 50), then prints the wall time, the
messages/s and every Graph call by kind; the ceiling beside it is the delta paging alone (the
same pages fetched without ingesting).

    .venv/bin/python bench/email_graph_sync.py --messages 10000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enque import domains  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.db import new_id  # noqa: E402
from enque.core.migrate import upgrade  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.core.secrets import seal  # noqa: E402
from enque.mailboxes import sync  # noqa: E402
from enque.mailboxes.models import Mailbox  # noqa: E402
from tests.emulators.graph import GraphEmulator  # noqa: E402


def message(n: int, address: str) -> bytes:
    head = (
        f"From: Customer {n % 97} <c{n % 97}@customer.test>\r\nTo: {address}\r\n"
        f"Subject: Graph order {n}\r\nMessage-ID: <g{n}-{secrets.token_hex(4)}@customer.test>\r\n"
        "Date: Mon, 08 Jan 2024 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
    )
    text = f"Hello, order {n} is late. " * 20
    if n % 5:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()
    data = base64.encodebytes(secrets.token_bytes(30_000)).decode()
    return (
        head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--b\r\n"
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{data}\r\n--b--\r\n"
    ).encode()


async def run(count: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="enque-bench-graph-"))
    emulator = GraphEmulator()
    try:
        async with emulator.serve() as base_url:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=f"sqlite:///{data_dir}/bench.db",
                data_dir=str(data_dir),
                encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
                secret_key=secrets.token_hex(32),
                microsoft_client_id=emulator.client_id,
                microsoft_client_secret=emulator.client_secret,
                microsoft_tenant_id="organizations",
                microsoft_authority=base_url,
                microsoft_graph_url=base_url + "/v1.0",
                log_level="WARNING",
            )
            await upgrade(settings)
            runtime = Runtime.build(settings)
            for module in domains.hook_modules():
                if hasattr(module, "setup"):
                    module.setup(runtime)
            user = emulator.add_user("help@contoso.test", "Help")
            for n in range(count):
                emulator.deliver(user, message(n, user.mail))
            issued = emulator.tokens_for(user)
            async with runtime.db.session() as session:
                _, workspace = await create_workspace_with_admin(
                    session, email="bench@example.com", password="bench-password-1",
                    display_name="Bench", workspace_name="Bench", subdomain="bench",
                )  # fmt: skip
            async with runtime.db.transaction() as session:
                mailbox = Mailbox(
                    id=new_id(), workspace_id=workspace.id, email=user.mail,
                    display_name="Help", kind="microsoft", folder="inbox",
                    settings={"microsoft": {"user_id": user.id, "tenant": "organizations"}},
                )  # fmt: skip
                seal(runtime.cipher, mailbox, "credentials", {
                    "access_token": issued["access_token"],
                    "refresh_token": issued["refresh_token"],
                    "expires_at": int(time.time()) + 3600,
                })  # fmt: skip
                session.add(mailbox)

            async with httpx.AsyncClient() as http:
                graph = await sync.graph_client(runtime, mailbox, http)
                started = time.perf_counter()
                pages = 0
                async for _page in graph.delta("inbox", page_size=sync.DELTA_PAGE_SIZE):
                    pages += 1
                paging_s = time.perf_counter() - started
            emulator.calls.clear()
            started = time.perf_counter()
            report = await sync.sync_mailbox(runtime, mailbox.id)
            wall = time.perf_counter() - started
            assert report.error is None and report.fetched == count, report.as_dict()
            calls = dict(emulator.calls)
            print(f"Graph sync of {count} messages (1 worker, SQLite, pages of 50)")
            print(f"  delta paging only (ceiling): {paging_s:7.1f} s, {pages} pages")
            print(f"  sync into tickets:           {wall:7.1f} s, {count / wall:.1f} messages/s")
            print(f"  Graph calls: {sum(calls.values())} {calls}")
            await runtime.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10000)
    args = parser.parse_args()
    asyncio.run(run(args.messages))


if __name__ == "__main__":
    main()
