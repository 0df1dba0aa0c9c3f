from __future__ import annotations

from typing import Literal

from enque.core.api import ApiModel


class ViewerOut(ApiModel):
    """An agent on a ticket now (over all their sockets: `typing` wins over `viewing`)."""

    agent_id: str
    state: Literal["viewing", "typing"]
    since: int
