"""Microsoft 365 channel: an OAuth 2.0 authorization-code client and a Microsoft Graph client.

Plain OAuth over httpx (not MSAL, which insists on Microsoft's own authority), so the same
code talks to Microsoft and to the test emulator. The Graph client refreshes the access token
before it expires and stores every new refresh token it is given; it backs off on 429/503
honouring `Retry-After`; it keeps at most 4 requests in flight per mailbox (Graph's limit).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from enque.email.errors import (
    AuthenticationFailed,
    ChannelError,
    PermanentError,
    TemporaryError,
    backoff_delay,
)
from enque.email.parse import Address, Attachment, ParsedMessage, parse_message
from enque.email.sanitize import html_to_text

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_SCOPES = (
    "offline_access",
    "openid",
    "email",
    "https://graph.microsoft.com/Mail.ReadWrite",
    "https://graph.microsoft.com/Mail.Send",
    "https://graph.microsoft.com/User.Read",
)
MESSAGE_SELECT = (
    "id", "internetMessageId", "conversationId", "subject", "from", "sender", "toRecipients",
    "ccRecipients", "replyTo", "receivedDateTime", "sentDateTime", "body", "hasAttachments",
    "internetMessageHeaders", "parentFolderId", "isRead",
)  # fmt: skip
MAX_CONCURRENCY = 4
RETRY_STATUSES = {429, 502, 503, 504}

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: int
    scope: str = ""
    id_token: str | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSet:
        return cls(
            access_token=str(data.get("access_token", "")),
            refresh_token=data.get("refresh_token"),
            expires_at=int(data.get("expires_at", 0)),
            scope=str(data.get("scope", "")),
        )


class TokenStore(Protocol):
    """Where a mailbox's tokens live (encrypted in the database, in memory in tests)."""

    async def load(self) -> TokenSet: ...
    async def save(self, tokens: TokenSet) -> None: ...


class MemoryTokenStore:
    def __init__(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.saved = 0

    async def load(self) -> TokenSet:
        return self.tokens

    async def save(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.saved += 1


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - time.time())


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code", "")), str(body["error"].get("message", ""))
    if isinstance(body, dict):  # OAuth errors: {"error": "...", "error_description": "..."}
        return str(body.get("error", "")), str(body.get("error_description", ""))[:300]
    return "", ""


# ---------------------------------------------------------------- OAuth 2.0


class OAuthClient:
    """Authorization-code flow with refresh against `{authority}/{tenant}/oauth2/v2.0/…`."""

    def __init__(
        self,
        *,
        authority: str,
        tenant: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        http: httpx.AsyncClient | None = None,
        scopes: Sequence[str] = DEFAULT_SCOPES,
    ) -> None:
        base = f"{authority.rstrip('/')}/{tenant or 'common'}/oauth2/v2.0"
        self.authorize_endpoint = f"{base}/authorize"
        self.token_endpoint = f"{base}/token"
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.http = http
        self.scopes = " ".join(scopes)

    def authorize_url(
        self, *, state: str, login_hint: str | None = None, prompt: str | None = None
    ) -> str:
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "response_mode": "query",
            "scope": self.scopes,
            "state": state,
        }
        if login_hint:
            params["login_hint"] = login_hint
        if prompt:
            params["prompt"] = prompt
        return f"{self.authorize_endpoint}?{urlencode(params, quote_via=quote)}"

    async def _token(self, form: dict[str, str]) -> TokenSet:
        import httpx  # on first use: importing it slows every start

        form = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        if self.http is None:
            raise TypeError("OAuthClient needs an http client to call the token endpoint")
        try:
            response = await self.http.post(self.token_endpoint, data=form, timeout=30)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"token endpoint unreachable: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryError(
                f"token endpoint answered {response.status_code}",
                retry_after=_retry_after(response),
            )
        if response.status_code != 200:
            code, description = _error_of(response)
            if code in ("invalid_grant", "interaction_required", "consent_required"):
                raise AuthenticationFailed(f"Microsoft refused the grant ({code}): {description}")
            raise PermanentError(f"token endpoint refused ({code}): {description}")
        body = response.json()
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or form.get("refresh_token"),
            expires_at=int(time.time()) + int(body.get("expires_in", 3600)),
            scope=body.get("scope", ""),
            id_token=body.get("id_token"),
        )

    async def exchange_code(self, code: str) -> TokenSet:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "scope": self.scopes,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": self.scopes}
        )


# ---------------------------------------------------------------- Graph


@dataclass
class DeltaPage:
    messages: list[dict[str, Any]]
    removed: list[str]
    next_link: str | None
    delta_link: str | None


@dataclass
class GraphAttachment:
    id: str
    name: str
    content_type: str
    data: bytes
    is_inline: bool
    content_id: str | None
    is_item: bool  # an attached Outlook item (a forwarded message), as MIME
    skipped_size: int | None = None  # not downloaded: over the size limit (bytes Graph gave)


class ResyncRequired(PermanentError):
    """The delta link is no longer valid (410): sync the folder again from the start."""


_limits: dict[tuple[int, str], asyncio.Semaphore] = {}


