"""Every message has a position: those written since revision 0004 by a version that did not
number them are numbered now, and `messages.position` (and `message_receipts.position`) become
NOT NULL, so no message can be missing from history pages, which are ranges of positions.

Messages without a position are numbered after their conversation's counter, in the order
history lists them (`seq`), and the counters and last messages follow. They get no receipts and
count as read, as the history before revision 0004 does (see 0004).

On PostgreSQL the messages table is locked against writes for the duration, so that no message
without a position lands between the numbering and the constraint. A process of a version that
does not number messages cannot store one after this revision (its insert fails): upgrade the
API processes before, or with, running it. (The versions that number messages run on 0004 and 0005.)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
    _number_unnumbered_messages()
    _count_them()
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("position", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("message_receipts") as batch:
        batch.alter_column("position", existing_type=sa.BigInteger(), nullable=False)


# UPDATE ... FROM: PostgreSQL, and SQLite since 3.33.
def _number_unnumbered_messages() -> None:
    op.execute(
        """
        UPDATE messages SET position = numbered.position
        FROM (SELECT messages.id, conversations.message_count
                     + row_number() OVER (PARTITION BY messages.conversation_id ORDER BY messages.seq) AS position
              FROM messages JOIN conversations ON conversations.id = messages.conversation_id
              WHERE messages.position IS NULL) AS numbered
        WHERE numbered.id = messages.id
        """
    )


def _count_them() -> None:
    op.execute(
        """
        UPDATE conversations SET message_count = newest.position, last_message_id = newest.id
        FROM messages AS newest
        WHERE newest.conversation_id = conversations.id
          AND newest.position > conversations.message_count
          AND newest.position = (SELECT max(position) FROM messages WHERE messages.conversation_id = conversations.id)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("message_receipts") as batch:
        batch.alter_column("position", existing_type=sa.BigInteger(), nullable=True)
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("position", existing_type=sa.BigInteger(), nullable=True)
