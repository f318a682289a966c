"""What every message intake writes with the message, in the same transaction: its position, the
conversation's counters, receipts and unread counts for the recipients, and `message.created`
in every member's event log. The same on every write path (unit of work on both engines, the
SQLite batches, the PostgreSQL statement)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.postgres.connections import conninfo_of
from chat4all.adapters.sql.tables import conversation_reads, conversations, message_receipts, messages
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.ports import MessageIntake
from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
from chat4all.domain.event_data import message_data
from chat4all.domain.events import EventType
from chat4all.domain.messages import Message, MessageDraft, Priority, TextPayload
from chat4all.domain.users import User
from tests.integration.sql_intakes import (  # noqa: F401 - fixtures
    GROUP_COMMIT,
    ONE_STATEMENT,
    START,
    accepted,
    backend,
    case,
    intake,
    routing_of,
    rows,
    seed,
)

pytestmark = pytest.mark.services


async def team_of_three(engine: AsyncEngine) -> tuple[list[UUID], Conversation, Conversation]:
    """Alice, Bob and Carol; their group, and Alice and Bob's private conversation."""
    alice, bob, private = await seed(engine)
    carol = User(uuid4(), "carol", "h", START)
    team = Conversation.start(
        conversation_id=uuid4(), type=ConversationType.GROUP, members=[alice.id, bob.id, carol.id],
        creator=alice.id, metadata=ConversationMetadata(name="team"), now=START,
    )
    async with SqlUnitOfWorkFactory(engine)() as tx:
        await tx.users.add(carol)
        await tx.conversations.add(team)
        await tx.commit()
    return [alice.id, bob.id, carol.id], team, private


def addressed(conversation: Conversation, sender: UUID, to: UUID | None, minutes: int) -> Message:
    draft = MessageDraft(uuid4(), conversation.id, sender, to, ("whatsapp",), TextPayload(f"m{minutes}"), Priority.NORMAL)
    return Message.accept(draft, START + timedelta(minutes=minutes))


async def unread(engine: AsyncEngine) -> tuple[dict[Any, int], dict[Any, int]]:
    recount = (
        select(message_receipts.c.conversation_id, message_receipts.c.recipient_id, func.count())
        .where(message_receipts.c.read_at.is_(None))
        .group_by(message_receipts.c.conversation_id, message_receipts.c.recipient_id)
    )
    kept = select(conversation_reads.c.conversation_id, conversation_reads.c.user_id, conversation_reads.c.unread_count)
    async with engine.connect() as connection:
        return (
            {(c, u): n for c, u, n in await connection.execute(kept) if n},
            {(c, u): n for c, u, n in await connection.execute(recount)},
        )


async def test_an_accepted_message_comes_with_its_position_receipts_unread_counts_and_events(intake: MessageIntake, engine: AsyncEngine) -> None:
    (alice, bob, carol), team, _ = await team_of_three(engine)
    sent = [addressed(team, alice, None, 1), addressed(team, carol, bob, 2), addressed(team, bob, None, 3)]
    shown = [message_data(message) for message in sent]  # as GET /v1/messages/{id} shows it when accepted
    for message in sent:
        assert await intake.accept(message, team, routing_of(message)) is True

    assert sorted(await rows(engine, messages, messages.c.position, messages.c.id)) == [(n, m.id) for n, m in enumerate(sent, 1)]
    counters = await rows(engine, conversations, conversations.c.id, conversations.c.message_count, conversations.c.last_message_id)
    assert (team.id, 3, sent[2].id) in counters
    receipts = sorted(await rows(engine, message_receipts, message_receipts.c.position, message_receipts.c.recipient_id))
    assert receipts == sorted([(1, bob), (1, carol), (2, bob), (3, alice), (3, carol)])
    kept, counted = await unread(engine)
    assert kept == counted == {(team.id, alice): 1, (team.id, bob): 2, (team.id, carol): 2}
    reader = SqlUserEventReader(engine)
    for member in (alice, bob, carol):
        _, events = await reader.read_after(member, 0, 10)
        assert [(event.seq, event.type, event.at) for event in events] == [
            (n, EventType.MESSAGE_CREATED, message.created_at) for n, message in enumerate(sent, 1)
        ]
        assert [dict(event.data) for event in events] == shown


