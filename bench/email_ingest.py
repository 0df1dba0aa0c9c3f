"""Email ingest rate from Dovecot into tickets, beside the raw IMAP fetch and parse rates of the
same messages measured in the same run (the ceiling), and the outbound reply rate over SMTP.
Beside each rate, the CPU time of this process per message (steadier than rates on a busy
machine; the IMAP and SMTP servers' own CPU is not in it).

Starts a private Dovecot on 127.0.0.1, delivers N mixed messages (new conversations, replies
threaded by In-Reply-To, some with attachments), then: (1) fetches them all over IMAP without
storing anything, (2) parses them, (3) syncs the mailbox into tickets with one worker, counting
the SQL statements it sends.

    .venv/bin/python bench/email_ingest.py                  # SQLite, 500 messages
    .venv/bin/python bench/email_ingest.py --db postgres --messages 1000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import random
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from enque import domains  # noqa: E402
from enque.activity.service import Actor  # noqa: E402
from enque.auth.service import create_workspace_with_admin  # noqa: E402
from enque.comments.service import add_reply  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.db import new_id  # noqa: E402
from enque.core.migrate import upgrade  # noqa: E402
from enque.core.runtime import Runtime  # noqa: E402
from enque.core.secrets import seal  # noqa: E402
from enque.email.imap import ImapClient  # noqa: E402
from enque.email.parse import parse_message  # noqa: E402
from enque.mailboxes import sync  # noqa: E402
from enque.mailboxes.models import Mailbox  # noqa: E402
from enque.mailboxes.outbound import Outbox  # noqa: E402
from enque.mailboxes.service import imap_settings, tls_context  # noqa: E402
from enque.tickets.models import Ticket  # noqa: E402
from tests.email.dovecot import Dovecot  # noqa: E402
from tests.email.smtpd import AuthSmtpServer  # noqa: E402
from tests.support.services import create_pg_database, drop_pg_database  # noqa: E402
from tests.support.statements import statements  # noqa: E402


def messages(count: int, address: str) -> list[bytes]:
    rng = random.Random(7)
    ids: list[str] = []
    out = []
    for n in range(count):
        mid = f"{uuid.uuid4().hex}@customer.test"
        head = [
            f"From: Customer {n % 50} <c{n % 50}@customer.test>",
            f"To: {address}",
            f"Subject: Order {n} question",
            "Date: Mon, 08 Jan 2024 10:00:00 +0100",
            f"Message-ID: <{mid}>",
            "MIME-Version: 1.0",
        ]
        if ids and n % 3 == 1:
            parent = ids[rng.randrange(len(ids))]
            head += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
        text = f"Hello,\r\n\r\nmy order {n} has a problem.\r\n" + "More detail. " * rng.randint(
            5, 200
        )
        if n % 5 == 0:
            data = base64.encodebytes(secrets.token_bytes(rng.choice([20_000, 200_000]))).decode()
            body = (
                'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                f"{text}\r\n--b\r\nContent-Type: application/pdf\r\n"
                'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{data}\r\n--b--\r\n"
            )
            raw = "\r\n".join(head) + "\r\n" + body
        else:
            raw = (
                "\r\n".join([*head, "Content-Type: text/plain; charset=utf-8"]) + "\r\n\r\n" + text
            )
        ids.append(mid)
        out.append(raw.encode())
    return out


async def run(db: str, count: int, replies: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="enque-bench-dovecot-"))
    data_dir = Path(tempfile.mkdtemp(prefix="enque-bench-"))
    server = Dovecot(root).start()
    smtp = AuthSmtpServer({"mailer": "pw"}).start()
    pg_name = f"enque_bench_email_{uuid.uuid4().hex[:8]}"
    url = create_pg_database(pg_name) if db == "postgres" else f"sqlite:///{data_dir}/bench.db"
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            data_dir=str(data_dir),
            encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            secret_key=secrets.token_hex(32),
            log_level="WARNING",
        )
        await upgrade(settings)
        runtime = Runtime.build(settings)
        for module in domains.hook_modules():
            if hasattr(module, "setup"):
                module.setup(runtime)
        user, password = server.add_user()
        address = "support@bench.test"
        raws = messages(count, address)
        for raw in raws:
            server.deliver(user, raw)
        total_mb = sum(len(r) for r in raws) / 1e6
        async with runtime.db.session() as session:
            _, workspace = await create_workspace_with_admin(
                session, email="bench@example.com", password="bench-password-1",
                display_name="Bench", workspace_name="Bench", subdomain="bench",
            )  # fmt: skip
        async with runtime.db.transaction() as session:
            mailbox = Mailbox(
                id=new_id(), workspace_id=workspace.id, email=address, display_name="Support",
                kind="imap", folder="INBOX",
                settings={
                    "imap": {"host": "127.0.0.1", "port": server.port, "security": "none",
                             "username": user},
                    "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none",
                             "username": "mailer"},
                },
            )  # fmt: skip
            seal(runtime.cipher, mailbox, "credentials",
                 {"imap_password": password, "smtp_password": "pw"})  # fmt: skip
            session.add(mailbox)

        started, cpu = time.perf_counter(), time.process_time()
        fetched: list[bytes] = []
        async with ImapClient(imap_settings(runtime, mailbox), tls_context(runtime)) as imap:
            await imap.select()
            async for batch in imap.fetch_new(0):
                fetched += [m.raw for m in batch]
        fetch_s, fetch_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        for raw in fetched:
            parse_message(raw)
        parse_s, parse_cpu = time.perf_counter() - started, time.process_time() - cpu

        with statements(runtime) as sent_sql:
            started, cpu = time.perf_counter(), time.process_time()
            report = await sync.sync_mailbox(runtime, mailbox.id)
            ingest_s, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert report.fetched == count and report.error is None, report.as_dict()

        async with runtime.db.session(write=False) as session:
            ticket_ids = list(
                (
                    await session.execute(
                        select(Ticket.id).where(Ticket.workspace_id == workspace.id)
                    )
                ).scalars()
            )
        outbox: Outbox = runtime.services["email_outbox"]
        started = time.perf_counter()
        for n in range(replies):
            async with runtime.db.session() as session:
                await add_reply(
                    session, workspace_id=workspace.id, actor=Actor("system"),
                    ticket_id=ticket_ids[n % len(ticket_ids)], content=f"<p>Answer {n}</p>",
                )  # fmt: skip
        await outbox.drain()
        reply_s = time.perf_counter() - started
        sent = len(smtp.messages)

        def cpu_ms(seconds: float) -> str:
            return f"{1000 * seconds / count:6.2f} ms CPU/message"

        print(f"database: {db}; {count} messages, {total_mb:.1f} MB, 1 worker")
        print(f"  raw IMAP fetch (ceiling): {count / fetch_s:8.1f} messages/s, {cpu_ms(fetch_cpu)}")
        print(f"  parse only:               {count / parse_s:8.1f} messages/s, {cpu_ms(parse_cpu)}")
        print(
            f"  ingest into tickets:      {count / ingest_s:8.1f} messages/s, "
            f"{cpu_ms(ingest_cpu)} ({(count / ingest_s) / (count / fetch_s):.2f} of the fetch "
            f"rate); {report.as_dict()}"
        )
        print(f"  SQL statements per ingested message: {len(sent_sql) / count:.2f}")
        print(f"  replies through SMTP:     {sent / reply_s:8.1f} replies/s ({sent} sent)")
        await runtime.close()
    finally:
        server.stop()
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        if db == "postgres":
            drop_pg_database(pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--replies", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's deprecation notices
    asyncio.run(run(args.db, args.messages, args.replies))


if __name__ == "__main__":
    main()
