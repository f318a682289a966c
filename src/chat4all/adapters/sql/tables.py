"""The relational schema, as SQLAlchemy Core tables shared by SQLite and PostgreSQL.

Rows are mapped to domain objects by the repositories; nothing here knows about the domain.
Every schema change needs a migration in `migrations/versions` (the migration test compares
the migrated database with this metadata).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

from chat4all.adapters.sql.column_types import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
    # Kept by the transaction that accepts a message, under the lock it takes on this row: the
    # count is the history's `total` and the position of the newest message (positions have no
    # gap), the last message the conversation list's preview, without a COUNT or a sort per request.
    Column("message_count", BigInteger, nullable=False, server_default="0"),
    Column("last_message_id", Uuid, nullable=True),
    # Who started it, for the conversations-per-hour quota (NULL before migration 0005). No foreign
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
    # 1, 2, 3... within the conversation, in the order messages are accepted (the conversation's
    # `message_count` at accept time): history pages are ranges of positions.
    Column("position", BigInteger, nullable=False),
    # When the last recipient read it (see domain.receipts).
    Column("read_by_all_at", UtcDateTime, nullable=True),
    # The channels tried after `channels` failed (domain.failover); NULL: none.
    Column("failover", JSON, nullable=True),
    Column("origin", String(32), nullable=True),  # the channel a reply came in from
    Index("ix_messages_conversation_id_seq", "conversation_id", "seq"),
    Index("ix_messages_conversation_id_position", "conversation_id", "position", unique=True),
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

# One per recipient of a message (the `to` member, or every member but the sender). The
# conversation and position are the message's, copied so that a read finds the reader's receipts
# up to a position through one index. Recipients are members (checked when the message is
# accepted), hence no foreign key to users on a table this large.
message_receipts = Table(
    "message_receipts",
    metadata,
    Column("message_id", Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("recipient_id", Uuid, primary_key=True),
    Column("conversation_id", Uuid, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("read_at", UtcDateTime, nullable=True),
    Index("ix_message_receipts_recipient_id_conversation_id_position", "recipient_id", "conversation_id", "position"),
)

# A member's read horizon in a conversation and their unread count there (see domain.receipts).
# No row: nothing read and nothing unread; rows are created on first use.
conversation_reads = Table(
    "conversation_reads",
    metadata,
    Column("conversation_id", Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("read_up_to", Uuid, nullable=True),
    Column("read_up_to_position", BigInteger, nullable=False, server_default="0"),
    Column("read_at", UtcDateTime, nullable=True),
    Column("unread_count", BigInteger, nullable=False, server_default="0"),
)

# Each user's last event seq. Updated in the transaction that appends their events, and locked
# by it until commit, so seqs are given in commit order with no gap (see application.events).
user_event_counters = Table(
    "user_event_counters",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

# Every stored event of every user, the truth the event transports read. A user's events always
# come with their counter row (which has the foreign key), hence none on this large table.
user_events = Table(
    "user_events",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    # Retention drops events by age.
    Index("ix_user_events_at", "at"),
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
    # The id the provider gave the copy, which its recipient's replies point at (inbound replies).
    Column("provider_message_id", String(128), nullable=True),
    Index("ix_connector_sends_channel_provider_message_id", "channel", "provider_message_id", unique=True),
)

# Delivery attempts per recipient, kept for messages sent with failover (see `domain.failover`):
# each channel outcome of such a message, for each recipient it concerned, in order (`id`).
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Uuid, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("recipient_id", Uuid, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_delivery_attempts_message_id", "message_id"),
)
