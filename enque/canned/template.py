"""Placeholders of canned replies: checked when saved, rendered in a sandbox.

A template may use only the documented names (`{{customer.name}}`, `{{ticket.number}}`, …,
and custom field values as `{{ticket.custom.<key>}}` or `{{customer.custom.<key>}}`),
a few text filters (`{{ customer.name | default("there") }}`) and `{% if %}` on those names.
Anything else (other names, attribute walks like `customer.__class__`, calls, loops, macros,
includes) is refused when the canned reply is saved, and the renderer itself is a Jinja2
`SandboxedEnvironment` that resolves names only as keys of the plain dict context it is given,
so even a template that skipped the check reaches nothing else. Values are HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.sandbox import SandboxedEnvironment

# the names a template may use: object → fields
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "customer": ("name", "email"),
    "agent": ("name", "email"),
    "ticket": ("id", "number", "subject"),
    "workspace": ("name",),
}
# objects whose custom field values a template may name (`{{ticket.custom.plan}}`)
WITH_CUSTOM = ("ticket", "customer")
FILTERS = ("default", "upper", "lower", "title", "capitalize", "trim")
MAX_TEMPLATE = 100_000

_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.If,
    nodes.Not,
    nodes.And,
    nodes.Or,
    nodes.CondExpr,
)


class TemplateProblem(ValueError):
    """The template uses something outside the documented placeholders."""


class _Sandbox(SandboxedEnvironment):
    """Names resolve as keys of plain mappings only: no attribute of any Python object."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Mapping) and isinstance(argument, str) and argument in obj:
            return obj[argument]
        return self.undefined(obj=obj, name=str(argument))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return False


def _environment() -> _Sandbox:
    env = _Sandbox(autoescape=True, finalize=lambda v: "" if v is None else v)
    env.filters = {name: JINJA_FILTERS[name] for name in FILTERS}
    env.tests = {}
    env.globals = {}
    return env


ENV = _environment()


def _placeholder(node: nodes.Getattr) -> str:
    inner = node.node
    if (
        isinstance(inner, nodes.Getattr)
        and inner.attr == "custom"
        and isinstance(inner.node, nodes.Name)
        and inner.node.name in WITH_CUSTOM
    ):
        return f"{inner.node.name}.custom.{node.attr}"
    if not isinstance(node.node, nodes.Name):
        raise TemplateProblem("only placeholders like {{customer.name}} may be used")
    owner, field = node.node.name, node.attr
    if field not in PLACEHOLDERS.get(owner, ()):
        raise TemplateProblem(f"unknown placeholder {{{{{owner}.{field}}}}}")
    return f"{owner}.{field}"


def _walk(node: nodes.Node) -> Iterator[str]:
    """The placeholders used, or TemplateProblem at the first thing not allowed."""
    if isinstance(node, nodes.Getattr):
        yield _placeholder(node)
        return
    if isinstance(node, nodes.Filter):
        if node.name not in FILTERS:
            raise TemplateProblem(f"unknown filter '{node.name}' (allowed: {', '.join(FILTERS)})")
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise TemplateProblem(f"filter '{node.name}' takes plain values only")
        if not all(isinstance(arg, nodes.Const) for arg in node.args):
            raise TemplateProblem(f"filter '{node.name}' takes plain values only")
        if node.node is None:
            raise TemplateProblem("filter blocks are not allowed")
        yield from _walk(node.node)
        return
    if isinstance(node, nodes.Name):
        raise TemplateProblem(
            f"'{node.name}' alone is not a placeholder; use e.g. {{{{customer.name}}}}"
        )
    if not isinstance(node, _ALLOWED_NODES):
        raise TemplateProblem(f"{type(node).__name__.lower()} is not allowed in a canned reply")
    for child in node.iter_child_nodes():
        yield from _walk(child)


def check_template(source: str) -> list[str]:
    """The placeholders `source` uses (sorted); TemplateProblem when it is not allowed."""
    if len(source) > MAX_TEMPLATE:
        raise TemplateProblem(f"at most {MAX_TEMPLATE} characters")
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from exc
    return sorted(set(_walk(tree)))


def render_template(source: str, context: dict[str, dict[str, Any]]) -> str:
    """Render a checked template with a plain dict context; values are HTML-escaped."""
    check_template(source)
    plain: dict[str, dict[str, Any]] = {
        owner: {field: context.get(owner, {}).get(field) for field in fields}
        for owner, fields in PLACEHOLDERS.items()
    }
    for owner in WITH_CUSTOM:
        custom = context.get(owner, {}).get("custom") or {}
        plain[owner]["custom"] = {
            str(k): ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in custom.items()
        }
    return ENV.from_string(source).render(plain)
