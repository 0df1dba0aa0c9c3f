from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, JSONType, TenantMixin, TimestampMixin


class CustomField(IdMixin, TimestampMixin, TenantMixin, Base):
    """A workspace's own field on tickets, customers (`user`) or companies."""

    __tablename__ = "custom_fields"
    __table_args__ = (UniqueConstraint("workspace_id", "entity", "key"),)

    entity: Mapped[str] = mapped_column(String(16))  # ticket | user | company
    key: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[list[Any]] = mapped_column(default=list)
    required_on_close: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)


class CustomFieldValue(IdMixin, TimestampMixin, TenantMixin, Base):
    """One field's value on one entity; `value_text` / `value_number` are the filter keys."""

    __tablename__ = "custom_field_values"
    __table_args__ = (
        UniqueConstraint("field_id", "entity_id"),
        Index("ix_custom_field_values_entity", "workspace_id", "entity_id"),
        Index("ix_custom_field_values_text", "field_id", "value_text", "entity_id"),
        Index("ix_custom_field_values_number", "field_id", "value_number", "entity_id"),
    )

    field_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("custom_fields.id", ondelete="CASCADE")
    )
    entity_id: Mapped[str] = mapped_column(String(36))
    value: Mapped[Any] = mapped_column(JSONType)
    value_text: Mapped[str | None] = mapped_column(String(255), default=None)
    value_number: Mapped[float | None] = mapped_column(Float, default=None)
