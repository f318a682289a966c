"""The tables of outbound webhooks (on the schema's `metadata`, migration 0009)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, Uuid

from chat4all.adapters.sql.tables import AutoId, UtcDateTime, metadata

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The last seq of the owner's event log that has been turned into deliveries.
    Column("cursor", BigInteger, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("failing_since", UtcDateTime, nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("webhook_id", Uuid, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("first_attempt_at", UtcDateTime, nullable=True),
    # A process that claimed it holds it until then (see application.webhook_sender).
    Column("lease_until", UtcDateTime, nullable=True),
    # One delivery per event per webhook, however many processes feed it.
    UniqueConstraint("webhook_id", "seq", name="uq_webhook_deliveries_webhook_id_seq"),
    # What is due, per webhook, in order.
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at", "webhook_id"),
    Index("ix_webhook_deliveries_created_at", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("delivery_id", Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    sqlite_autoincrement=True,
)