def mailbox_limit(mailbox: str, size: int = MAX_CONCURRENCY) -> asyncio.Semaphore:
    """One semaphore per mailbox (and event loop) shared by every client in this process."""
    key = (id(asyncio.get_running_loop()), mailbox.lower())
    if key not in _limits:
        _limits[key] = asyncio.Semaphore(size)
    return _limits[key]


class GraphClient:
    """Requests for one mailbox (`me`, a user id or a user principal name)."""

    def __init__(
        self,
        *,
        base_url: str,
        mailbox: str,
        tokens: TokenStore,
        oauth: OAuthClient,
        http: httpx.AsyncClient,
        max_attempts: int = 6,
        refresh_margin: int = 300,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.mailbox = mailbox
        self.root = "/me" if mailbox == "me" else f"/users/{quote(mailbox, safe='@.')}"
        self.tokens = tokens
        self.oauth = oauth
        self.http = http
        self.max_attempts = max_attempts
        self.refresh_margin = refresh_margin
        self.sleep = sleep
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0

    # ------------------------------------------------------------ tokens

    async def _refresh(self, stale: TokenSet) -> TokenSet:
        async with self._refresh_lock:
            current = await self.tokens.load()
            if current.access_token != stale.access_token:
                return current  # another request refreshed meanwhile
            if not current.refresh_token:
                raise AuthenticationFailed("no refresh token: reconnect the mailbox")
            fresh = await self.oauth.refresh(current.refresh_token)
            await self.tokens.save(fresh)  # the new refresh token replaces the old one
            self.refreshes += 1
            return fresh

    async def access_token(self) -> TokenSet:
        tokens = await self.tokens.load()
        if tokens.expires_at - self.refresh_margin <= time.time():
            tokens = await self._refresh(tokens)
        return tokens

    # ------------------------------------------------------------ requests

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One Graph call with token refresh, retries and the per-mailbox concurrency limit."""
        import httpx  # on first use: importing it slows every start

        refreshed = False
        attempt = 0  # failed tries that count against `max_attempts` (a 401 refresh does not)
        while True:
            tokens = await self.access_token()
            all_headers = {"Authorization": f"Bearer {tokens.access_token}", **(headers or {})}
            try:
                async with mailbox_limit(self.mailbox):
                    response = await self.http.request(
                        method, self.url(path), params=params, json=json, content=content,
                        headers=all_headers, timeout=60,
                    )  # fmt: skip
            except httpx.HTTPError as exc:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise TemporaryError(f"Graph unreachable: {exc.__class__.__name__}") from exc
                await self.sleep(backoff_delay(attempt))
                continue
            if response.status_code == 401 and not refreshed:
                refreshed = True
                await self._refresh(tokens)  # expired or revoked early: one fresh token, once
                continue
            if response.status_code in RETRY_STATUSES:
                attempt += 1
                retry_after = _retry_after(response)
                if attempt >= self.max_attempts:
                    code, message = _error_of(response)
                    raise TemporaryError(
                        f"Graph {response.status_code} {code}: {message}", retry_after=retry_after
                    )
                await self.sleep(backoff_delay(attempt, retry_after=retry_after))
                continue
            if response.status_code >= 400:
                raise self._failure(response)
            return response

    def _failure(self, response: httpx.Response) -> ChannelError:
        code, message = _error_of(response)
        text = f"Graph {response.status_code} {code}: {message}"
        if response.status_code == 401:
            return AuthenticationFailed(text)
        if response.status_code == 410:
            return ResyncRequired(text)
        return PermanentError(text)

    # ------------------------------------------------------------ endpoints

    async def me(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.request("GET", self.root)).json()
        return body

    async def delta(
        self,
        folder: str = "inbox",
        *,
        delta_link: str | None = None,
        page_size: int = 50,
        select: Sequence[str] = MESSAGE_SELECT,
    ) -> AsyncIterator[DeltaPage]:
        """Pages of changes since `delta_link` (all messages when None).

        The caller commits each page's messages before asking for the next one and stores
        the `delta_link` of the last page only after that.
        """
        headers = {
            "Prefer": f'outlook.body-content-type="html", odata.maxpagesize={page_size}',
        }
        url: str | None = delta_link
        params: dict[str, str] | None = None
        if url is None:
            url = f"{self.root}/mailFolders/{quote(folder)}/messages/delta"
            params = {"$select": ",".join(select)}
        while url is not None:
            body = (await self.request("GET", url, params=params, headers=headers)).json()
            params = None  # links carry their own query
            values = body.get("value", [])
            page = DeltaPage(
                messages=[v for v in values if "@removed" not in v],
                removed=[v["id"] for v in values if "@removed" in v],
                next_link=body.get("@odata.nextLink"),
                delta_link=body.get("@odata.deltaLink"),
            )
            yield page
            url = page.next_link

    async def attachments(
        self, message_id: str, *, max_file: int | None = None, max_total: int | None = None
    ) -> list[GraphAttachment]:
        """Every attachment with its bytes; large ones (no inline `contentBytes`) via `$value`.

        One over `max_file` bytes, or past `max_total` for the message, is not downloaded: it
        comes back with no bytes and its `skipped_size`."""
        base = f"{self.root}/messages/{quote(message_id, safe='')}/attachments"
        listed = (await self.request("GET", base)).json().get("value", [])
        found = []
        total = 0
        for item in listed:
            kind = item.get("@odata.type", "")
            if kind.endswith("referenceAttachment"):
                continue  # a link to a cloud file: nothing to download
            is_item = kind.endswith("itemAttachment")
            size = int(item.get("size") or 0)
            raw = item.get("contentBytes")
            skipped: int | None = None
            if (max_file is not None and size > max_file) or (
                max_total is not None and total + size > max_total
            ):
                data, skipped = b"", size
            elif raw is not None and not is_item:
                data = base64.b64decode(raw)
            else:
                value = f"{base}/{quote(item['id'], safe='')}/$value"
                data = (await self.request("GET", value)).content
            total += len(data)
            found.append(
                GraphAttachment(
                    id=item["id"],
                    name=item.get("name") or "attachment",
                    content_type="message/rfc822"
                    if is_item
                    else item.get("contentType") or "application/octet-stream",
                    data=data,
                    is_inline=bool(item.get("isInline")),
                    content_id=item.get("contentId"),
                    is_item=is_item,
                    skipped_size=skipped,
                )
            )
        return found

    async def mime(self, message_id: str) -> bytes:
        """The message as MIME (`/$value`)."""
        path = f"{self.root}/messages/{quote(message_id, safe='')}/$value"
        return (await self.request("GET", path)).content

    async def send_mime(self, raw: bytes) -> None:
        """Send a complete MIME message: our Message-ID, In-Reply-To and References stay."""
        await self.request(
            "POST",
            f"{self.root}/sendMail",
            content=base64.b64encode(raw),
            headers={"Content-Type": "text/plain"},
        )

    async def reply(
        self, message_id: str, *, comment_html: str, to: Sequence[str] = (), cc: Sequence[str] = ()
    ) -> None:
        """Reply to a message in the mailbox (Exchange threads it and writes the headers)."""
        payload: dict[str, Any] = {"comment": comment_html}
        message: dict[str, Any] = {}
        if to:
            message["toRecipients"] = [{"emailAddress": {"address": a}} for a in to]
        if cc:
            message["ccRecipients"] = [{"emailAddress": {"address": a}} for a in cc]
        if message:
            payload["message"] = message
        await self.request(
            "POST", f"{self.root}/messages/{quote(message_id, safe='')}/reply", json=payload
        )


# ---------------------------------------------------------------- Graph JSON → ParsedMessage


def _addresses(items: Sequence[dict[str, Any]] | None) -> list[Address]:
    found = []
    for item in items or []:
        addr = (item or {}).get("emailAddress") or {}
        address = str(addr.get("address") or "").strip()
        if "@" in address:
            local, _, domain = address.rpartition("@")
            found.append(Address(str(addr.get("name") or ""), f"{local}@{domain.lower()}"))
    return found


def _timestamp(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp())
    except ValueError:
        return None


def to_parsed(
    message: dict[str, Any], attachments: Sequence[GraphAttachment] = ()
) -> ParsedMessage:
    """A Graph message (as `MESSAGE_SELECT` returns it) in the shape the ingest pipeline reads."""
    headers_list = message.get("internetMessageHeaders") or []
    raw_headers = "".join(
        f"{h.get('name')}: {h.get('value')}\r\n" for h in headers_list if h.get("name")
    )
    from_headers = parse_message(raw_headers.encode("utf-8", "replace") + b"\r\n")
    body = message.get("body") or {}
    content = str(body.get("content") or "")
    is_html = str(body.get("contentType", "")).lower() == "html"
    return ParsedMessage(
        message_id=str(message.get("internetMessageId") or "").strip().strip("<>") or None,
        in_reply_to=from_headers.in_reply_to,
        references=from_headers.references,
        from_=_addresses([message["from"]] if message.get("from") else []),
        to=_addresses(message.get("toRecipients")),
        cc=_addresses(message.get("ccRecipients")),
        reply_to=_addresses(message.get("replyTo")),
        return_path=from_headers.return_path,
        subject=str(message.get("subject") or ""),
        date=_timestamp(message.get("sentDateTime")) or _timestamp(message.get("receivedDateTime")),
        html=content if is_html else None,
        text=html_to_text(content) if is_html else content,
        attachments=[
            Attachment(
                filename=a.name if not a.is_item or a.name.endswith(".eml") else f"{a.name}.eml",
                content_type=a.content_type,
                data=a.data,
                content_id=a.content_id,
                inline=a.is_inline,
                note="forwarded message" if a.is_item else None,
                declared_size=a.skipped_size,
            )
            for a in attachments
        ],
        forwarded=[],
        headers=from_headers.headers,
        content_type=from_headers.content_type if headers_list else "text/html",
        report_type=from_headers.report_type,
        raw_size=len(content.encode()) + sum(len(a.data) for a in attachments),
    )
