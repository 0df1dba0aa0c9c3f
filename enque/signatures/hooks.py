"""Signatures plug into public replies through `runtime.services["signatures"]`."""

from __future__ import annotations

from enque.core.runtime import Runtime
from enque.signatures.service import signature_for


def setup(runtime: Runtime) -> None:
    runtime.services["signatures"] = signature_for
