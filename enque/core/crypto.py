"""AES-256-GCM for secrets stored in the database, with a key id for rotation."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1"


class DecryptionError(Exception):
    pass


def _key_bytes(key: str) -> bytes:
    """A 32-byte key: base64 of 32 bytes as given, else the SHA-256 of the passphrase."""
    try:
        raw = base64.b64decode(key, validate=True)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    return hashlib.sha256(key.encode()).digest()


def key_id(key: str) -> str:
    return hashlib.sha256(b"enque-key-id" + _key_bytes(key)).hexdigest()[:12]


class Cipher:
    """Encrypts with the current key; decrypts with it or any old key, chosen by key id."""

    def __init__(self, current: str, old: list[str] | None = None) -> None:
        self.current_id = key_id(current)
        self._keys = {key_id(k): AESGCM(_key_bytes(k)) for k in [*(old or []), current]}

    def encrypt(self, plaintext: str, context: str = "") -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.current_id].encrypt(nonce, plaintext.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_PREFIX}:{self.current_id}:{blob}"

    def decrypt(self, token: str, context: str = "") -> str:
        try:
            prefix, kid, blob = token.split(":", 2)
            if prefix != _PREFIX or kid not in self._keys:
                raise DecryptionError(f"no key with id {kid}")
            data = base64.urlsafe_b64decode(blob.encode())
            return self._keys[kid].decrypt(data[:12], data[12:], context.encode()).decode()
        except DecryptionError:
            raise
        except Exception as exc:
            raise DecryptionError("stored secret cannot be decrypted") from exc

    def needs_rotation(self, token: str) -> bool:
        return token.split(":", 2)[1] != self.current_id if token.count(":") >= 2 else True
