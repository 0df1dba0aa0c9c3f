from __future__ import annotations

from typing import Any

from enque.core.api import ApiModel


class WorkspaceOut(ApiModel):
    id: str
    name: str
    subdomain: str
    timezone: str
    settings: dict[str, Any]
    is_active: bool
    created_at: int
    updated_at: int
