"""Tables of the legacy migration: the id map and one row per migrated source."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
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


class LegacyCheckpoint(Base):
    """How far the load of one source table got: the last legacy key written, committed in
    the same transaction as the rows, so a killed run continues right after it."""

    __tablename__ = "legacy_checkpoints"

    migration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("legacy_migrations.id", ondelete="CASCADE"), primary_key=True
    )
    source_table: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)  # source rows read
    loaded: Mapped[int] = mapped_column(BigInteger, default=0)  # rows written
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)  # rows left out (reported)
    done_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class LegacyFile(IdMixin, TimestampMixin, Base):
    """A file copied from the legacy store (attachment BLOB, S3 object, inline image).

    `id` is the new attachment id; the bytes are at `storage_key` in the target storage,
    with their size and sha256 as read from the source.
    """

    __tablename__ = "legacy_files"
    __table_args__ = (Index("ix_legacy_files_comment", "comment_id"),)

    migration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("legacy_migrations.id", ondelete="CASCADE"), index=True
    )
    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    comment_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("comments.id", ondelete="CASCADE"), default=None
    )
    source_table: Mapped[str] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(400))  # legacy row id or composite key
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(512))
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(255), default=None)
