"""Scopes of API tokens: `<area>:read` or `<area>:write` (write includes read), `*:read`,
`*:write`. The area of a request is the first path segment after `/v1/`.

Tokens never reach the areas that manage people's sign-in or the tokens themselves.
"""

from __future__ import annotations

from enque.core.deps import READ_METHODS

AREAS = frozenset(
    {
        "tickets",
        "comments",
        "customers",
        "companies",
        "categories",
        "tags",
        "teams",
        "agents",
        "mailboxes",
        "automations",
        "attachments",
        "views",
        "custom-fields",
        "sla-policies",
        "sla",
        "csat",
        "csat-settings",
        "business-hours",
        "webhooks",
        "reports",
        "search",
        "activity",
        "notifications",
    }
)
LEVELS = ("read", "write")
FORBIDDEN_AREAS = frozenset({"auth", "api-tokens", "workspaces", "invitations", "profile"})


def valid_scope(scope: str) -> bool:
    area, _, level = scope.partition(":")
    return level in LEVELS and (area == "*" or area in AREAS)


def area_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) < 3 or parts[1] != "v1":
        return None
    return parts[2]


def allows(scopes: frozenset[str], method: str, path: str) -> bool:
    """Whether a token with `scopes` may make this request."""
    area = area_of(path)
    if area is None or area in FORBIDDEN_AREAS:
        return False
    wanted = ("read", "write") if method in READ_METHODS else ("write",)
    return any(f"{a}:{level}" in scopes for a in (area, "*") for level in wanted)
