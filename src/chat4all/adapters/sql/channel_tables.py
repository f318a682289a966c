"""The tables of the users' channel handles and of the replies that come back from the channels."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, Uuid

from chat4all.adapters.sql.tables import UtcDateTime, metadata

user_channel_handles = Table(
    "user_channel_handles",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("handle", String(64), nullable=False),
    # One user per handle and channel: an inbound reply's sender is never ambiguous.
    Index("ix_user_channel_handles_channel_handle", "channel", "handle", unique=True),
)

# A provider retries a reply until it is answered: each of its message ids is taken in once.
inbound_replies = Table(
    "inbound_replies",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("provider_message_id", String(256), primary_key=True),
    Column("message_id", Uuid, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("received_at", UtcDateTime, nullable=False),
)

# Replies from an unknown handle, or answering a message the hub did not send there, for operators.
unmatched_inbound = Table(
    "unmatched_inbound",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("provider_message_id", String(256), primary_key=True),
    Column("sender_handle", Text, nullable=False),
    Column("context_id", String(256), nullable=False),
    Column("text", Text, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)
