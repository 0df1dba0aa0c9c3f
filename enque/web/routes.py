"""Serves the agent web app: `/` (the page) and `/assets/*` (ES modules, CSS, icons).

The app is plain files under `static/`: no build step and no Node.js at run time. It uses
only the public `/v1` API and the `/v1/realtime` socket. Every file is read once, gzipped
once, and answered with an ETag so a reload costs a 304 per file.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import Request, Response

from enque.core.api import api_router
from enque.core.errors import ApiError

STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https:",
        "connect-src 'self' ws: wss:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".ico": "image/x-icon",
    ".png": "image/png",
}

router = api_router(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


@cache
def load(relative: str) -> Asset | None:
    """The file under `static/` (never outside it), with its gzip form and ETag."""
    root = STATIC.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    body = path.read_bytes()
    content_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    content_type = content_type or "application/octet-stream"
    packed = (
        gzip.compress(body, 9, mtime=0) if path.suffix in (".js", ".css", ".html", ".svg") else None
    )
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, packed if packed and len(packed) < len(body) else None, content_type, etag)


def serve(request: Request, asset: Asset, *, page: bool = False) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if page:
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.content_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    asset = load("index.html")
    if asset is None:
        raise ApiError("NOT_FOUND", "The web app is not installed")
    return serve(request, asset, page=True)


# Pages that mail and OAuth flows link to (core/mail.py `public_link`, Microsoft's result):
# the same app, which reads the path and the one-time token from the address.
APP_PATHS = ("/reset-password", "/accept-invitation", "/settings/mailboxes", "/signin")
for _path in APP_PATHS:
    router.add_api_route(_path, index, methods=["GET"])


@router.get("/assets/{path:path}")
async def static_asset(path: str, request: Request) -> Response:
    asset = load(path) if path and not path.startswith(".") else None
    if asset is None:
        raise ApiError("NOT_FOUND", "No such file")
    return serve(request, asset)
