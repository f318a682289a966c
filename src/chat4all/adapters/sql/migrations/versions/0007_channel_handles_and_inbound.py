"""Inbound replies from the channels: the users' handles there, the provider id of each copy the
connectors sent, the replies taken in and those that could not be placed, and a message's origin.

Copies sent before this revision have no provider id: replies to them are kept as unmatched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("origin", sa.String(length=32), nullable=True))
    op.add_column("connector_sends", sa.Column("provider_message_id", sa.String(length=128), nullable=True))
    op.create_index(
        "ix_connector_sends_channel_provider_message_id",
        "connector_sends",
        ["channel", "provider_message_id"],
        unique=True,
    )
    op.create_table(
        "user_channel_handles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_channel_handles_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "channel", name="pk_user_channel_handles"),
    )
    op.create_index(
        "ix_user_channel_handles_channel_handle", "user_channel_handles", ["channel", "handle"], unique=True
    )
    op.create_table(
        "inbound_replies",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=256), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_inbound_replies_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("channel", "provider_message_id", name="pk_inbound_replies"),
    )
    op.create_index("ix_inbound_replies_message_id", "inbound_replies", ["message_id"])
    op.create_table(
        "unmatched_inbound",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=256), nullable=False),
        sa.Column("sender_handle", sa.Text(), nullable=False),
        sa.Column("context_id", sa.String(length=256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "provider_message_id", name="pk_unmatched_inbound"),
    )


def downgrade() -> None:
    op.drop_table("unmatched_inbound")
    op.drop_index("ix_inbound_replies_message_id", table_name="inbound_replies")
    op.drop_table("inbound_replies")
    op.drop_index("ix_user_channel_handles_channel_handle", table_name="user_channel_handles")
    op.drop_table("user_channel_handles")
    op.drop_index("ix_connector_sends_channel_provider_message_id", table_name="connector_sends")
    with op.batch_alter_table("connector_sends") as batch:
        batch.drop_column("provider_message_id")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("origin")
