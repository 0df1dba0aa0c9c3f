"""Discovery of the domain packages: their tables, routers and start-up hooks.

A domain is a sub-package of `enque` that may hold `models.py` (tables), `routes.py`
(a `router`) and `hooks.py` (a `setup(runtime)` that registers reactions and jobs).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import cache
from types import ModuleType

import enque

NOT_DOMAINS = frozenset({"core", "migrations", "tests"})


@cache
def domain_names() -> tuple[str, ...]:
    names = [
        info.name
        for info in pkgutil.iter_modules(enque.__path__)
        if info.ispkg and info.name not in NOT_DOMAINS
    ]
    return tuple(sorted(names))


def _modules(kind: str) -> list[ModuleType]:
    found = []
    for name in domain_names():
        module_name = f"enque.{name}.{kind}"
        if importlib.util.find_spec(module_name) is not None:
            found.append(importlib.import_module(module_name))
    return found


def load_models() -> None:
    """Import every domain's tables so `Base.metadata` knows them all."""
    _modules("models")


def route_modules() -> list[ModuleType]:
    return _modules("routes")


def hook_modules() -> list[ModuleType]:
    return _modules("hooks")
