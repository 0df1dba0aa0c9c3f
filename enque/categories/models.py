from __future__ import annotations

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TenantMixin, TimestampMixin

LIVE = text("deleted_at IS NULL")


class Category(IdMixin, TimestampMixin, TenantMixin, Base):
    """A label for the kind of request; deleting one keeps it on the tickets that carry it."""

    __tablename__ = "categories"
    __table_args__ = (
        Index(
            "uq_categories_workspace_name",
            "workspace_id",
            text("lower(name)"),
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(7), default=None)
    deleted_at: Mapped[int | None] = mapped_column(default=None)
