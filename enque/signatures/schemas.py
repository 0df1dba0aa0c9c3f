from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.core.api import ApiInput, ApiModel


class WorkspaceSignatureOut(ApiModel):
    content: str
    is_enabled: bool
    updated_by_id: str | None
    updated_at: int | None


class WorkspaceSignatureIn(ApiInput):
    content: Annotated[str, Field(max_length=20_000)]
    is_enabled: bool = True
