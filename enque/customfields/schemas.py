from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from enque.core.api import ApiInput, ApiModel, not_null

Entity = Literal["ticket", "user", "company"]
FieldType = Literal["text", "number", "date", "dropdown", "multiselect", "checkbox"]
Options = Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=500)]


class CustomFieldIn(ApiInput):
    entity: Entity
    key: Annotated[str, Field(min_length=1, max_length=50)]
    label: Annotated[str, Field(min_length=1, max_length=200)]
    type: FieldType
    options: Options = []
    required_on_close: bool = False
    position: Annotated[int, Field(ge=0, le=100000)] = 0


class CustomFieldPatchIn(ApiInput):
    label: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    options: Options | None = None
    required_on_close: bool | None = None
    position: Annotated[int | None, Field(ge=0, le=100000)] = None

    _not_null = not_null("label", "options", "required_on_close", "position")


class CustomFieldOut(ApiModel):
    id: str
    entity: str
    key: str
    label: str
    type: str
    options: list[str]
    required_on_close: bool
    position: int
    created_at: int
    updated_at: int


class ValuesIn(ApiInput):
    custom_fields: Annotated[dict[str, Any], Field(max_length=200)]


class ValuesOut(ApiModel):
    id: str
    custom_fields: dict[str, Any]
