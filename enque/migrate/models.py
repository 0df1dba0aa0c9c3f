"""Tables of the legacy migration: the id map and one row per migrated source."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from enque.core.db import Base, IdMixin, TimestampMixin


class LegacyMigration(IdMixin, TimestampMixin, Base):
    """A legacy source migrated into this database, with the namespace its new ids derive from.

    Kept after the migration: a re-run (or `--since` delta run) finds it by `source` and
    derives exactly the same ids.
    """

    __tablename__ = "legacy_migrations"

    source: Mapped[str] = mapped_column(String(255), unique=True)  # host:port/database
    namespace: Mapped[str] = mapped_column(String(36))  # random UUID, key of the id derivation
    epoch_ms: Mapped[int] = mapped_column(BigInteger)  # UUIDv7 time of every derived id
    last_completed_at: Mapped[int | None] = mapped_column(default=None)
    last_since: Mapped[int | None] = mapped_column(default=None)  # cut-off of the last full run


class LegacyIdMap(Base):
    """`(source_table, old_id)` → `new_id`: remaps foreign keys; a re-run maps the same way.

    `old_id` is the legacy primary key as text, or a composite key for rows the migration
    derives (`"<comment id>:<n>"` for an inline image, `"<workspace id>:<email>"` for a
    customer found only in an `<original-sender>` marker).
    """

    __tablename__ = "legacy_id_map"
    __table_args__ = (Index("ix_legacy_id_map_new_id", "new_id"),)

    migration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("legacy_migrations.id", ondelete="CASCADE"), primary_key=True
    )
    source_table: Mapped[str] = mapped_column(String(64), primary_key=True)
    old_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    new_id: Mapped[str] = mapped_column(String(36))
