"""Per-user event log, read horizons, receipts, message positions and conversation counters.

Existing data is carried over:
- every message gets its position in its conversation, in the order history has always listed
  them (`seq`); every conversation its message count and last message;
- every member of a conversation with messages gets a read horizon at its newest message with
  nothing unread, and the messages from before this revision get no receipts. There was no way
  to mark anything read before: counting the whole past as unread would flood every
  conversation list, and writing receipts would claim reads nobody made. Read tracking starts
  with the first message after the upgrade.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _add_counters_and_positions()
    _create_read_state()
    _create_event_log()
    _number_existing_messages()
    _count_existing_messages()
    _start_horizons_at_the_newest_message()


def _add_counters_and_positions() -> None:
    op.add_column("conversations", sa.Column("message_count", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("conversations", sa.Column("last_message_id", sa.Uuid(), nullable=True))
    op.add_column("messages", sa.Column("position", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("read_by_all_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_messages_conversation_id_position", "messages", ["conversation_id", "position"], unique=True)


def _create_read_state() -> None:
    op.create_table(
        "message_receipts",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_receipts_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", "recipient_id", name="pk_message_receipts"),
    )
    op.create_index(
        "ix_message_receipts_recipient_id_conversation_id_position",
        "message_receipts",
        ["recipient_id", "conversation_id", "position"],
    )
    op.create_table(
        "conversation_reads",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("read_up_to", sa.Uuid(), nullable=True),
        sa.Column("read_up_to_position", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unread_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_conversation_reads_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_conversation_reads_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="pk_conversation_reads"),
    )


def _create_event_log() -> None:
    op.create_table(
        "user_event_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_event_counters_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_event_counters"),
    )
    op.create_table(
        "user_events",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "seq", name="pk_user_events"),
    )
    op.create_index("ix_user_events_at", "user_events", ["at"])


# UPDATE ... FROM: PostgreSQL, and SQLite since 3.33.
def _number_existing_messages() -> None:
    op.execute(
        """
        UPDATE messages SET position = ranked.position
        FROM (SELECT id, row_number() OVER (PARTITION BY conversation_id ORDER BY seq) AS position FROM messages) AS ranked
        WHERE ranked.id = messages.id
        """
    )


def _count_existing_messages() -> None:
    # Positions have no gap: the newest message's position is the count.
    op.execute(
        """
        UPDATE conversations SET message_count = newest.position, last_message_id = newest.id
        FROM messages AS newest
        WHERE newest.conversation_id = conversations.id
          AND newest.position = (SELECT max(position) FROM messages WHERE messages.conversation_id = conversations.id)
        """
    )


def _start_horizons_at_the_newest_message() -> None:
    op.execute(
        """
        INSERT INTO conversation_reads (conversation_id, user_id, read_up_to, read_up_to_position, read_at, unread_count)
        SELECT conversations.id, conversation_members.user_id, conversations.last_message_id, conversations.message_count,
               NULL, 0
        FROM conversations JOIN conversation_members ON conversation_members.conversation_id = conversations.id
        WHERE conversations.message_count > 0
        """
    )


def downgrade() -> None:
    op.drop_index("ix_user_events_at", table_name="user_events")
    op.drop_table("user_events")
    op.drop_table("user_event_counters")
    op.drop_table("conversation_reads")
    op.drop_index("ix_message_receipts_recipient_id_conversation_id_position", table_name="message_receipts")
    op.drop_table("message_receipts")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_conversation_id_position")
        batch.drop_column("read_by_all_at")
        batch.drop_column("position")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_message_id")
        batch.drop_column("message_count")