async def test_an_id_that_exists_adds_no_position_receipt_or_event(intake: MessageIntake, engine: AsyncEngine) -> None:
    alice, bob, conversation = await seed(engine)
    first = accepted(conversation, alice.id, TextPayload("first"), START)
    again = accepted(conversation, alice.id, TextPayload("again"), START, first.id)
    assert await intake.accept(first, conversation, routing_of(first)) is True
    assert await intake.accept(again, conversation, routing_of(again)) is False
    later = accepted(conversation, bob.id, TextPayload("later"), START + timedelta(seconds=1))
    assert await intake.accept(later, conversation, routing_of(later)) is True

    assert sorted(await rows(engine, messages, messages.c.position, messages.c.id)) == [(1, first.id), (2, later.id)]
    assert len(await rows(engine, message_receipts)) == 2
    for member in (alice.id, bob.id):
        bounds, events = await SqlUserEventReader(engine).read_after(member, 0, 10)
        assert bounds.last == 2 and [event.data["message_id"] for event in events] == [str(first.id), str(later.id)]


async def test_one_id_sent_into_two_conversations_at_once_leaves_no_gap_in_either(intake: MessageIntake, engine: AsyncEngine) -> None:
    (alice, _, _), team, private = await team_of_three(engine)
    shared_id = uuid4()
    batches = [
        [(accepted(conversation, alice, TextPayload(f"{n}"), START, shared_id if n == 1 else None), conversation) for n in range(3)]
        for conversation in (team, private)
    ]
    results = await asyncio.gather(*(intake.accept(m, c, routing_of(m)) for batch in zip(*batches, strict=True) for m, c in batch))

    assert results.count(True) == 5
    stored = await rows(engine, messages, messages.c.conversation_id, messages.c.position)
    counts = dict(await rows(engine, conversations, conversations.c.id, conversations.c.message_count))
    for conversation in (team, private):
        positions = sorted(position for owner, position in stored if owner == conversation.id)
        assert positions == list(range(1, len(positions) + 1)) and counts[conversation.id] == len(positions)
    kept, counted = await unread(engine)
    assert kept == counted


@pytest.mark.parametrize("case", GROUP_COMMIT, indirect=True, ids="-".join)
async def test_batched_accepts_number_positions_and_events_in_listing_order(intake: MessageIntake, engine: AsyncEngine) -> None:
    (alice, bob, carol), team, _ = await team_of_three(engine)
    batch = [addressed(team, [alice, bob, carol][n % 3], None, n) for n in range(150)]
    assert await asyncio.gather(*(intake.accept(m, team, routing_of(m)) for m in batch)) == [True] * 150

    listing = [message_id for _, message_id, _ in sorted(await rows(engine, messages, messages.c.seq, messages.c.id, messages.c.position))]
    numbered = [message_id for _, message_id in sorted(await rows(engine, messages, messages.c.position, messages.c.id))]
    assert listing == numbered and len(numbered) == 150
    for member in (alice, bob, carol):
        _, events = await SqlUserEventReader(engine).read_after(member, 0, 500)
        assert [event.seq for event in events] == list(range(1, 151))
        assert [UUID(event.data["message_id"]) for event in events] == numbered
    kept, counted = await unread(engine)
    assert kept == counted == {(team.id, member): 100 for member in (alice, bob, carol)}


@pytest.mark.parametrize("case", ONE_STATEMENT, indirect=True, ids="-".join)
async def test_an_id_committed_while_the_statement_waits_for_it_is_not_new_and_takes_no_position(
    intake: MessageIntake, engine: AsyncEngine, database_url: str
) -> None:
    (alice, _, _), team, private = await team_of_three(engine)
    racing = accepted(private, alice, TextPayload("elsewhere"), START)
    before, same, after = (accepted(team, alice, TextPayload(text), START, racing.id if text == "same" else None) for text in ("before", "same", "after"))
    async with await psycopg.AsyncConnection.connect(conninfo_of(database_url)) as other:
        await other.execute(
            "INSERT INTO messages (id, conversation_id, sender_id, channels, payload, priority, status, fingerprint, created_at, position) "
            "SELECT %s, %s, %s, '[]', '{\"type\": \"text\", \"text\": \"x\"}', 'normal', 'accepted', 'f', now(), 1",
            (racing.id, private.id, alice),
        )
        accepting = asyncio.gather(*(intake.accept(m, team, routing_of(m)) for m in (before, same, after)))
        await asyncio.sleep(0.3)  # the statement now waits on the uncommitted id
        await other.commit()
        results = await accepting

    assert results == [True, False, True]
    assert sorted(await rows(engine, messages, messages.c.conversation_id, messages.c.position, messages.c.id)) == sorted(
        [(team.id, 1, before.id), (team.id, 2, after.id), (private.id, 1, racing.id)]
    )
    _, events = await SqlUserEventReader(engine).read_after(alice, 0, 10)
    assert [event.data["message_id"] for event in events] == [str(before.id), str(after.id)]
