from __future__ import annotations

from typing import Annotated

from pydantic import Field

from enque.core.api import ApiInput, ApiModel

Name = Annotated[str, Field(min_length=1, max_length=100)]
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]


class CategoryOut(ApiModel):
    id: str
    name: str
    color: str | None
    created_at: int
    updated_at: int


class CategoryIn(ApiInput):
    name: Name
    color: Color | None = None


class CategoryPatch(ApiInput):
    name: Name | None = None
    color: Color | None = None
