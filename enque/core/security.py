"""Password hashing (argon2id, legacy bcrypt) and JWT access tokens."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import bcrypt
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from enque.core.db import new_id, now

# RFC 9106 "second recommended option" lowered in memory: 19 MiB, t=2, p=1 is OWASP's argon2id
# baseline; it costs ~20 ms per hash on one core here, which bounds login throughput on purpose.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@functools.cache
def _dummy_hash() -> str:
    """A valid hash of a random password, verified when the email is unknown so both paths cost
    alike (made on first use: a hash costs start-up tens of milliseconds)."""
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _legacy_bcrypt_input(password: str) -> bytes:
    """The old system replaced passwords over 72 bytes by their SHA-256 hex digest."""
    raw = password.encode()
    if len(raw) > 72:
        return hashlib.sha256(raw).hexdigest().encode()
    return raw


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored` (argon2id or legacy bcrypt)."""
    if not stored:
        _burn(password)
        return False
    if stored.startswith(_BCRYPT_PREFIXES):
        candidate = stored.replace("$2y$", "$2b$", 1).encode()
        try:
            return bcrypt.checkpw(_legacy_bcrypt_input(password), candidate)
        except ValueError:
            return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _burn(password: str) -> None:
    """Spend the time of one verification, for unknown accounts."""
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy_hash(), password)


def burn_password_time(password: str) -> None:
    _burn(password)


def needs_rehash(stored: str) -> bool:
    if stored.startswith(_BCRYPT_PREFIXES):
        return True
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


# ---------------------------------------------------------------- opaque tokens


def new_token() -> str:
    """A random URL-safe token (invitations, password resets)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored only as their SHA-256; lookups hash the presented one."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ---------------------------------------------------------------- JWT


@dataclass(frozen=True)
class TokenClaims:
    agent_id: str
    workspace_id: str
    role: str
    jti: str
    issued_at: int
    expires_at: int
    token_version: int


class InvalidToken(Exception):
    pass


def issue_token(
    *,
    secret: str,
    agent_id: str,
    workspace_id: str,
    role: str,
    token_version: int,
    lifetime: int,
    algorithm: str = "HS256",
) -> tuple[str, TokenClaims]:
    issued = now()
    claims = TokenClaims(
        agent_id=agent_id,
        workspace_id=workspace_id,
        role=role,
        jti=new_id(),
        issued_at=issued,
        expires_at=issued + lifetime,
        token_version=token_version,
    )
    payload: dict[str, Any] = {
        "sub": agent_id,
        "wid": workspace_id,
        "role": role,
        "jti": claims.jti,
        "iat": issued,
        "exp": claims.expires_at,
        "tv": token_version,
    }
    return jwt.encode(payload, secret, algorithm=algorithm), claims


# Tokens verified before, by (secret, algorithm, token): the signature is checked once per
# process; expiry is checked on every use. Bounded, least recently used out first.
_VERIFIED: OrderedDict[tuple[str, str, str], TokenClaims] = OrderedDict()
_VERIFIED_MAX = 10_000


def decode_token(token: str, *, secret: str, algorithm: str = "HS256") -> TokenClaims:
    """Verify signature, algorithm and expiry; anything off raises InvalidToken."""
    key = (secret, algorithm, token)
    claims = _VERIFIED.get(key)
    if claims is not None:
        if claims.expires_at <= time.time():
            del _VERIFIED[key]
            raise InvalidToken("Signature has expired")
        _VERIFIED.move_to_end(key)
        return claims
    claims = _decode(token, secret=secret, algorithm=algorithm)
    _VERIFIED[key] = claims
    if len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return claims


def _decode(token: str, *, secret: str, algorithm: str) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[algorithm],
            options={"require": ["sub", "wid", "role", "jti", "iat", "exp"]},
        )
        return TokenClaims(
            agent_id=str(payload["sub"]),
            workspace_id=str(payload["wid"]),
            role=str(payload["role"]),
            jti=str(payload["jti"]),
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            token_version=int(payload.get("tv", 0)),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
