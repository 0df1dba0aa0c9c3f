"""Canned replies for the automations: the `send_canned_reply` renderer and id lookup."""

from __future__ import annotations

from enque.canned import service
from enque.core.runtime import Runtime


def setup(runtime: Runtime) -> None:
    runtime.services["canned_render"] = service.render_for_automation
    runtime.services.setdefault("lookups", {})["canned_reply"] = service.canned_reply_ids
