"""The relational schema, as SQLAlchemy Core tables shared by SQLite and PostgreSQL.

Rows are mapped to domain objects by the repositories; nothing here knows about the domain.
Every schema change needs a migration in `migrations/versions` (the migration test compares
the migrated database with this metadata).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as naive
    UTC and given back their UTC zone when read. Naive datetimes are refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-assigns INTEGER PRIMARY KEY columns (the rowid); PostgreSQL gets BIGINT.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", String(128), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# One row per failed (or still being verified) login, per throttling key ("pair:<hash of name and
# address>", "addr:<ip>", "user:<name>").
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False),
    Column("failed_at", UtcDateTime, nullable=False),
    Index("ix_login_failures_key_failed_at", "key", "failed_at"),
    # The purge of old rows looks them up by age alone.
    Index("ix_login_failures_failed_at", "failed_at"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("type", String(16), nullable=False),
    Column("name", String(128), nullable=True),
    Column("description", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_activity_at", UtcDateTime, nullable=False, index=True),
    # "<uuid>:<uuid>" of the two members of a private conversation; NULL for groups.
    Column("private_key", String(80), nullable=True, unique=True),
    # Who started it, for the conversations-per-hour quota (NULL before migration 0004). No foreign
    # key: it only counts, and adding one to SQLite's existing table would mean rebuilding it.
    Column("created_by", Uuid, nullable=True),
    Index("ix_conversations_created_by_created_at", "created_by", "created_at"),
)

conversation_members = Table(
    "conversation_members",
    metadata,
    Column("conversation_id", Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    # Keeps the members in the order the conversation was created with.
    Column("position", Integer, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("conversation_id", Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("sender_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("recipient_id", Uuid, ForeignKey("users.id"), nullable=True),
    Column("channels", JSON, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Insertion order, for a stable chronological listing. PostgreSQL fills it from an identity
    # sequence; on SQLite the repository sets it to the next rowid (writes are serialized there).
    Column("seq", BigInteger, Identity(), nullable=False),
    Index("ix_messages_conversation_id_seq", "conversation_id", "seq"),
    # The sweep that re-drives unfinished messages looks them up by status and age.
    Index("ix_messages_status_created_at", "status", "created_at"),
)

message_deliveries = Table(
    "message_deliveries",
    metadata,
    Column("message_id", Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

message_events = Table(
    "message_events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("message_id", Uuid, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("channel", String(64), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Column("detail", Text, nullable=True),
    sqlite_autoincrement=True,
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("chunk_size", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("checksum", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    Index("ix_uploads_status_expires_at", "status", "expires_at"),
    # The open-uploads quota counts a user's pending uploads.
    Index("ix_uploads_owner_id_status", "owner_id", "status"),
)

upload_chunks = Table(
    "upload_chunks",
    metadata,
    Column("upload_id", Uuid, ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True),
    Column("chunk_index", Integer, primary_key=True, autoincrement=False),
)

file_shares = Table(
    "file_shares",
    metadata,
    Column("file_id", Uuid, ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True),
    Column("conversation_id", Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=lambda: datetime.now(UTC)),
    sqlite_autoincrement=True,
)

# What the mock channel providers have already sent, by idempotency key (channel, message,
# recipient): a redelivered event finds its key here and the provider does not send twice.
connector_sends = Table(
    "connector_sends",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("message_id", Uuid, primary_key=True),
    Column("recipient_id", Uuid, primary_key=True),
    Column("sent_at", UtcDateTime, nullable=False),
)
