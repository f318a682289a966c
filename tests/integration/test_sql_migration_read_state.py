"""Upgrading a database with history: messages numbered per conversation in the order they were
listed, counters set, read horizons at the newest message, on SQLite and on PostgreSQL; then
the messages stored meanwhile without a position numbered, and positions required."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import create_engine
from chat4all.adapters.sql.migrations import downgrade_database, upgrade_database
from chat4all.adapters.sql.tables import (
    conversation_members,
    conversation_reads,
    conversations,
    message_receipts,
    messages,
    user_events,
    users,
)

pytestmark = pytest.mark.services

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE, BOB, CAROL = (UUID(int=number) for number in (1, 2, 3))
TEAM, PAIR, QUIET = (UUID(int=number) for number in (100, 200, 300))
# (message, conversation, sender, to, seq): seqs are global and interleave across conversations.
HISTORY = [
    (UUID(int=1001), TEAM, ALICE, None, 10),
    (UUID(int=2001), PAIR, ALICE, None, 11),
    (UUID(int=1003), TEAM, CAROL, ALICE, 12),
    (UUID(int=1002), TEAM, BOB, None, 13),
    (UUID(int=2002), PAIR, BOB, None, 14),
]


async def write_history(engine: AsyncEngine) -> None:
    """Rows as revision 0003 stored them."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(users),
            [{"id": user, "username": f"u{user.int}", "password_hash": "x", "created_at": NOW} for user in (ALICE, BOB, CAROL)],
        )
        for conversation, kind, members in (
            (TEAM, "group", (ALICE, BOB, CAROL)),
            (PAIR, "private", (ALICE, BOB)),
            (QUIET, "private", (ALICE, CAROL)),
        ):
            await connection.execute(
                insert(conversations).values(id=conversation, type=kind, created_at=NOW, last_activity_at=NOW)
            )
            await connection.execute(
                insert(conversation_members),
                [
                    {"conversation_id": conversation, "user_id": member, "position": index}
                    for index, member in enumerate(members)
                ],
            )
        await connection.execute(
            insert(messages),
            [
                {
                    "id": message_id,
                    "conversation_id": conversation,
                    "sender_id": sender,
                    "recipient_id": to,
                    "channels": ["sms"],
                    "payload": {"type": "text", "text": "hi"},
                    "priority": "normal",
                    "status": "delivered",
                    "fingerprint": "f" * 64,
                    "created_at": NOW + timedelta(seconds=seq),
                    "seq": seq,
                }
                for message_id, conversation, sender, to, seq in HISTORY
            ],
        )


async def rows(engine: AsyncEngine, query) -> list:
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def test_existing_history_is_numbered_counted_and_counts_as_read(empty_database: str) -> None:
    await upgrade_database(empty_database, "0003")
    engine = create_engine(empty_database)
    try:
        await write_history(engine)
        await upgrade_database(engine)
        positions = dict(await rows(engine, select(messages.c.id, messages.c.position)))
        assert positions == {
            UUID(int=1001): 1,
            UUID(int=1003): 2,
            UUID(int=1002): 3,
            UUID(int=2001): 1,
            UUID(int=2002): 2,
        }
        counters = await rows(
            engine, select(conversations.c.id, conversations.c.message_count, conversations.c.last_message_id)
        )
        assert sorted(counters) == [(TEAM, 3, UUID(int=1002)), (PAIR, 2, UUID(int=2002)), (QUIET, 0, None)]
        horizons = await rows(
            engine,
            select(
                conversation_reads.c.conversation_id,
                conversation_reads.c.user_id,
                conversation_reads.c.read_up_to,
                conversation_reads.c.read_up_to_position,
                conversation_reads.c.unread_count,
            ),
        )
        assert sorted(horizons) == sorted(
            [(TEAM, member, UUID(int=1002), 3, 0) for member in (ALICE, BOB, CAROL)]
            + [(PAIR, member, UUID(int=2002), 2, 0) for member in (ALICE, BOB)]
        )
        assert await rows(engine, select(message_receipts)) == [] and await rows(engine, select(user_events)) == []

        # Down and up again keeps the history and numbers it the same way.
        await downgrade_database(engine, "0003")
        assert len(await rows(engine, select(messages.c.id, messages.c.seq))) == len(HISTORY)
        await upgrade_database(engine)
        assert dict(await rows(engine, select(messages.c.id, messages.c.position))) == positions
    finally:
        await engine.dispose()


async def write_unnumbered(engine: AsyncEngine, stored: list[tuple[UUID, UUID, int]]) -> None:
    """Messages (id, conversation, seq) as a version that did not number them stored them."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(messages),
            [
                {
                    "id": message_id, "conversation_id": conversation, "sender_id": ALICE, "recipient_id": None,
                    "channels": ["sms"], "payload": {"type": "text", "text": "meanwhile"}, "priority": "normal",
                    "status": "accepted", "fingerprint": "f" * 64, "created_at": NOW + timedelta(seconds=seq), "seq": seq,
                }
                for message_id, conversation, seq in stored
            ],
        )


async def test_messages_stored_meanwhile_without_a_position_are_numbered_and_positions_become_required(empty_database: str) -> None:
    """Revision 0006: between 0004 and the versions that number messages, an older process may
    have stored some without a position; they are numbered after their conversation's counter."""
    await upgrade_database(empty_database, "0003")
    engine = create_engine(empty_database)
    try:
        await write_history(engine)
        await upgrade_database(engine, "0004")
        unnumbered = [(UUID(int=1004), TEAM, 20), (UUID(int=3001), QUIET, 21), (UUID(int=1005), TEAM, 22)]
        await write_unnumbered(engine, unnumbered)
        await upgrade_database(engine)

        positions = dict(await rows(engine, select(messages.c.id, messages.c.position)))
        assert {message_id: positions[message_id] for message_id, _, _ in unnumbered} == {
            UUID(int=1004): 4,
            UUID(int=3001): 1,
            UUID(int=1005): 5,
        }
        assert positions[UUID(int=1001)] == 1 and positions[UUID(int=2002)] == 2
        counters = await rows(engine, select(conversations.c.id, conversations.c.message_count, conversations.c.last_message_id))
        assert sorted(counters) == [(TEAM, 5, UUID(int=1005)), (PAIR, 2, UUID(int=2002)), (QUIET, 1, UUID(int=3001))]
        with pytest.raises(IntegrityError):
            await write_unnumbered(engine, [(UUID(int=9999), PAIR, 99)])
        await downgrade_database(engine, "0004")
        await upgrade_database(engine)
        assert dict(await rows(engine, select(messages.c.id, messages.c.position))) == positions
    finally:
        await engine.dispose()
