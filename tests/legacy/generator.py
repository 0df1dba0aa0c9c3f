"""Builds a live old-Enque database on MariaDB/MySQL, with its S3 objects, at any scale.

The schema is the legacy contract shipped beside this file (`mysql-schema.sql`). Besides the
bulk data (workspaces, agents, customers, tickets with bodies, comments, attachments…),
every build holds every edge case of the migration spec, and `Manifest.edge` names the row
of each. Secrets and password hashes are made the way the old system made them, written
here independently of the migration code that reads them.

    manifest = await build(Server(), "legacy_x", Scale(), s3=(server, "legacy-files"))
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import itertools
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncmy
import bcrypt
import obstore
import orjson
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from enque.migrate.legacy_schema import TABLES

SCHEMA_FILE = Path(__file__).with_name("mysql-schema.sql")
REGION = "us-east-2"
ZERO_DATE = "0000-00-00 00:00:00"
PARTIAL_DATE = "2019-00-10 00:00:00"
PLACEHOLDER = "TEMP_ATTACHMENT_PLACEHOLDER"
MISSING_ID = 9_000_000  # ids past every generated one: targets of the orphans
BASE_TIME = datetime(2022, 1, 3, 8, 0, 0)

PASSWORD_2B = "legacy-pass-2b"
PASSWORD_2Y = "legacy-pass-2y"
PASSWORD_LONG = "long-passphrase-" + "é" * 30 + "-🔐🔐-" + "x" * 40  # > 72 bytes
PASSWORD_AGENT = "legacy-agent-pass"
LEGACY_KEY = "old-enque-encryption-key"

EMOJI_TITLE = "🚀 Launch blocked 😀 — עזרה דחופה / مساعدة عاجلة"
RTL_TEXT = "שלום, יש לי בעיה עם החשבון. مرحبا، لدي مشكلة في الحساب"
NAMES = [
    "Ana García",
    "Bob Smith",
    "Zoë Lefèvre 🌟",
    "דנה כהן",
    "محمد علي",
    "Li Wei",
    "Olga Ivanova",
    "Kwame Mensah",
    "Sean O'Brien",
    "Priya Nair",
]
WORDS = [
    "invoice",
    "order",
    "account",
    "password",
    "login",
    "error",
    "printer",
    "network",
    "vpn",
    "laptop",
    "refund",
    "delivery",
    "contract",
    "renewal",
    "license",
    "update",
    "outage",
    "email",
    "calendar",
    "access",
    "request",
    "urgent",
    "please",
    "thanks",
    "hello",
    "issue",
    "again",
    "broken",
    "slow",
    "screen",
    "report",
    "team",
]


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""

    def url(self, database: str) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"mysql://{auth}@{self.host}:{self.port}/{database}"

    async def connect(self, database: str | None = None) -> asyncmy.Connection:
        return await asyncmy.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
        )


@dataclass(frozen=True)
class Scale:
    """How much bulk data to make (the edge cases are always made)."""

    workspaces: int = 2
    agents: int = 4  # per workspace, besides its admin and its system agent
    teams: int = 2  # per workspace
    companies: int = 3  # per workspace
    users: int = 12  # per workspace
    tickets: int = 40
    comments_per_ticket: int = 4
    attachments: int = 16
    s3_attachment_share: float = 0.5
    s3_html_comments: int = 4
    automations: int = 2  # per workspace
    seed: int = 7


BENCHMARK = Scale(
    workspaces=10,
    agents=40,
    teams=5,
    companies=100,
    users=3000,
    tickets=100_000,
    comments_per_ticket=10,
    attachments=20_000,
    s3_attachment_share=0.3,
    s3_html_comments=1000,
    automations=5,
)


def benchmark_scale(tickets: int) -> Scale:
    """`BENCHMARK` in proportion to `tickets` (the benches' `--tickets`)."""
    ratio = tickets / BENCHMARK.tickets
    return dataclasses.replace(
        BENCHMARK,
        tickets=tickets,
        attachments=max(16, int(BENCHMARK.attachments * ratio)),
        s3_html_comments=max(4, int(BENCHMARK.s3_html_comments * ratio)),
        users=max(50, int(BENCHMARK.users * ratio)),
    )


@dataclass
class Manifest:
    """What a build made: names of the edge rows, known passwords, S3 keys, row counts."""

    database: str
    url: str
    bucket: str | None
    legacy_key: str = LEGACY_KEY
    passwords: dict[str, str] = field(default_factory=dict)  # agent email → password
    edge: dict[str, int] = field(default_factory=dict)
    s3_objects: dict[str, int] = field(default_factory=dict)  # key → size
    missing_s3_key: str | None = None
    inline_image_key: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- the old system's ways


def legacy_fernet(secret: str) -> Fernet:
    """Fernet with the key the old system derived (PBKDF2-SHA256, 100,000 rounds)."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"enque-salt_", iterations=100_000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(secret.encode())))


def legacy_bcrypt(password: str, prefix: str = "$2b$") -> str:
    """bcrypt as the old system stored it: over 72 bytes, of the SHA-256 hex digest."""
    raw = password.encode()
    if len(raw) > 72:
        raw = hashlib.sha256(raw).hexdigest().encode()
    hashed = bcrypt.hashpw(raw, bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


def s3_url(bucket: str, key: str) -> str:
    return f"https://{bucket}.s3.{REGION}.amazonaws.com/{key}"


def when(offset_seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=int(offset_seconds))).strftime("%Y-%m-%d %H:%M:%S")


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


# ---------------------------------------------------------------- database


async def create_database(server: Server, name: str) -> None:
    """A fresh database `name` holding the legacy schema (an old one of that name is dropped)."""
    conn = await server.connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            await cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
            await cur.execute(f"USE `{name}`")
            for statement in SCHEMA_FILE.read_text().split(";\n"):
                if statement.strip():
                    await cur.execute(statement)
    finally:
        conn.close()


async def drop_database(server: Server, name: str) -> None:
    conn = await server.connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


class Writer:
    """Bulk inserts (multi-row, MariaDB bulk protocol) in batches of bounded size."""

    def __init__(self, conn: asyncmy.Connection, counts: dict[str, int]) -> None:
        self.conn = conn
        self.counts = counts

    async def insert(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        columns = list(TABLES[table])
        sql = (
            f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})"
        )
        batch: list[tuple[Any, ...]] = []
        size = 0
        for row in rows:
            unknown = set(row) - set(columns)
            assert not unknown, f"{table}: unknown columns {unknown}"
            values = tuple(row.get(c) for c in columns)
            batch.append(values)
            size += sum(len(v) for v in values if isinstance(v, str | bytes)) + 16 * len(values)
            if len(batch) >= 5000 or size > 4_000_000:
                await self._flush(sql, table, batch)
                batch, size = [], 0
        if batch:
            await self._flush(sql, table, batch)

    async def _flush(self, sql: str, table: str, batch: list[tuple[Any, ...]]) -> None:
        async with self.conn.cursor() as cur:
            if any(len(v) > 1_000_000 for row in batch for v in row if isinstance(v, str)):
                for row in batch:  # multi-MB values go one statement each
                    await cur.execute(sql, row)
            else:
                await cur.executemany(sql, batch)
        await self.conn.commit()
        self.counts[table] = self.counts.get(table, 0) + len(batch)


# ---------------------------------------------------------------- the builder


class Builder:
    def __init__(self, scale: Scale, manifest: Manifest) -> None:
        self.scale = scale
        self.m = manifest
        self.rng = random.Random(scale.seed)
        self.fernet = legacy_fernet(LEGACY_KEY)
        self.uploads: dict[str, bytes] = {}
        self.next_id: dict[str, int] = {}
        self.ws_agents: dict[int, list[int]] = {}
        self.ws_system: dict[int, int] = {}
        self.ws_teams: dict[int, list[int]] = {}
        self.ws_users: dict[int, list[tuple[int, str, str, int | None]]] = {}
        self.ws_companies: dict[int, list[int]] = {}
        self.ws_categories: dict[int, list[int]] = {}
        self.ws_mailbox: dict[int, int] = {}
        self.agent_email: dict[int, str] = {}
        self.team_name: dict[int, str] = {}
        self.null_ids: dict[str, int] = {}
        self.comment_ids: list[int] = []
        self.replies: list[tuple[int, int]] = []  # (comment, workspace) with an activity
        self.paragraphs = [self._paragraph() for _ in range(64)]

    # -- helpers

    def new_id(self, table: str) -> int:
        value = self.next_id.get(table, 1)
        self.next_id[table] = value + 1
        return value

    def _paragraph(self) -> str:
        words = [self.rng.choice(WORDS) for _ in range(self.rng.randint(12, 120))]
        return " ".join(words).capitalize() + "."

    def html(self, parts: int = 2) -> str:
        body = "".join(f"<p>{self.rng.choice(self.paragraphs)}</p>" for _ in range(parts))
        return f"<div>{body}</div>"

    def upload(self, key: str, data: bytes) -> str:
        """Queue an object for the legacy bucket; returns its legacy URL."""
        self.uploads[key] = data
        self.m.s3_objects[key] = len(data)
        return s3_url(self.m.bucket or "legacy", key)

    def encrypted(self, value: str) -> str:
        return self.fernet.encrypt(value.encode()).decode()

    # -- tables

    def workspaces(self) -> Iterator[dict[str, Any]]:
        for w in range(1, self.scale.workspaces + 1):
            self.new_id("workspaces")
            yield {"id": w, "subdomain": f"legacy{w}", "created_at": when(w), "updated_at": when(w)}

    def agents(self) -> Iterator[dict[str, Any]]:
        hash_2b = legacy_bcrypt(PASSWORD_2B)
        hash_agent = legacy_bcrypt(PASSWORD_AGENT)
        for w in range(1, self.scale.workspaces + 1):
            ids = []
            system = self.new_id("agents")
            self.ws_system[w] = system
            yield self._agent(
                system, w, "Enque System", f"system@legacy{w}.enque.test", None, "agent"
            )
            admin = self.new_id("agents")
            email = f"admin@legacy{w}.test"
            self.m.passwords[email] = PASSWORD_2B
            ids.append(admin)
            yield self._agent(admin, w, f"Admin {w}", email, hash_2b, "admin")
            for n in range(self.scale.agents):
                agent = self.new_id("agents")
                ids.append(agent)
                email = f"agent{n}@legacy{w}.test"
                role = "manager" if n == 0 else "agent"
                yield self._agent(agent, w, self.rng.choice(NAMES), email, hash_agent, role)
            if self.scale.agents:
                self.m.passwords[f"agent0@legacy{w}.test"] = PASSWORD_AGENT
            self.ws_agents[w] = ids
        # edge agents, workspace 1
        y = self.new_id("agents")
        self.m.edge["agent_2y"] = y
        self.m.passwords["y-hash@legacy1.test"] = PASSWORD_2Y
        yield self._agent(
            y, 1, "Yara 2y", "y-hash@legacy1.test", legacy_bcrypt(PASSWORD_2Y, "$2y$"), "agent"
        )
        long = self.new_id("agents")
        self.m.edge["agent_long_password"] = long
        self.m.passwords["long-pass@legacy1.test"] = PASSWORD_LONG
        yield self._agent(
            long, 1, "Long Pass", "long-pass@legacy1.test", legacy_bcrypt(PASSWORD_LONG), "agent"
        )
        ms = self.new_id("agents")
        self.m.edge["agent_microsoft"] = ms
        row = self._agent(ms, 1, "Mia Microsoft", "mia@legacy1.test", None, "agent")
        row.update(
            auth_method="microsoft",
            microsoft_id=str(uuid.UUID(int=ms)),
            microsoft_email="mia@legacy1.onmicrosoft.com",
            microsoft_tenant_id="tenant-legacy-1",
            microsoft_refresh_token=self.encrypted("agent-refresh-token-mia"),
            microsoft_profile_data="{'displayName': 'Mia', broken",  # invalid JSON
            last_login=ZERO_DATE,
        )
        yield row
        self.ws_agents[1] += [y, long, ms]

    def _agent(
        self, agent_id: int, w: int, name: str, email: str, password: str | None, role: str
    ) -> dict[str, Any]:
        self.agent_email[agent_id] = email
        return {
            "id": agent_id,
            "name": name,
            "email": email,
            "password": password,
            "role": role,
            "auth_method": "password",
            "is_active": 1,
            "teams_notifications_enabled": 0,
            "workspace_id": w,
            "job_title": "Support",
            "last_login": when(agent_id * 50),
            "created_at": when(agent_id),
            "updated_at": when(agent_id + 10),
        }

    def teams(self) -> Iterator[dict[str, Any]]:
        for w in range(1, self.scale.workspaces + 1):
            self.ws_teams[w] = []
            for n in range(self.scale.teams):
                team = self.new_id("teams")
                name = ["Tier 1", "Tier 2", "Billing", "Field", "VIP"][n % 5] + (
                    f" {n}" if n >= 5 else ""
                )
                self.ws_teams[w].append(team)
                self.team_name[team] = name
                yield {
                    "id": team,
                    "name": name,
                    "description": f"{name} team",
                    "icon_name": "users",
                    "workspace_id": w,
                    "manager_id": self.ws_agents[w][0],
                    "created_at": when(team),
                    "updated_at": when(team),
                }

    def team_members(self) -> Iterator[dict[str, Any]]:
        for w, agents in self.ws_agents.items():
            for i, agent in enumerate(agents):
                yield {
                    "id": self.new_id("team_members"),
                    "team_id": self.ws_teams[w][i % len(self.ws_teams[w])],
                    "agent_id": agent,
                    "created_at": when(agent),
                }

    def companies(self) -> Iterator[dict[str, Any]]:
        for w in range(1, self.scale.workspaces + 1):
            self.ws_companies[w] = []
            for _ in range(self.scale.companies):
                company = self.new_id("companies")
                self.ws_companies[w].append(company)
                yield {
                    "id": company,
                    "name": f"Company {company}",
                    "workspace_id": w,
                    "email_domain": f"company{company}.example",
                    # primary contact: the company's first customer (users ↔ companies cycle)
                    "primary_contact_id": None,
                    "account_manager_id": self.ws_agents[w][0],
                    "created_at": when(company),
                    "updated_at": when(company),
                }

    def users(self) -> Iterator[dict[str, Any]]:
        for w in range(1, self.scale.workspaces + 1):
            self.ws_users[w] = []
            for n in range(self.scale.users):
                user = self.new_id("users")
                company = self.ws_companies[w][n % len(self.ws_companies[w])] if n % 4 else None
                domain = f"company{company}.example" if company else "mail.example"
                email = f"customer{user}@{domain}"
                name = self.rng.choice(NAMES)
                self.ws_users[w].append((user, name, email, company))
                yield {
                    "id": user,
                    "name": name,
                    "email": email,
                    "company_id": company,
                    "workspace_id": w,
                    "phone": "+1 555 0100" if n % 3 == 0 else None,
                    "created_at": when(user),
                    "updated_at": when(user),
                }
        # the same address in two workspaces: a user in 1, an unassigned user in 2
        dup = self.new_id("users")
        self.m.edge["user_duplicated_email"] = dup
        self.ws_users[1].append((dup, "Dup Licate", "dup@shared.example", None))
        yield {
            "id": dup,
            "name": "Dup Licate",
            "email": "dup@shared.example",
            "workspace_id": 1,
            "created_at": when(dup),
            "updated_at": when(dup),
        }
        rtl = self.new_id("users")
        self.m.edge["user_rtl"] = rtl
        self.ws_users[1].append((rtl, "دانا כהן", "rtl@mail.example", None))
        yield {
            "id": rtl,
            "name": "دانا כהן",
            "email": "rtl@mail.example",
            "workspace_id": 1,
            "created_at": ZERO_DATE,
            "updated_at": PARTIAL_DATE,
        }

    def unassigned_users(self) -> Iterator[dict[str, Any]]:
        row = self.new_id("unassigned_users")
        self.m.edge["unassigned_duplicated_email"] = row
        yield {
            "id": row,
            "name": "Dup Licate (ws 2)",
            "email": "dup@shared.example",
            "workspace_id": min(2, self.scale.workspaces),
            "created_at": when(5),
        }
        for w in range(1, self.scale.workspaces + 1):
            row = self.new_id("unassigned_users")
            yield {
                "id": row,
                "name": "Walk In",
                "email": f"walkin{w}@mail.example",
                "workspace_id": w,
                "created_at": when(row),
            }

    def company_contacts(self) -> list[tuple[int, int]]:
        """(company, user) pairs for the primary contacts, set after both tables exist."""
        pairs = []
        for users in self.ws_users.values():
            for user, _, _, company in users:
                if company is not None and company not in {c for c, _ in pairs}:
                    pairs.append((company, user))
        return pairs

    def categories(self) -> Iterator[dict[str, Any]]:
        for w in range(1, self.scale.workspaces + 1):
            self.ws_categories[w] = []
            for name in ("Billing", "Technical", "Sales"):
                category = self.new_id("categories")
                self.ws_categories[w].append(category)
                yield {
                    "id": category,
                    "name": name,
                    "workspace_id": w,
                    "created_at": when(category),
                    "updated_at": when(category),
                }

    def microsoft_integration(self) -> Iterator[dict[str, Any]]:
        self.m.edge["integration"] = self.new_id("microsoft_integration")
        yield {
            "id": self.m.edge["integration"],
            "tenant_id": "tenant-legacy-1",
            "client_id": "legacy-client-id",
            "client_secret": self.encrypted("legacy-client-secret"),
            "redirect_uri": "https://app.old-enque.example/auth/callback",
            "scope": "offline_access Mail.ReadWrite Mail.Send",
            "is_active": 1,
            "created_at": when(1),
            "updated_at": when(2),
        }

    def mailbox_connections(self) -> Iterator[dict[str, Any]]:
        for w in range(1, self.scale.workspaces + 1):
            mailbox = self.new_id("mailbox_connections")
            self.ws_mailbox[w] = mailbox
            yield {
                "id": mailbox,
                "email": f"support@legacy{w}.test",
                "display_name": f"Support {w}",
                "workspace_id": w,
                "created_by_agent_id": self.ws_agents[w][0],
                "is_global": 0,
                "is_active": 1,
                "created_at": when(mailbox),
                "updated_at": when(mailbox),
            }

    def mailbox_team_assignments(self) -> Iterator[dict[str, Any]]:
        for w, mailbox in self.ws_mailbox.items():
            yield {
                "id": self.new_id("mailbox_team_assignments"),
                "mailbox_connection_id": mailbox,
                "team_id": self.ws_teams[w][0],
                "created_at": when(w),
            }
        if len(self.ws_teams[1]) > 1:  # the new system gives a mailbox one team
            self.m.edge["mailbox_second_team"] = self.new_id("mailbox_team_assignments")
            yield {
                "id": self.m.edge["mailbox_second_team"],
                "mailbox_connection_id": self.ws_mailbox[1],
                "team_id": self.ws_teams[1][1],
                "created_at": when(3),
            }

    def microsoft_tokens(self) -> Iterator[dict[str, Any]]:
        for w, mailbox in self.ws_mailbox.items():
            token = self.new_id("microsoft_tokens")
            access, refresh = f"access-token-mailbox-{w}", f"refresh-token-mailbox-{w}"
            if w == 1:  # encrypted with the old key; the others predate encryption
                access, refresh = self.encrypted(access), self.encrypted(refresh)
                self.m.edge["token_encrypted"] = token
            else:
                self.m.edge["token_plaintext"] = token
            yield {
                "id": token,
                "integration_id": self.m.edge["integration"],
                "agent_id": None,
                "mailbox_connection_id": mailbox,
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "Bearer",
                "expires_at": when(86_400 * 400),
                "created_at": when(token),
                "updated_at": when(token),
            }
        token = self.new_id("microsoft_tokens")
        yield {
            "id": token,
            "integration_id": self.m.edge["integration"],
            "agent_id": self.m.edge["agent_microsoft"],
            "mailbox_connection_id": None,
            "access_token": self.encrypted("access-token-mia"),
            "refresh_token": self.encrypted("refresh-token-mia"),
            "token_type": "Bearer",
            "expires_at": ZERO_DATE,
            "created_at": when(token),
            "updated_at": when(token),
        }

    def email_sync_config(self) -> Iterator[dict[str, Any]]:
        for w, mailbox in self.ws_mailbox.items():
            yield {
                "id": self.new_id("email_sync_config"),
                "integration_id": self.m.edge["integration"],
                "mailbox_connection_id": mailbox,
                "folder_name": "Inbox",
                "sync_interval": 3,
                "last_sync_time": when(9_000_000),
                "default_priority": "Medium",
                "auto_assign": 0,
                "workspace_id": w,
                "is_active": 1,
                "created_at": when(w),
                "updated_at": when(w),
            }

    # -- tickets and their conversation

    def _ticket(self, ticket: int, w: int, offset: float) -> dict[str, Any]:
        user, name, email, company = self.rng.choice(self.ws_users[w])
        agents = self.ws_agents[w]
        return {
            "id": ticket,
            "title": f"{self.rng.choice(WORDS).capitalize()} {self.rng.choice(WORDS)} problem",
            "description": self.rng.choice(self.paragraphs)[:200],
            "status": self.rng.choice(["Unread", "Open", "With User", "In Progress", "Closed"]),
            "priority": self.rng.choice(["Low", "Medium", "Medium", "High", "Critical"]),
            "assignee_id": self.rng.choice(agents) if ticket % 5 else None,
            "team_id": self.rng.choice(self.ws_teams[w]),
            "created_at": when(offset),
            "updated_at": when(offset + 3600),
            "last_update": when(offset + 3600),
            "user_id": user,
            "company_id": company,
            "workspace_id": w,
            "is_deleted": 0,
            "is_read": ticket % 2,
            "mailbox_connection_id": self.ws_mailbox[w],
            "category_id": self.rng.choice(self.ws_categories[w]),
            "email_message_id": f"AAMkAD{ticket:010d}",
            "email_internet_message_id": f"<t{ticket}.{w}@mail.example>",
            "email_conversation_id": f"AAQkAD{ticket:010d}",
            "email_sender": f"{name} <{email}>",
            "to_recipients": f"support@legacy{w}.test",
            "cc_recipients": None,
            "bcc_recipients": None,
            "is_merged": 0,
        }

    def tickets(self) -> Iterator[dict[str, Any]]:
        per_second = 86_400 * 700 / max(self.scale.tickets, 1)
        self.ticket_ws: dict[int, int] = {}
        for n in range(self.scale.tickets):
            ticket = self.new_id("tickets")
            w = n % self.scale.workspaces + 1
            self.ticket_ws[ticket] = w
            yield self._ticket(ticket, w, n * per_second)
        yield from self._edge_tickets()

    def _edge_tickets(self) -> Iterator[dict[str, Any]]:
        def edge(name: str, **changes: Any) -> dict[str, Any]:
            ticket = self.new_id("tickets")
            self.m.edge[name] = ticket
            self.ticket_ws[ticket] = 1
            row = self._ticket(ticket, 1, 86_400 * 710)
            row.update(changes)
            return row

        yield edge(
            "ticket_zero_dates",
            created_at=ZERO_DATE,
            updated_at=PARTIAL_DATE,
            due_date=ZERO_DATE,
            last_update=ZERO_DATE,
        )
        yield edge("ticket_emoji_rtl", title=EMOJI_TITLE, description=RTL_TEXT)
        yield edge("ticket_big_body")
        yield edge("ticket_missing_agent", assignee_id=MISSING_ID, sent_from_id=MISSING_ID)
        yield edge("ticket_bad_status", status="Pending", priority="Urgent")  # stored as ''
        yield edge(
            "ticket_merged",
            is_merged=1,
            merged_to_ticket_id=self.m.edge["ticket_emoji_rtl"],
            merged_at=when(86_400 * 711),
            merged_by_agent_id=self.ws_agents[1][0],
        )
        yield edge("ticket_deleted", is_deleted=1, deleted_at=when(86_400 * 712))
        yield edge(
            "ticket_recipients",
            to_recipients='support@legacy1.test, "Doe, Jane" <jane@customer.example>',
            cc_recipients='<span style="color:red">boss@customer.example</span>; Ops Team '
            '<ops@customer.example>, not an address, <a href="mailto:x@y.example">x@y.example</a>',
            bcc_recipients="&lt;audit@customer.example&gt;",
            email_sender="<b>Jane Doe</b> <jane@customer.example>",
        )
        yield edge("ticket_legacy_body")  # its first message only in ticket_bodies

    def ticket_bodies(self) -> Iterator[dict[str, Any]]:
        for ticket in range(1, self.scale.tickets + 1, 2):
            yield {
                "id": self.new_id("ticket_bodies"),
                "ticket_id": ticket,
                "email_body": self.html(self.rng.randint(1, 4)),
            }
        big = (
            "<html><body>"
            + "".join(f"<p>{i} {self.paragraphs[i % 64]} 😀 {RTL_TEXT}</p>" for i in range(6000))
            + "</body></html>"
        )
        assert len(big.encode()) > 3_000_000
        yield {
            "id": self.new_id("ticket_bodies"),
            "ticket_id": self.m.edge["ticket_big_body"],
            "email_body": big,
        }
        yield {
            "id": self.new_id("ticket_bodies"),
            "ticket_id": self.m.edge["ticket_legacy_body"],
            "email_body": "<p>The original request, kept only in the ticket body.</p>",
        }
        yield {
            "id": self.new_id("ticket_bodies"),
            "ticket_id": self.m.edge["ticket_emoji_rtl"],
            "email_body": f"<p>{EMOJI_TITLE}</p><p dir='rtl'>{RTL_TEXT}</p>",
        }

    def _customer(self, w: int) -> tuple[int, str, str, int | None]:
        return self.rng.choice(self.ws_users[w])

    def comments(self) -> Iterator[dict[str, Any]]:
        s3_every = max(
            1,
            (self.scale.tickets * self.scale.comments_per_ticket)
            // max(self.scale.s3_html_comments, 1),
        )
        per_ticket = 86_400 * 700 / max(self.scale.tickets, 1)
        for ticket in range(1, self.scale.tickets + 1):
            w = self.ticket_ws[ticket]
            _, name, email, _ = self._customer(w)
            for n in range(self.scale.comments_per_ticket):
                comment = self.new_id("comments")
                self.comment_ids.append(comment)
                if n == 1 and ticket % 5 == 0:
                    self.replies.append((comment, w))
                customer = n % 3 == 0
                content = self.html(1 + n % 3)
                if customer:
                    content = f"<original-sender>{name}|{email}</original-sender>{content}"
                row = {
                    "id": comment,
                    "ticket_id": ticket,
                    "workspace_id": w,
                    "agent_id": self.ws_system[w]
                    if customer
                    else self.rng.choice(self.ws_agents[w]),
                    "to_recipients": None if customer else email,
                    "other_destinaries": "cc@customer.example" if n == 1 else None,
                    "bcc_recipients": None,
                    "content": content,
                    "is_private": 0 if customer else int(n % 4 == 2),
                    "created_at": when((ticket - 1) * per_ticket + 600 * (n + 1)),
                    "updated_at": when((ticket - 1) * per_ticket + 600 * (n + 1)),
                }
                if comment % s3_every == 0 and self.m.bucket:
                    key = f"comments/comment-{comment}.html"
                    url = self.upload(key, content.encode())
                    row["content"] = f"[MIGRATED_TO_S3] Content moved to S3: {url}"
                    row["s3_html_url"] = url
                yield row
        yield from self._edge_comments()

    def _edge_comments(self) -> Iterator[dict[str, Any]]:
        ticket = self.m.edge["ticket_emoji_rtl"]
        system = self.ws_system[1]
        agent = self.ws_agents[1][0]
        _, name, email, _ = self.ws_users[1][0]

        def edge(label: str, **values: Any) -> dict[str, Any]:
            comment = self.new_id("comments")
            self.m.edge[label] = comment
            row = {
                "id": comment,
                "ticket_id": ticket,
                "workspace_id": 1,
                "agent_id": agent,
                "is_private": 0,
                "created_at": when(86_400 * 710 + comment),
                "updated_at": when(86_400 * 710 + comment),
            }
            row.update(values)
            return row

        yield edge("comment_orphan", ticket_id=MISSING_ID, content="<p>My ticket is gone</p>")
        yield edge(
            "comment_emoji_rtl",
            agent_id=system,
            content=f"<original-sender>{name}|{email}</original-sender>"
            f"<p>{EMOJI_TITLE}</p><p dir='rtl'>{RTL_TEXT}</p>",
        )
        if self.m.bucket:
            big = f"<original-sender>{name}|{email}</original-sender>" + "".join(
                f"<p>{self.paragraphs[i % 64]} 🚀</p>" for i in range(4000)
            )
            key = "comments/temp-comment-big.html"
            url = self.upload(key, big.encode())
            yield edge(
                "comment_s3_big",
                agent_id=system,
                s3_html_url=url,
                content=f"[MIGRATED_TO_S3] Content moved to S3: {url}",
            )
            image_key = f"email_images/{uuid.UUID(int=self.rng.getrandbits(128))}.png"
            image_url = self.upload(image_key, PNG_1PX)
            self.m.inline_image_key = image_key
            yield edge(
                "comment_s3_image",
                content=f'<p>See:</p><img src="{image_url}" alt="shot"><img src="{image_url}">',
            )
        yield edge("comment_placeholder", content=PLACEHOLDER, is_private=1, ticket_id=1)
        data_uri = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
        yield edge(
            "comment_data_image",
            content=f'<p>inline</p><img src="{data_uri}"><img alt="again" src="{data_uri}">'
            '<img src="data:image/png;base64,@@not-base64@@">',
        )
        yield edge(
            "comment_marker_entities",
            agent_id=system,
            content="<original-sender>Sean O&#39;Brien|sean@customer.example</original-sender>"
            "<p>hi</p>",
        )
        yield edge(
            "comment_marker_bad_email",
            agent_id=system,
            content="<original-sender>No Address|not-an-email</original-sender><p>hello</p>",
        )
        dup_ws = min(2, self.scale.workspaces)
        dup_ticket = next(t for t, w in self.ticket_ws.items() if w == dup_ws)
        yield edge(
            "comment_sender_other_workspace",
            ticket_id=dup_ticket,
            workspace_id=dup_ws,
            agent_id=self.ws_system[dup_ws],
            content=f"<original-sender>{name}|{email}</original-sender><p>other desk</p>",
        )
        yield edge(
            "comment_zero_date", content="<p>when?</p>", created_at=ZERO_DATE, updated_at=ZERO_DATE
        )
        yield edge("comment_null_private", content="<p>visibility unknown</p>", is_private=None)
        yield edge(
            "comment_recipients",
            content="<p>reply</p>",
            to_recipients=f'{email}, "Doe, Jane" <jane@customer.example>',
            other_destinaries="<div>boss@customer.example</div>; broken@@example",
            bcc_recipients="Audit &lt;audit@customer.example&gt;",
        )

    def ticket_attachments(self) -> Iterator[dict[str, Any]]:
        ids = self.comment_ids
        for n in range(self.scale.attachments):
            attachment = self.new_id("ticket_attachments")
            comment = ids[(n * 7919) % len(ids)]
            in_s3 = self.m.bucket is not None and self.rng.random() < self.scale.s3_attachment_share
            size = self.rng.randint(200, 8000)
            data = self.rng.randbytes(size)
            is_image = n % 3 == 0
            name = f"file-{attachment}.{'png' if is_image else 'pdf'}"
            row = {
                "id": attachment,
                "comment_id": comment,
                "file_name": name,
                "content_type": "image/png" if is_image else "application/pdf",
                "file_size": size,
                "created_at": when(attachment),
            }
            if in_s3:
                folder = "images" if is_image else "documents"
                row["s3_url"] = self.upload(
                    f"{folder}/{uuid.UUID(int=self.rng.getrandbits(128))}.{name[-3:]}", data
                )
            else:
                row["content_bytes"] = data
            yield row
        yield from self._edge_attachments()

    def _edge_attachments(self) -> Iterator[dict[str, Any]]:
        def edge(label: str, comment: int, **values: Any) -> dict[str, Any]:
            attachment = self.new_id("ticket_attachments")
            self.m.edge[label] = attachment
            row = {
                "id": attachment,
                "comment_id": comment,
                "file_name": f"{label}.bin",
                "content_type": "application/octet-stream",
                "file_size": 0,
                "created_at": ZERO_DATE if label == "attachment_zero_date" else when(attachment),
            }
            row.update(values)
            return row

        blob = ("Ünïcödé résumé 😀 " * 200).encode()
        yield edge(
            "attachment_blob",
            self.m.edge["comment_emoji_rtl"],
            file_name="résumé 😀.txt",
            content_type="text/plain",
            file_size=len(blob),
            content_bytes=blob,
        )
        placeholder = self.m.edge["comment_placeholder"]
        yield edge("attachment_placeholder_1", placeholder, content_bytes=b"draft one", file_size=9)
        yield edge("attachment_placeholder_2", placeholder, content_bytes=b"draft two", file_size=9)
        yield edge("attachment_orphan", MISSING_ID, content_bytes=b"lost", file_size=4)
        yield edge(
            "attachment_zero_date",
            self.m.edge["comment_emoji_rtl"],
            content_bytes=b"z",
            file_size=1,
        )
        if self.m.bucket:
            data = PNG_1PX * 3
            url = self.upload("documents/present.png", data)
            yield edge(
                "attachment_s3",
                self.m.edge["comment_emoji_rtl"],
                file_name="present.png",
                content_type="image/png",
                file_size=len(data),
                s3_url=url,
            )
            key = f"documents/{uuid.UUID(int=self.rng.getrandbits(128))}.pdf"
            self.m.missing_s3_key = key
            yield edge(
                "attachment_s3_missing",
                self.m.edge["comment_emoji_rtl"],
                file_name="gone.pdf",
                content_type="application/pdf",
                file_size=1234,
                s3_url=s3_url(self.m.bucket, key),
            )

    def email_ticket_mapping(self) -> Iterator[dict[str, Any]]:
        for ticket, w in self.ticket_ws.items():
            if ticket > self.scale.tickets:
                continue
            _, name, email, _ = self._customer(w)
            yield {
                "id": self.new_id("email_ticket_mapping"),
                "email_id": f"AAMkAD{ticket:010d}",
                "email_conversation_id": f"AAQkAD{ticket:010d}",
                "ticket_id": ticket,
                "email_subject": f"Ticket {ticket}",
                "email_sender": f"{name} <{email}>",
                "email_received_at": when(ticket),
                "is_processed": 1,
                "created_at": when(ticket),
                "updated_at": when(ticket),
            }
        row = self.new_id("email_ticket_mapping")
        self.m.edge["mapping_zero_date"] = row
        yield {
            "id": row,
            "email_id": "AAMkAD-edge-zero",
            "ticket_id": self.m.edge["ticket_emoji_rtl"],
            "email_subject": f"Re: {EMOJI_TITLE} [ID:{self.m.edge['ticket_emoji_rtl']}]",
            "email_sender": "<b>Jane</b> <jane@customer.example>",
            "email_received_at": ZERO_DATE,
            "is_processed": 0,
            "created_at": when(1),
            "updated_at": when(1),
        }

    def scheduled_comments(self) -> Iterator[dict[str, Any]]:
        """Replies to send later: a few per hundred tickets (most sent, some cancelled or
        failed, the latest still pending), then one of each edge case."""
        statuses = ("sent", "sent", "sent", "cancelled", "failed")
        tickets = list(self.ticket_ws.items())
        for n, (ticket, w) in enumerate(tickets[::25]):
            row = self.new_id("scheduled_comments")
            due = 86_400 * 700 * n * 25 / max(len(tickets), 1)
            status = "pending" if n >= len(tickets) // 25 - 2 else statuses[n % len(statuses)]
            yield {
                "id": row,
                "ticket_id": ticket,
                "agent_id": self.ws_agents[w][n % len(self.ws_agents[w])],
                "workspace_id": w,
                "content": self.html(1),
                "is_private": 0,
                "other_destinaries": None if n % 3 else f"boss{n}@customer.example",
                "bcc_recipients": None,
                "attachment_ids": None if n % 4 else "[]",
                # the pending ones are due after any plausible migration date
                "scheduled_send_at": when(86_400 * 365 * 20 if status == "pending" else due),
                "status": status,
                "retry_count": 3 if status == "failed" else 0,
                "error_message": "SMTP 550 mailbox unavailable" if status == "failed" else None,
                "sent_at": when(due + 60) if status == "sent" else None,
                "created_at": when(due - 3600),
                "updated_at": when(due),
            }
        yield from self._edge_scheduled_comments()

    def _edge_scheduled_comments(self) -> Iterator[dict[str, Any]]:
        agent = self.ws_agents[1][0]
        emoji_ticket = self.m.edge["ticket_emoji_rtl"]
        for label, changes in (
            (
                "scheduled_future",
                {
                    "ticket_id": emoji_ticket,
                    "content": f"<p>{RTL_TEXT} 🚀</p><script>alert(1)</script>",
                    "other_destinaries": (
                        "<b>Boss</b> <boss@customer.example>; cfo@customer.example"
                    ),
                    "bcc_recipients": "audit@legacy1.test",
                    "attachment_ids": f"[{self.m.edge['attachment_blob']}, {MISSING_ID}]",
                    "scheduled_send_at": when(86_400 * 365 * 20),
                },
            ),
            ("scheduled_overdue", {"scheduled_send_at": when(86_400 * 30)}),
            ("scheduled_unknown_status", {"status": "mystery"}),
            ("scheduled_private", {"is_private": 1, "scheduled_send_at": when(86_400 * 365 * 20)}),
            ("scheduled_orphan_ticket", {"ticket_id": MISSING_ID}),
            ("scheduled_missing_agent", {"agent_id": MISSING_ID}),
            ("scheduled_zero_date", {"scheduled_send_at": ZERO_DATE, "status": "sent"}),
        ):
            row = self.new_id("scheduled_comments")
            self.m.edge[label] = row
            values = {
                "id": row,
                "ticket_id": 1,
                "agent_id": agent,
                "workspace_id": 1,
                "content": "<p>Later</p>",
                "is_private": 0,
                "other_destinaries": "a@b.example",
                "attachment_ids": "[]",
                "scheduled_send_at": when(86_400 * 800),
                "status": "pending",
                "retry_count": 0,
                "sent_at": None,
                "created_at": when(row),
                "updated_at": when(row),
            }
            values.update(changes)
            yield values

    def workspace_extras(self) -> dict[str, list[dict[str, Any]]]:
        """Canned replies, signatures, notification settings, schedules of each workspace."""
        out: dict[str, list[dict[str, Any]]] = {
            t: []
            for t in (
                "canned_replies",
                "global_signatures",
                "notification_templates",
                "notification_settings",
                "schedule",
            )
        }
        for w in range(1, self.scale.workspaces + 1):
            admin = self.ws_agents[w][0]
            out["canned_replies"].append(
                {
                    "id": self.new_id("canned_replies"),
                    "name": "Thanks",
                    "content": "<p>Thanks {{user_name}}!</p>",
                    "workspace_id": w,
                    "created_by_agent_id": admin,
                    "is_enabled": 1,
                    "usage_count": 3,
                    "created_at": when(w),
                    "updated_at": when(w),
                }
            )
            if w == 1:
                self.m.edge["canned_unknown_placeholder"] = self.new_id("canned_replies")
                out["canned_replies"].append(
                    {
                        "id": self.m.edge["canned_unknown_placeholder"],
                        "name": "Order status",
                        "description": "uses an old placeholder the new system lacks",
                        "content": "<p>Order {{order_number}} for {{ ticket_title }}</p>",
                        "workspace_id": w,
                        "created_by_agent_id": MISSING_ID,
                        "is_enabled": 0,
                        "usage_count": 0,
                        "created_at": when(w),
                        "updated_at": when(w),
                    }
                )
            out["global_signatures"].append(
                {
                    "id": self.new_id("global_signatures"),
                    "workspace_id": w,
                    "content": "<p>— Support 🚀</p>",
                    "is_enabled": 1,
                    "created_at": when(w),
                    "updated_at": when(w),
                }
            )
            template = self.new_id("notification_templates")
            out["notification_templates"].append(
                {
                    "id": template,
                    "workspace_id": w,
                    "type": "new_ticket",
                    "name": "New ticket",
                    "subject": "New ticket #{{ticket_id}}",
                    "template": "<p>{{ticket_title}}</p>",
                    "is_enabled": 1,
                    "created_at": when(w),
                    "updated_at": when(w),
                }
            )
            out["notification_settings"].append(
                {
                    "id": self.new_id("notification_settings"),
                    "workspace_id": w,
                    "category": "agents",
                    "type": "new_ticket_created",
                    "is_enabled": 1,
                    "channels": '["email", "enque"]',
                    "template_id": template,
                    "created_at": when(w),
                    "updated_at": when(w),
                }
            )
            if w == 1:
                for label, category, kind, channels in (
                    ("setting_customer", "users", "new_ticket_created", '["email"]'),
                    ("setting_duplicate", "agents", "ticket_created", '["enque"]'),
                    ("setting_assigned", "agents", "ticket_assigned", '["enque", "slack"]'),
                ):
                    self.m.edge[label] = self.new_id("notification_settings")
                    out["notification_settings"].append(
                        {
                            "id": self.m.edge[label],
                            "workspace_id": w,
                            "category": category,
                            "type": kind,
                            "is_enabled": 1,
                            "channels": channels,
                            "template_id": None,
                            "created_at": when(w),
                            "updated_at": when(w),
                        }
                    )
            out["schedule"].append(
                {
                    "id": self.new_id("schedule"),
                    "name": "Follow-up",
                    "workspace_id": w,
                    "created_by_agent_id": admin,
                    "created_at": when(w),
                    "updated_at": when(w),
                    "scheduled_for": when(86_400 * 900),
                }
            )
        return out

    def automations(
        self,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        automations, conditions, actions = [], [], []
        for w in range(1, self.scale.workspaces + 1):
            for n in range(self.scale.automations):
                auto = self.new_id("automations")
                automations.append(
                    {
                        "id": auto,
                        "name": f"Rule {n} 🔔",
                        "workspace_id": w,
                        "is_active": int(n % 2 == 0),
                        "conditions_operator": ["AND", "OR", None][n % 3],
                        "actions_operator": "AND",
                        "created_at": when(auto),
                        "updated_at": when(auto),
                        "created_by": self.ws_agents[w][0],
                    }
                )
                for kind, op, value in (
                    ("DESCRIPTION", "CON", "urgent"),
                    ("USER_DOMAIN", "EQL", "initech.test"),
                    ("PRIORITY", "eql", "high"),
                    ("AGENT", None, self.agent_email[self.ws_agents[w][0]]),
                ):
                    conditions.append(
                        {
                            "id": self.new_id("automation_conditions"),
                            "automation_id": auto,
                            "condition_type": kind,
                            "condition_operator": op,
                            "condition_value": value,
                            "logical_operator": "AND",
                            "created_at": when(auto),
                        }
                    )
                team = self.ws_teams[w][0]
                for kind, value in (
                    ("SET_PRIORITY", "Critical"),
                    ("SET_TEAM", self.team_name[team]),
                    ("SET_AGENT", self.agent_email[self.ws_agents[w][-1]]),
                    ("ALSO_NOTIFY", self.agent_email[self.ws_agents[w][0]]),
                    ("SET_STATUS", "With User"),
                    ("SET_CATEGORY", "Billing"),
                ):
                    actions.append(
                        {
                            "id": self.new_id("automation_actions"),
                            "automation_id": auto,
                            "action_type": kind,
                            "action_value": value,
                            "created_at": when(auto),
                        }
                    )
        return automations, conditions, actions

    def workflows(self) -> Iterator[dict[str, Any]]:
        rules = {
            "keywords": [],
            "language": "en",
            "min_confidence": 0.7,
            "urgency_keywords": {"high": ["urgent", "asap", "down"], "medium": ["soon"], "low": []},
        }
        for w in range(1, self.scale.workspaces + 1):
            yield {
                "id": self.new_id("workflows"),
                "name": "Escalate urgent",
                "description": "urgency",
                "is_enabled": 1,
                "trigger": "message.urgency_high",
                "message_analysis_rules": orjson.dumps(rules).decode(),
                "conditions": "[]",
                "actions": '[{"type": "change_priority", "config": {"priority": "High"}}]',
                "workspace_id": w,
                "created_at": when(w),
                "updated_at": when(w),
            }
            yield {
                "id": self.new_id("workflows"),
                "name": "Webhook",
                "description": None,
                "is_enabled": 0,
                "trigger": "ticket.created",
                "message_analysis_rules": None,
                "conditions": '[{"field": "subject", "operator": "contains", "value": "vip"}]',
                "actions": '[{"type": "send_webhook", "config": {"url": "https://hooks.example"}}]',
                "workspace_id": w,
                "created_at": when(w),
                "updated_at": when(w),
            }

    def activities(self) -> Iterator[dict[str, Any]]:
        """The feed: each ticket's creation, an assignment on every third ticket, a reply on
        every fifth; then one of each edge case."""
        for ticket, w in self.ticket_ws.items():
            agent = self.ws_agents[w][ticket % len(self.ws_agents[w])]
            yield {
                "id": self.new_id("activities"),
                "agent_id": None if ticket % 3 else agent,
                "action": f"created ticket #{ticket}",
                "source_type": "Ticket",
                "source_id": ticket,
                "workspace_id": w,
                "created_at": when(ticket),
                "updated_at": when(ticket),
            }
            if ticket % 3 == 0:
                yield {
                    "id": self.new_id("activities"),
                    "agent_id": agent,
                    "action": f"assigned ticket #{ticket} to {self.agent_email[agent]}",
                    "source_type": "Task",
                    "source_id": ticket,
                    "workspace_id": w,
                    "created_at": when(ticket + 60),
                    "updated_at": when(ticket + 60),
                }
        for comment, w in self.replies:
            yield {
                "id": self.new_id("activities"),
                "agent_id": self.ws_agents[w][0],
                "action": "replied to the customer",
                "source_type": "Comment",
                "source_id": comment,
                "workspace_id": w,
                "created_at": when(comment),
                "updated_at": when(comment),
            }
        for label, changes in (
            ("activity_emoji", {"action": f"renamed ticket to {EMOJI_TITLE}"}),
            ("activity_unknown_type", {"source_type": "Invoice"}),
            ("activity_orphan", {"source_id": MISSING_ID}),
            ("activity_missing_agent", {"agent_id": MISSING_ID}),
            ("activity_zero_date", {"created_at": ZERO_DATE, "updated_at": None}),
        ):
            row = self.new_id("activities")
            self.m.edge[label] = row
            values = {
                "id": row,
                "agent_id": self.ws_agents[1][0],
                "action": "changed status to Closed",
                "source_type": "Ticket",
                "source_id": self.m.edge["ticket_emoji_rtl"],
                "workspace_id": 1,
                "created_at": when(row),
                "updated_at": when(row),
            }
            values.update(changes)
            yield values

    # -- the all-NULL rows

    _PARENTS = {
        "workspace_id": "workspaces",
        "agent_id": "agents",
        "created_by_agent_id": "agents",
        "ticket_id": "tickets",
        "comment_id": "comments",
        "automation_id": "automations",
        "integration_id": "microsoft_integration",
        "mailbox_connection_id": "mailbox_connections",
        "team_id": "teams",
        "user_id": "users",
    }

    def null_row(self, table: str) -> dict[str, Any] | None:
        """A row with every nullable column NULL (None when the table has none)."""
        columns = TABLES[table]
        if all(not c.nullable for c in columns.values()):
            return None
        row_id = self.new_id(table)
        self.null_ids[table] = row_id
        self.m.edge[f"nulls_{table}"] = row_id
        row: dict[str, Any] = {"id": row_id}
        for name, column in columns.items():
            if name == "id" or column.nullable:
                continue
            parent = self._PARENTS.get(name)
            if parent is not None:
                row[name] = self.null_ids.get(parent, 1)
            elif column.type.startswith("enum("):
                row[name] = column.type.split("'")[1]
            elif "email" in name:
                row[name] = f"null-row-{table}@legacy.test"
            elif column.type in ("int", "tinyint(1)"):
                row[name] = 0
            elif column.type in ("datetime", "timestamp"):
                row[name] = when(42)
            elif column.type == "json":
                row[name] = "[]"
            else:
                row[name] = f"null-row {table}.{name}"
        return row


async def build(
    server: Server,
    database: str,
    scale: Scale = Scale(),
    *,
    s3: tuple[Any, str] | None = None,
) -> Manifest:
    """Create `database` and fill it; `s3` = (S3Server, bucket) for the files."""
    bucket = s3[1] if s3 else None
    manifest = Manifest(database=database, url=server.url(database), bucket=bucket)
    await create_database(server, database)
    b = Builder(scale, manifest)
    conn = await server.connect(database)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
            await cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
            await cur.execute("SET SESSION time_zone = '+00:00', sql_notes = 0")
        await conn.autocommit(False)
        w = Writer(conn, manifest.counts)

        async def table(name: str, rows: Iterable[dict[str, Any]]) -> None:
            await w.insert(name, rows)
            null = b.null_row(name)
            if null is not None:
                await w.insert(name, [null])

        await table("workspaces", b.workspaces())
        await table("agents", b.agents())
        await table("teams", b.teams())
        await table("team_members", b.team_members())
        await table("companies", b.companies())
        await table("users", b.users())
        async with conn.cursor() as cur:
            await cur.executemany(
                "UPDATE companies SET primary_contact_id = %s WHERE id = %s",
                [(user, company) for company, user in b.company_contacts()],
            )
        await table("unassigned_users", b.unassigned_users())
        extras = b.workspace_extras()
        await table("categories", b.categories())
        await table("microsoft_integration", b.microsoft_integration())
        await table("mailbox_connections", b.mailbox_connections())
        await table("mailbox_team_assignments", b.mailbox_team_assignments())
        await table("microsoft_tokens", b.microsoft_tokens())
        await table("email_sync_config", b.email_sync_config())
        await table("tickets", b.tickets())
        await table("ticket_bodies", b.ticket_bodies())
        await table("comments", b.comments())
        await table("ticket_attachments", b.ticket_attachments())
        await table("email_ticket_mapping", b.email_ticket_mapping())
        await table("scheduled_comments", b.scheduled_comments())
        for name in (
            "canned_replies",
            "global_signatures",
            "notification_templates",
            "notification_settings",
            "schedule",
        ):
            await table(name, extras[name])
        automations, conditions, actions = b.automations()
        await table("automations", automations)
        await table("automation_conditions", conditions)
        await table("automation_actions", actions)
        await table("workflows", b.workflows())
        await table("activities", b.activities())
        await conn.commit()
    finally:
        conn.close()
    if s3 is not None:
        await _upload(s3[0].store(s3[1]), b.uploads)
    return manifest


async def _upload(store: Any, objects: dict[str, bytes], concurrency: int = 16) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def put(key: str, data: bytes) -> None:
        async with gate:
            await obstore.put_async(store, key, data)

    for chunk in _chunks(list(objects.items()), 2000):
        await asyncio.gather(*(put(k, v) for k, v in chunk))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
