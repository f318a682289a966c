"""Per-user quotas: who started each conversation, and indexes to count what a user holds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Conversations stored before this revision keep NULL: they count against nobody's quota.
    op.add_column("conversations", sa.Column("created_by", sa.Uuid(), nullable=True))
    op.create_index("ix_conversations_created_by_created_at", "conversations", ["created_by", "created_at"])
    op.create_index("ix_uploads_owner_id_status", "uploads", ["owner_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_uploads_owner_id_status", table_name="uploads")
    op.drop_index("ix_conversations_created_by_created_at", table_name="conversations")
    # A plain DROP COLUMN (SQLite has it since 3.35), not a rebuild of the table with all its rows.
    op.drop_column("conversations", "created_by")
