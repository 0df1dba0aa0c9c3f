"""An emulator of Microsoft identity (OAuth 2.0 v2.0 endpoints) and the Microsoft Graph mail
endpoints Enque uses, as Microsoft documents them. An ASGI app served by uvicorn on
127.0.0.1 (see `GraphEmulator.serve`); tests drive it through its helper methods.

Identity: `/{tenant}/oauth2/v2.0/authorize` (code issued, `state` echoed), `/token`
(`authorization_code` and `refresh_token` grants; every refresh returns a new refresh token;
revoked or expired refresh tokens answer `400 invalid_grant`), an RS256 `id_token` with its
JWKS. Graph: `/me`, `/users/{id}`, `…/mailFolders/{folder}/messages/delta` (`$select`,
`$top` / `Prefer: odata.maxpagesize`, `@odata.nextLink`, `@odata.deltaLink`, `@removed`,
`410 SyncStateNotFound` for a forgotten sync state), messages and their `$value`,
attachments (small ones carry `contentBytes`, large ones only via `/$value`), `/sendMail`
(JSON or base64 MIME), `/messages/{id}/reply`. Expired access tokens answer `401
InvalidAuthenticationToken`; throttling (`429` + `Retry-After`), `503` bursts and the limit of
4 concurrent requests per mailbox (`429 ApplicationThrottled … MailboxConcurrency`) are
configurable per test; every call is counted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import email.utils
import html
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tests.support.services import free_port

GRAPH_PREFIX = "/v1.0"
MESSAGE_FIELDS = {
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
    "receivedDateTime", "sentDateTime", "hasAttachments", "internetMessageId", "subject",
    "bodyPreview", "importance", "parentFolderId", "conversationId", "conversationIndex",
    "isDeliveryReceiptRequested", "isReadReceiptRequested", "isRead", "isDraft", "webLink",
    "inferenceClassification", "body", "uniqueBody", "sender", "from", "toRecipients",
    "ccRecipients", "bccRecipients", "replyTo", "flag", "internetMessageHeaders",
}  # fmt: skip
# Returned without $select; internetMessageHeaders and uniqueBody only when selected.
DEFAULT_FIELDS = MESSAGE_FIELDS - {"internetMessageHeaders", "uniqueBody"}
WELL_KNOWN = {"inbox": "Inbox", "sentitems": "Sent Items", "deleteditems": "Deleted Items",
              "archive": "Archive", "drafts": "Drafts"}  # fmt: skip


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def _unb64url(token: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _graph_id() -> str:
    """Graph ids look like long base64 strings; a new one on every move."""
    return "AAMk" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _iso(time.time()),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def oauth_error(status: int, error: str, description: str) -> Response:
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [int(m.group(1))] if (m := re.search(r"AADSTS(\d+)", description)) else [],
        "timestamp": _iso(time.time()),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
    return JSONResponse(body, status_code=status)


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None
    kind: str = "file"  # file, item


@dataclass
class Message:
    id: str
    folder_id: str
    internet_message_id: str
    conversation_id: str
    subject: str
    sender: dict[str, str]
    to: list[dict[str, str]]
    cc: list[dict[str, str]]
    reply_to: list[dict[str, str]]
    html: str | None
    text: str | None
    headers: list[dict[str, str]]
    received: float
    sent: float
    mime: bytes
    attachments: list[Attachment] = field(default_factory=list)
    is_read: bool = False
    change_key: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Folder:
    id: str
    name: str
    well_known: str | None
    messages: dict[str, Message] = field(default_factory=dict)
    changes: list[tuple[int, str]] = field(default_factory=list)  # (sequence, message id)


@dataclass
class User:
    id: str
    mail: str
    display_name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    delegates: set[str] = field(default_factory=set)  # user ids allowed into this mailbox

    def folder(self, ref: str) -> Folder | None:
        ref = ref.strip("'\"")
        for folder in self.folders.values():
            if folder.id == ref or (folder.well_known and folder.well_known == ref.lower()):
                return folder
        return None


@dataclass
class Grant:
    user_id: str
    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False
    redirect_uri: str = ""
    used: bool = False


@dataclass
class Rule:
    """Answer the next `remaining` matching Graph requests with this status."""

    remaining: int
    status: int
    code: str
    message: str
    retry_after: int | None
    path_contains: str | None


@dataclass
class SentMail:
    user_id: str
    kind: str  # json, mime, reply
    payload: Any
    in_reply_to: str | None = None


def _address(addr: email.headerregistry.Address | Any) -> dict[str, Any]:
    return {
        "emailAddress": {"name": addr.display_name or addr.addr_spec, "address": addr.addr_spec}
    }


class GraphEmulator:
    def __init__(
        self,
        *,
        client_id: str = "enque-test-client",
        client_secret: str = "enque-test-secret",
        redirect_uris: tuple[str, ...] = (
            "http://enque.test/v1/mailboxes/microsoft/callback",
            "http://enque.test/v1/auth/microsoft/callback",
        ),
        access_token_lifetime: int = 3600,
        refresh_token_lifetime: int = 90 * 24 * 3600,
        default_page_size: int = 10,
        concurrency_limit: int = 4,
        inline_attachment_limit: int = 3 * 1024 * 1024,
        latency: float = 0.0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = set(redirect_uris)
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.default_page_size = default_page_size
        self.concurrency_limit = concurrency_limit
        self.inline_attachment_limit = inline_attachment_limit
        self.latency = latency
        self.tenant_id = str(uuid.uuid4())
        # the optional claim `xms_edov`: the tenant verified its users' email domain
        self.email_domain_verified = False
        self.users: dict[str, User] = {}
        self.codes: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.sent: list[SentMail] = []
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.rules: list[Rule] = []
        self.default_user: str | None = None
        self.consent = True
        self.sync_generation = 0  # bump to forget every delta sync state (410)
        self._seq = 0
        self._offset = 0.0
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        self.base_url = ""
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]] = []
        self._register_routes()

    # ------------------------------------------------------------ test helpers

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (tokens and codes expire without sleeping)."""
        self._offset += seconds

    def configure(self, settings: Any, monkeypatch: Any, *, tenant: str = "organizations") -> None:
        """Point an app's settings at this emulator for the test (its Entra app in `tenant`)."""
        monkeypatch.setattr(settings, "microsoft_client_id", self.client_id)
        monkeypatch.setattr(settings, "microsoft_client_secret", self.client_secret)
        monkeypatch.setattr(settings, "microsoft_tenant_id", tenant)
        monkeypatch.setattr(settings, "microsoft_authority", self.base_url)
        monkeypatch.setattr(settings, "microsoft_graph_url", self.base_url + "/v1.0")

    def add_user(self, mail: str, display_name: str | None = None) -> User:
        user = User(str(uuid.uuid4()), mail, display_name or mail.split("@")[0])
        for well_known, name in WELL_KNOWN.items():
            folder = Folder(_graph_id(), name, well_known)
            user.folders[folder.id] = folder
        self.users[user.id] = user
        self.default_user = self.default_user or user.id
        return user

    def user(self, ref: str) -> User | None:
        ref = ref.strip("'\"").lower()
        return next((u for u in self.users.values() if ref in (u.id, u.mail.lower())), None)

    def _change(self, folder: Folder, message_id: str) -> None:
        self._seq += 1
        folder.changes.append((self._seq, message_id))

    def deliver(self, user: User, raw: bytes, folder: str = "inbox") -> Message:
        """A message arrives in a folder (parsed from raw MIME, as Exchange would)."""
        target = user.folder(folder)
        assert target is not None, folder
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        html_part = msg.get_body(("html",))
        text_part = msg.get_body(("plain",))
        internet_id = str(msg.get("Message-ID") or f"<{uuid.uuid4()}@emulator.test>").strip()
        references = str(msg.get("References") or "").split()
        root = references[0] if references else internet_id
        attachments = []
        for part in msg.iter_attachments():
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()[0]
                attachments.append(
                    Attachment(
                        _graph_id(),
                        str(inner.get("Subject") or "item"),
                        "message/rfc822",
                        inner.as_bytes(),
                        kind="item",
                    )
                )
                continue
            attachments.append(
                Attachment(
                    _graph_id(),
                    part.get_filename() or "attachment",
                    part.get_content_type(),
                    part.get_payload(decode=True) or b"",
                    is_inline=part.get_content_disposition() == "inline",
                    content_id=str(part.get("Content-ID") or "").strip("<>") or None,
                )
            )
        known = {a.content_id for a in attachments}
        for related in msg.walk():
            cid = str(related.get("Content-ID") or "").strip("<>")
            if cid and related.get_content_maintype() == "image" and cid not in known:
                attachments.append(
                    Attachment(
                        _graph_id(),
                        related.get_filename() or "image",
                        related.get_content_type(),
                        related.get_payload(decode=True) or b"",
                        True,
                        cid,
                    )
                )
        date = msg.get("Date")
        sent = date.datetime.timestamp() if date is not None and date.datetime else self.now()
        message = Message(
            id=_graph_id(),
            folder_id=target.id,
            internet_message_id=internet_id,
            conversation_id=base64.urlsafe_b64encode(root.encode()).decode()[:44],
            subject=str(msg.get("Subject") or ""),
            sender=_address(msg["From"].addresses[0]) if msg.get("From") else {},
            to=[_address(a) for a in (msg["To"].addresses if msg.get("To") else ())],
            cc=[_address(a) for a in (msg["Cc"].addresses if msg.get("Cc") else ())],
            reply_to=[
                _address(a) for a in (msg["Reply-To"].addresses if msg.get("Reply-To") else ())
            ],
            html=html_part.get_content() if html_part is not None else None,
            text=text_part.get_content() if text_part is not None else None,
            headers=[{"name": k, "value": str(v)} for k, v in msg.items()],
            received=self.now(),
            sent=sent,
            mime=raw,
            attachments=attachments,
        )
        target.messages[message.id] = message
        self._change(target, message.id)
        return message

    def move(self, user: User, message_id: str, folder: str) -> Message:
        """Move a message; like Exchange, the moved message gets a new id."""
        source = next(f for f in user.folders.values() if message_id in f.messages)
        target = user.folder(folder)
        assert target is not None
        message = source.messages.pop(message_id)
        self._change(source, message_id)
        message.id, message.folder_id = _graph_id(), target.id
        target.messages[message.id] = message
        self._change(target, message.id)
        return message

    def delete(self, user: User, message_id: str) -> None:
        source = next(f for f in user.folders.values() if message_id in f.messages)
        del source.messages[message_id]
        self._change(source, message_id)

    def throttle(
        self,
        count: int = 1,
        *,
        retry_after: int | None = 1,
        status: int = 429,
        path_contains: str | None = None,
    ) -> None:
        code, message = (
            ("TooManyRequests", "Too many requests.")
            if status == 429
            else ("ServiceUnavailable", "The service is temporarily unavailable.")
        )
        self.rules.append(Rule(count, status, code, message, retry_after, path_contains))

    def burst_503(self, count: int, retry_after: int | None = None) -> None:
        self.throttle(count, retry_after=retry_after, status=503)

    def revoke(self, user: User | None = None) -> None:
        """Revoke refresh tokens (an admin's "revoke sessions", a password change)."""
        for grant in self.refresh_tokens.values():
            if user is None or grant.user_id == user.id:
                grant.revoked = True

    def tokens_for(
        self, user: User, scope: str = "offline_access Mail.ReadWrite Mail.Send"
    ) -> dict[str, Any]:
        """Tokens as the token endpoint would issue them (tests that skip the consent step)."""
        return self._issue(user.id, self.client_id, scope)

    # ------------------------------------------------------------ identity

    def _issue(self, user_id: str, client_id: str, scope: str) -> dict[str, Any]:
        now = self.now()
        access = "eyJ0eXAi" + secrets.token_urlsafe(48)
        self.access_tokens[access] = Grant(
            user_id, client_id, scope, now + self.access_token_lifetime
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": access,
        }
        if "offline_access" in scope.split():
            refresh = "0.AX" + secrets.token_urlsafe(64)
            self.refresh_tokens[refresh] = Grant(
                user_id, client_id, scope, now + self.refresh_token_lifetime
            )
            body["refresh_token"] = refresh
        if "openid" in scope.split():
            user = self.users[user_id]
            claims = {
                "aud": client_id, "iss": f"{self.base_url}/{self.tenant_id}/v2.0",
                "iat": int(now), "nbf": int(now), "exp": int(now) + 3600,
                "oid": user.id, "tid": self.tenant_id, "sub": user.id,
                "preferred_username": user.mail, "email": user.mail, "name": user.display_name,
            }  # fmt: skip
            if self.email_domain_verified:
                claims["xms_edov"] = True
            body["id_token"] = jwt.encode(
                claims, self._key, algorithm="RS256", headers={"kid": self._kid}
            )
        return body

    async def authorize(self, request: Request, tenant: str) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return Response("AADSTS700016: Application not found in the directory.", 400)
        redirect = q.get("redirect_uri", "")
        if redirect not in self.redirect_uris:
            return Response("AADSTS50011: The redirect URI does not match.", 400)
        state = q.get("state")
        extra = {"state": state} if state is not None else {}
        if q.get("response_type") != "code":
            return RedirectResponse(
                f"{redirect}?{urlencode({'error': 'unsupported_response_type', **extra})}", 302
            )
        hint = q.get("login_hint")
        user = self.user(hint) if hint else (self.users.get(self.default_user or ""))
        if user is None or not self.consent:
            params = {
                "error": "access_denied",
                "error_description": "AADSTS65004: User declined to consent.",
                **extra,
            }
            return RedirectResponse(f"{redirect}?{urlencode(params)}", 302)
        code = "0.AQ" + secrets.token_urlsafe(48)
        self.codes[code] = Grant(
            user.id, self.client_id, q.get("scope", ""), self.now() + 600, redirect_uri=redirect
        )
        params = {"code": code, **extra, "session_state": str(uuid.uuid4())}
        return RedirectResponse(f"{redirect}?{urlencode(params)}", 302)

    async def token(self, request: Request, tenant: str) -> Response:
        form = await request.form()
        grant_type = str(form.get("grant_type", ""))
        self.calls[f"token:{grant_type}"] += 1
        if form.get("client_id") != self.client_id:
            return oauth_error(400, "unauthorized_client", "AADSTS700016: Application not found.")
        if form.get("client_secret") != self.client_secret:
            return oauth_error(
                401, "invalid_client", "AADSTS7000215: Invalid client secret provided."
            )
        now = self.now()
        if grant_type == "authorization_code":
            grant = self.codes.get(str(form.get("code", "")))
            if grant is None:
                return oauth_error(
                    400, "invalid_grant", "AADSTS70000: The provided grant is invalid or malformed."
                )
            if grant.used:
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS54005: OAuth2 Authorization code was already redeemed.",
                )
            if grant.expires_at < now:
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS70008: The provided authorization code has expired.",
                )
            if form.get("redirect_uri") != grant.redirect_uri:
                return oauth_error(
                    400, "invalid_grant", "AADSTS50011: The redirect URI does not match."
                )
            grant.used = True
            return JSONResponse(self._issue(grant.user_id, grant.client_id, grant.scope))
        if grant_type == "refresh_token":
            grant = self.refresh_tokens.get(str(form.get("refresh_token", "")))
            if grant is None:
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS9002313: Invalid request. Request is malformed or invalid.",
                )
            if grant.revoked:
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS50173: The provided grant has expired due to it being revoked.",
                )
            if grant.expires_at < now:
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS700082: The refresh token has expired due to inactivity.",
                )
            scope = str(form.get("scope") or grant.scope)
            return JSONResponse(self._issue(grant.user_id, grant.client_id, scope))
        return oauth_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        )

    async def jwks(self, request: Request, tenant: str) -> Response:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return JSONResponse({"keys": [{**public, "kid": self._kid, "use": "sig"}]})

    # ------------------------------------------------------------ graph plumbing

    def _register_routes(self) -> None:
        user = r"(?:me|users/(?P<user>[^/]+))"
        routes: list[tuple[str, str, Callable[..., Awaitable[Response]]]] = [
            ("GET", r"me|users/(?P<user>[^/]+)", self.get_user),
            ("GET", rf"{user}/mailFolders(?:/|\()(?P<folder>[^/)]+)\)?/messages/delta", self.delta),
            ("GET", rf"{user}/messages/(?P<mid>[^/]+)", self.get_message),
            ("GET", rf"{user}/messages/(?P<mid>[^/]+)/\$value", self.get_mime),
            ("GET", rf"{user}/messages/(?P<mid>[^/]+)/attachments", self.list_attachments),
            ("GET", rf"{user}/messages/(?P<mid>[^/]+)/attachments/(?P<aid>[^/]+)",
             self.get_attachment),
            ("GET", rf"{user}/messages/(?P<mid>[^/]+)/attachments/(?P<aid>[^/]+)/\$value",
             self.attachment_value),
            ("POST", rf"{user}/sendMail", self.send_mail),
            ("POST", rf"{user}/messages/(?P<mid>[^/]+)/reply", self.reply),
        ]  # fmt: skip
        self._routes = [(m, re.compile(f"^(?:{p})$"), h) for m, p, h in routes]

    def _rule_for(self, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.remaining > 0 and (rule.path_contains is None or rule.path_contains in path):
                rule.remaining -= 1
                return rule
        return None

    def _caller(self, request: Request) -> tuple[Grant | None, Response | None]:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None, graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        grant = self.access_tokens.get(header[7:].strip())
        if grant is None:
            return None, graph_error(
                401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed."
            )
        if grant.expires_at < self.now():
            return None, graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return grant, None

    async def graph(self, request: Request) -> Response:
        path = request.path_params["path"]
        self.requests.append((request.method, path, dict(request.headers)))
        found = next(
            (
                (p.match(path), h)
                for m, p, h in self._routes
                if m == request.method and p.match(path)
            ),
            None,
        )
        if found is None or found[0] is None:
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{path}'.")
        match, handler = found
        self.calls[handler.__name__] += 1
        grant, failure = self._caller(request)
        if failure is not None:
            return failure
        assert grant is not None
        target = (
            self.user(match.group("user"))
            if match.groupdict().get("user")
            else self.users.get(grant.user_id)
        )
        if target is None:
            return graph_error(404, "ErrorInvalidUser", "The requested user is invalid.")
        if target.id != grant.user_id and grant.user_id not in target.delegates:
            return graph_error(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        rule = self._rule_for(path)
        if rule is not None:
            headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
            return graph_error(rule.status, rule.code, rule.message, headers)
        self.in_flight[target.id] += 1
        try:
            if self.in_flight[target.id] > self.concurrency_limit:
                self.calls["throttled:MailboxConcurrency"] += 1
                return graph_error(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": "1"},
                )
            self.max_in_flight[target.id] = max(
                self.max_in_flight[target.id], self.in_flight[target.id]
            )
            if self.latency:
                await asyncio.sleep(self.latency)
            kwargs = {k: v for k, v in match.groupdict().items() if k != "user"}
            return await handler(request, target, **kwargs)
        finally:
            self.in_flight[target.id] -= 1

    # ------------------------------------------------------------ graph endpoints

    async def get_user(self, request: Request, user: User) -> Response:
        return JSONResponse({
            "@odata.context": f"{self.base_url}{GRAPH_PREFIX}/$metadata#users/$entity",
            "id": user.id, "displayName": user.display_name, "mail": user.mail,
            "userPrincipalName": user.mail, "givenName": None, "surname": None,
        })  # fmt: skip

    def _fields(self, select: str | None) -> tuple[set[str], Response | None]:
        if not select:
            return set(DEFAULT_FIELDS), None
        wanted = {s.strip() for s in select.split(",") if s.strip()}
        unknown = wanted - MESSAGE_FIELDS
        if unknown:
            name = sorted(unknown)[0]
            return set(), graph_error(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.message'.",
            )
        return wanted | {"id"}, None

    def _body_type(self, request: Request) -> str | None:
        prefer = request.headers.get("prefer", "")
        match = re.search(r'outlook\.body-content-type="?(html|text)"?', prefer)
        return match.group(1) if match else None

    def _render(self, message: Message, fields: set[str], body_type: str | None) -> dict[str, Any]:
        kind = body_type or "html"
        if kind == "text":
            content = (
                message.text
                if message.text is not None
                else re.sub(r"<[^>]+>", "", message.html or "")
            )
        elif message.html is not None:
            content = message.html
        else:
            content = f"<html><body><div>{html.escape(message.text or '')}</div></body></html>"
        values = {
            "id": message.id,
            "createdDateTime": _iso(message.received),
            "lastModifiedDateTime": _iso(message.received),
            "changeKey": message.change_key,
            "categories": [],
            "receivedDateTime": _iso(message.received),
            "sentDateTime": _iso(message.sent),
            "hasAttachments": any(not a.is_inline for a in message.attachments),
            "internetMessageId": message.internet_message_id,
            "subject": message.subject,
            "bodyPreview": (message.text or re.sub(r"<[^>]+>", "", message.html or ""))[:255],
            "importance": "normal",
            "parentFolderId": message.folder_id,
            "conversationId": message.conversation_id,
            "conversationIndex": base64.b64encode(message.conversation_id.encode()[:22]).decode(),
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": message.is_read,
            "isDraft": False,
            "webLink": f"https://outlook.office365.com/owa/?ItemID={message.id}",
            "inferenceClassification": "focused",
            "body": {"contentType": kind, "content": content},
            "uniqueBody": {"contentType": kind, "content": content},
            "sender": message.sender,
            "from": message.sender,
            "toRecipients": message.to,
            "ccRecipients": message.cc,
            "bccRecipients": [],
            "replyTo": message.reply_to,
            "flag": {"flagStatus": "notFlagged"},
            "internetMessageHeaders": message.headers,
        }
        out = {
            "@odata.type": "#microsoft.graph.message",
            "@odata.etag": f'W/"{message.change_key}"',
        }
        out.update({k: v for k, v in values.items() if k in fields})
        return out

    def _link(self, user: User, folder: Folder, state: dict[str, Any], kind: str) -> str:
        base = f"{self.base_url}{GRAPH_PREFIX}/users/{user.id}/mailFolders('{folder.id}')"
        return f"{base}/messages/delta?{kind}={_b64url(state)}"

    async def delta(self, request: Request, user: User, folder: str) -> Response:
        target = user.folder(folder)
        if target is None:
            return graph_error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        q = request.query_params
        token = q.get("$deltatoken") or q.get("$skiptoken")
        if token:
            state = _unb64url(token)
            if (
                state is None
                or state.get("g") != self.sync_generation
                or state.get("f") != target.id
            ):
                return graph_error(
                    410, "SyncStateNotFound", "The sync state generation is no longer available."
                )
            if "$deltatoken" in q:  # a new round from the stored delta link
                state = {**state, "s": state["e"], "e": self._seq, "o": 0}
        else:
            fields, failure = self._fields(q.get("$select"))
            if failure is not None:
                return failure
            prefer = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
            top = int(q.get("$top") or (prefer.group(1) if prefer else self.default_page_size))
            state = {
                "f": target.id,
                "s": 0,
                "e": self._seq,
                "o": 0,
                "sel": sorted(fields),
                "top": max(1, min(top, 1000)),
                "g": self.sync_generation,
            }
        ids = self._changed_ids(target, state["s"], state["e"])
        page = ids[state["o"] : state["o"] + state["top"]]
        values = []
        for mid in page:
            message = target.messages.get(mid)
            if message is None:
                values.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": mid,
                        "@removed": {"reason": "deleted"},
                    }
                )
            else:
                values.append(self._render(message, set(state["sel"]), self._body_type(request)))
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}{GRAPH_PREFIX}/$metadata#Collection(message)",
            "value": values,
        }
        if state["o"] + state["top"] < len(ids):
            body["@odata.nextLink"] = self._link(
                user, target, {**state, "o": state["o"] + state["top"]}, "$skiptoken"
            )
        else:
            body["@odata.deltaLink"] = self._link(user, target, {**state, "o": 0}, "$deltatoken")
        headers = {}
        if self._body_type(request):
            headers["Preference-Applied"] = (
                f'outlook.body-content-type="{self._body_type(request)}"'
            )
        return JSONResponse(body, headers=headers)

    def _changed_ids(self, folder: Folder, start: int, end: int) -> list[str]:
        if start == 0:  # the first round: what is in the folder now
            order = {mid: seq for seq, mid in folder.changes if seq <= end}
            return sorted((m for m in order if m in folder.messages), key=lambda m: order[m])
        latest: dict[str, int] = {}
        for seq, mid in folder.changes:
            if start < seq <= end:
                latest[mid] = seq
        return sorted(latest, key=lambda m: latest[m])

    def _find(self, user: User, mid: str) -> Message | None:
        for folder in user.folders.values():
            if mid in folder.messages:
                return folder.messages[mid]
        return None

    def _not_found(self) -> Response:
        return graph_error(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )

    async def get_message(self, request: Request, user: User, mid: str) -> Response:
        message = self._find(user, mid)
        if message is None:
            return self._not_found()
        fields, failure = self._fields(request.query_params.get("$select"))
        if failure is not None:
            return failure
        return JSONResponse(self._render(message, fields, self._body_type(request)))

    async def get_mime(self, request: Request, user: User, mid: str) -> Response:
        message = self._find(user, mid)
        if message is None:
            return self._not_found()
        return Response(message.mime, media_type="message/rfc822")

    def _attachment_json(self, att: Attachment, with_bytes: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": f"#microsoft.graph.{att.kind}Attachment",
            "id": att.id, "lastModifiedDateTime": _iso(self.now()), "name": att.name,
            "contentType": att.content_type, "size": len(att.data), "isInline": att.is_inline,
        }  # fmt: skip
        if att.kind == "file":
            out["contentId"] = att.content_id
            out["contentLocation"] = None
            if with_bytes and len(att.data) <= self.inline_attachment_limit:
                out["contentBytes"] = base64.b64encode(att.data).decode()
        return out

    async def list_attachments(self, request: Request, user: User, mid: str) -> Response:
        message = self._find(user, mid)
        if message is None:
            return self._not_found()
        values = [self._attachment_json(a, True) for a in message.attachments]
        return JSONResponse(
            {
                "@odata.context": f"{self.base_url}{GRAPH_PREFIX}/$metadata#attachments",
                "value": values,
            }
        )

    def _attachment(self, user: User, mid: str, aid: str) -> Attachment | None:
        message = self._find(user, mid)
        return next((a for a in message.attachments if a.id == aid), None) if message else None

    async def get_attachment(self, request: Request, user: User, mid: str, aid: str) -> Response:
        att = self._attachment(user, mid, aid)
        return JSONResponse(self._attachment_json(att, True)) if att else self._not_found()

    async def attachment_value(self, request: Request, user: User, mid: str, aid: str) -> Response:
        att = self._attachment(user, mid, aid)
        if att is None:
            return self._not_found()
        return Response(
            att.data, media_type="message/rfc822" if att.kind == "item" else att.content_type
        )

    def _save_sent(self, user: User, raw: bytes) -> None:
        self.deliver(user, raw, "sentitems")

    async def send_mail(self, request: Request, user: User) -> Response:
        ctype = request.headers.get("content-type", "")
        body = await request.body()
        if ctype.startswith("text/plain"):
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                return graph_error(
                    400,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                )
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            if not parsed.get("To") and not parsed.get("Cc") and not parsed.get("Bcc"):
                return graph_error(
                    400, "ErrorInvalidRecipients", "At least one recipient is not valid."
                )
            self.sent.append(SentMail(user.id, "mime", raw))
            self._save_sent(user, raw)
            return Response(status_code=202)
        try:
            payload = orjson.loads(body)
            message = payload["message"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return graph_error(400, "ErrorInvalidRequest", "Cannot read the request body.")
        if (
            not message.get("toRecipients")
            and not message.get("ccRecipients")
            and not message.get("bccRecipients")
        ):
            return graph_error(
                400, "ErrorInvalidRecipients", "At least one recipient is not valid."
            )
        self.sent.append(SentMail(user.id, "json", payload))
        if payload.get("saveToSentItems", True):
            self._save_sent(user, self._json_to_mime(user, message))
        return Response(status_code=202)

    def _json_to_mime(
        self, user: User, message: dict[str, Any], in_reply_to: str | None = None
    ) -> bytes:
        out = email.message.EmailMessage()
        out["From"] = user.mail
        to = [r["emailAddress"]["address"] for r in message.get("toRecipients", [])]
        if to:
            out["To"] = ", ".join(to)
        out["Subject"] = message.get("subject", "")
        out["Message-ID"] = email.utils.make_msgid(domain=user.mail.split("@")[1])
        if in_reply_to:
            out["In-Reply-To"] = in_reply_to
            out["References"] = in_reply_to
        body = message.get("body", {})
        if body.get("contentType", "text").lower() == "html":
            out.set_content(body.get("content", ""), subtype="html")
        else:
            out.set_content(body.get("content", ""))
        return out.as_bytes()

    async def reply(self, request: Request, user: User, mid: str) -> Response:
        original = self._find(user, mid)
        if original is None:
            return self._not_found()
        try:
            payload = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            return graph_error(400, "ErrorInvalidRequest", "Cannot read the request body.")
        message = payload.get("message") or {}
        recipients = message.get("toRecipients") or [original.sender]
        reply = {
            "subject": f"RE: {original.subject}",
            "toRecipients": recipients,
            "body": {"contentType": "html", "content": payload.get("comment", "")},
        }
        self.sent.append(SentMail(user.id, "reply", payload, original.internet_message_id))
        self._save_sent(user, self._json_to_mime(user, reply, original.internet_message_id))
        return Response(status_code=202)

    # ------------------------------------------------------------ ASGI

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = request.url.path
        response: Response
        if path.startswith(GRAPH_PREFIX + "/"):
            request.scope["path_params"] = {"path": path[len(GRAPH_PREFIX) + 1 :]}
            response = await self.graph(request)
        elif m := re.match(r"^/([^/]+)/oauth2/v2\.0/(authorize|token)$", path):
            tenant, action = m.groups()
            self.calls[action] += 1
            if action == "authorize" and request.method == "GET":
                response = await self.authorize(request, tenant)
            elif action == "token" and request.method == "POST":
                response = await self.token(request, tenant)
            else:
                response = Response(status_code=405)
        elif m := re.match(r"^/([^/]+)/discovery/v2\.0/keys$", path):
            response = await self.jwks(request, m.group(1))
        else:
            response = Response("not found", status_code=404)
        await response(scope, receive, send)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on a free 127.0.0.1 port in the current event loop; yields the base URL."""
        port = free_port()
        config = uvicorn.Config(
            self, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"
        try:
            yield self.base_url
        finally:
            server.should_exit = True
            await task


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


__all__ = ["GraphEmulator", "Message", "SentMail", "User", "query_of"]
