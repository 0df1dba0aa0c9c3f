"""API tokens are accepted by the bearer check beside agent JWTs."""

from __future__ import annotations

from enque.apitokens.service import TOKEN_PREFIX, resolve
from enque.auth.deps import TOKEN_RESOLVERS
from enque.core.runtime import Runtime


def setup(runtime: Runtime) -> None:
    TOKEN_RESOLVERS[TOKEN_PREFIX] = resolve
