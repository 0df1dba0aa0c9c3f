"""Plausible requests for any operation of the OpenAPI document, for the route walks.

Bodies are built from the request schema (required fields only, a valid value per type); a
few fields need a value the schema cannot describe (an email address, a password): those are
filled by name. An operation whose generated body is still refused can name its own body in
`BODY_OVERRIDES`, next to the factories the walks use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PARAM = re.compile(r"\{([^}]+)\}")

BY_NAME: dict[str, Any] = {
    "email": "walker@example.com",
    "password": "a walking password 123",
    "currentPassword": "a walking password 123",
    "url": "https://example.com/hook",
    "subdomain": "walk-subdomain",
    "timezone": "UTC",
    "content": "<p>walk</p>",
    "subject": "walk",
}

# (METHOD, path template) → body, where the schema alone cannot make a valid request
BODY_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    def segment_of(self, param: str) -> str:
        """The path segment naming the resource of `param` (`teams` in /v1/teams/{team_id})."""
        parts = self.path.split("/")
        return parts[parts.index("{" + param + "}") - 1]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(openapi: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in openapi["paths"].items():
        for method, spec in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append(Operation(method.upper(), path, spec))
    return found


def _resolve(schema: dict[str, Any], openapi: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = openapi["components"]["schemas"][name]
    return schema


def sample(schema: dict[str, Any], openapi: dict[str, Any], name: str = "") -> Any:
    """A value valid for `schema` (required properties only)."""
    schema = _resolve(schema, openapi)
    if name in BY_NAME:
        return BY_NAME[name]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(s, openapi).get("type") != "null"]
            return sample(options[0] if options else schema[key][0], openapi, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: sample(props[k], openapi, k) for k in schema.get("required", []) if k in props}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [sample(schema.get("items", {}), openapi, name) for _ in range(count)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(float(schema.get("minimum", 1)), 1.0)
    if kind == "boolean":
        return False
    if kind == "string":
        size = max(schema.get("minLength", 1), 4)
        if schema.get("format") == "email":
            return BY_NAME["email"]
        return "walk"[:size].ljust(size, "x")
    return None


def body_for(op: Operation, openapi: dict[str, Any]) -> dict[str, Any] | None:
    if (op.method, op.path) in BODY_OVERRIDES:
        return BODY_OVERRIDES[(op.method, op.path)]
    content = op.spec.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        return None
    value = sample(schema, openapi)
    return value if isinstance(value, dict) else {}


def query_for(op: Operation, openapi: dict[str, Any]) -> dict[str, Any]:
    """Required query parameters with valid values."""
    query = {}
    for param in op.spec.get("parameters", []):
        if param.get("in") == "query" and param.get("required"):
            query[param["name"]] = sample(param.get("schema", {}), openapi, param["name"])
    return query
