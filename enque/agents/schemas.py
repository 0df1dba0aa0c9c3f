from __future__ import annotations

from enque.core.api import ApiModel


class AgentOut(ApiModel):
    """An agent as others see it; never carries hashes or tokens (allow-list)."""

    id: str
    email: str
    display_name: str
    avatar_url: str | None
    job_title: str | None
    phone: str | None
    auth_method: str
    is_active: bool
    last_login_at: int | None
    created_at: int
    updated_at: int
    role: str | None = None
