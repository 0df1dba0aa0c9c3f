"""IMAP channel adapter (aioimaplib): fetch new messages above a UID, never marking them read."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aioimaplib

from enque.email.errors import (
    AuthenticationFailed,
    ChannelError,
    FolderUnavailable,
    PermanentError,
    TemporaryError,
    TlsFailed,
)
from enque.email.tls import Security, client_context, is_tls_failure

log = logging.getLogger(__name__)

BATCH_MESSAGES = 50
BATCH_BYTES = 32 * 1024 * 1024
_FETCH_HEAD = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
_TEMPORARY_CODES = (b"[UNAVAILABLE]", b"[SERVERBUG]", b"[INUSE]", b"[LIMIT]")


class _NoSecrets(logging.Filter):
    """aioimaplib logs every line it sends at debug level; never let LOGIN through."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text.startswith("Sending") and (" LOGIN " in text or "AUTHENTICATE" in text))


logging.getLogger("aioimaplib.aioimaplib").addFilter(_NoSecrets())


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    timeout: float = 30.0


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    size: int
    raw: bytes


def _text(lines: list[Any]) -> str:
    return " ".join(bytes(line).decode("utf-8", "replace") for line in lines)[:300]


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapClient:
    """One IMAP session: `async with ImapClient(settings) as imap: await imap.select()`."""

    def __init__(self, settings: ImapSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = False

    def _connection_lost(self, _exc: Exception | None) -> None:
        """The server went away: commands waiting for an answer end now (not at the timeout)."""
        self._lost = True
        protocol = self._client.protocol if self._client is not None else None
        if protocol is None:
            return
        pending = [protocol.pending_sync_command, *protocol.pending_async_commands.values()]
        for command in pending:
            if command is not None:
                command.close(b"connection lost", "KO")

    def _check_connection(self, step: str) -> None:
        if self._lost:
            raise TemporaryError(f"IMAP connection lost during {step}")

    async def __aenter__(self) -> ImapClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def client(self) -> aioimaplib.IMAP4:
        if self._client is None:
            raise TemporaryError("IMAP session is not connected")
        if self._lost:
            raise TemporaryError("IMAP connection lost")
        return self._client

    async def connect(self) -> None:
        s = self.settings
        try:
            context = self.ssl_context or client_context()
            # implicit TLS when given a context (IMAP4_SSL takes no connection-lost callback)
            self._client = aioimaplib.IMAP4(
                s.host,
                s.port,
                timeout=s.timeout,
                conn_lost_cb=self._connection_lost,
                ssl_context=context if s.security == "tls" else None,
            )
            await self._client.wait_hello_from_server()
            if s.security == "starttls":
                await self._starttls(context)
            response = await self._client.login(s.username, s.password)
        except ChannelError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise _classify(exc, "connect") from exc
        if response.result != "OK":
            await self.close()
            self._check_connection("login")
            text = b" ".join(bytes(line) for line in response.lines)
            if any(code in text for code in _TEMPORARY_CODES):
                raise TemporaryError(f"IMAP login unavailable: {_text(response.lines)}")
            raise AuthenticationFailed(f"IMAP login refused: {_text(response.lines)}")

    async def _starttls(self, context: ssl.SSLContext) -> None:
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise TlsFailed("the IMAP server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self.settings.timeout)
        if response.result != "OK":
            self._check_connection("STARTTLS")
            raise TlsFailed(f"STARTTLS refused: {_text(response.lines)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await asyncio.wait_for(
            loop.start_tls(
                protocol.transport, protocol, context, server_hostname=self.settings.host
            ),
            self.settings.timeout,
        )
        await asyncio.wait_for(protocol.capability(), self.settings.timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            live = not self._lost and client.protocol is not None
            if live and client.protocol.state in ("AUTH", "SELECTED"):
                await asyncio.wait_for(client.logout(), 5)
        except Exception:
            log.debug("IMAP logout failed", exc_info=True)
        transport = client.protocol.transport if client.protocol is not None else None
        if transport is not None:
            transport.close()

    async def select(self, folder: str | None = None) -> FolderState:
        """Open the folder read-write (flags untouched: fetches use BODY.PEEK)."""
        name = folder or self.settings.folder
        try:
            response = await self.client.select(_quote(name))
        except Exception as exc:
            raise _classify(exc, "select") from exc
        if response.result != "OK":
            self._check_connection("select")
            raise FolderUnavailable(
                f"IMAP folder {name!r} cannot be opened: {_text(response.lines)}"
            )
        uidvalidity = uidnext = None
        exists = 0
        for line in response.lines:
            raw = bytes(line)
            if m := _UIDVALIDITY.search(raw):
                uidvalidity = int(m.group(1))
            if m := _UIDNEXT.search(raw):
                uidnext = int(m.group(1))
            if m := _EXISTS.match(raw):
                exists = int(m.group(1))
        if uidvalidity is None:
            raise PermanentError("the IMAP server sent no UIDVALIDITY")
        return FolderState(uidvalidity, uidnext, exists)

    async def _uid_fetch(self, uid_set: str, items: str) -> list[Any]:
        try:
            response = await self.client.uid("fetch", uid_set, items)
        except Exception as exc:
            raise _classify(exc, "fetch") from exc
        if response.result != "OK":
            self._check_connection("fetch")
            raise TemporaryError(f"IMAP FETCH failed: {_text(response.lines[-1:])}")
        return list(response.lines)

    async def list_new(self, after_uid: int) -> list[tuple[int, int]]:
        """(uid, size) of every message with a UID above `after_uid`, in UID order."""
        lines = await self._uid_fetch(f"{after_uid + 1}:*", "(UID RFC822.SIZE)")
        found = []
        for line in lines:
            raw = bytes(line)
            if not _FETCH_HEAD.match(raw):
                continue
            uid, size = _UID.search(raw), _SIZE.search(raw)
            # `n:*` always answers the last message, even when its UID is below n.
            if uid and int(uid.group(1)) > after_uid:
                found.append((int(uid.group(1)), int(size.group(1)) if size else 0))
        return sorted(found)

    async def fetch(self, uids: list[int]) -> list[FetchedMessage]:
        """The full messages with these UIDs (BODY.PEEK: the \\Seen flag is left alone)."""
        if not uids:
            return []
        lines = await self._uid_fetch(",".join(map(str, uids)), "(UID RFC822.SIZE BODY.PEEK[])")
        messages: list[FetchedMessage] = []
        head: bytes | None = None
        meta = b""
        body: bytes | None = None

        def flush() -> None:
            if head is None or body is None:
                return
            uid = _UID.search(meta)
            size = _SIZE.search(meta)
            if uid:
                messages.append(
                    FetchedMessage(
                        int(uid.group(1)), int(size.group(1)) if size else len(body), body
                    )
                )

        for line in lines:
            if isinstance(line, bytearray):
                body = bytes(line)
                continue
            raw = bytes(line)
            if _FETCH_HEAD.match(raw):
                flush()
                head, meta, body = raw, raw, None
            elif head is not None:
                meta += b" " + raw
        flush()
        wanted = set(uids)
        return sorted((m for m in messages if m.uid in wanted), key=lambda m: m.uid)

    async def fetch_new(
        self,
        after_uid: int,
        *,
        batch_messages: int = BATCH_MESSAGES,
        batch_bytes: int = BATCH_BYTES,
    ) -> AsyncIterator[list[FetchedMessage]]:
        """Batches of new messages above `after_uid`, bounded in count and bytes."""
        pending = await self.list_new(after_uid)
        batch: list[int] = []
        size = 0
        for uid, msg_size in pending:
            if batch and (len(batch) >= batch_messages or size + msg_size > batch_bytes):
                yield await self.fetch(batch)
                batch, size = [], 0
            batch.append(uid)
            size += msg_size
        if batch:
            yield await self.fetch(batch)

    async def append(self, raw: bytes, folder: str | None = None) -> None:
        """Store a message in a folder (a copy of sent mail in `Sent`)."""
        try:
            response = await self.client.append(raw, mailbox=_quote(folder or self.settings.folder))
        except Exception as exc:
            raise _classify(exc, "append") from exc
        if response.result != "OK":
            self._check_connection("append")
            raise PermanentError(f"IMAP APPEND refused: {_text(response.lines)}")


def _classify(exc: BaseException, step: str) -> ChannelError:
    if isinstance(exc, ChannelError):
        return exc
    if is_tls_failure(exc):
        return TlsFailed(f"IMAP TLS failed during {step}: {exc}")
    if isinstance(exc, asyncio.TimeoutError | aioimaplib.CommandTimeout):
        return TemporaryError(f"IMAP {step} timed out")
    if isinstance(exc, ConnectionRefusedError):
        return TemporaryError(f"IMAP connection refused during {step}")
    if isinstance(exc, OSError | aioimaplib.Abort | aioimaplib.Error | EOFError):
        return TemporaryError(f"IMAP {step} failed: {exc.__class__.__name__}: {exc}")
    return TemporaryError(f"IMAP {step} failed: {exc.__class__.__name__}")


async def verify(settings: ImapSettings, ssl_context: ssl.SSLContext | None = None) -> FolderState:
    """Log in and open the folder: what saving a mailbox checks first."""
    async with ImapClient(settings, ssl_context) as imap:
        return await imap.select()
