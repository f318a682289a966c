"""Delivery outcomes written by `MessageBatches.change` on SQLite and PostgreSQL (both the unit of
work's form and the PostgreSQL batch writer): in the same transaction as the messages, the
receipts the channel reached are delivered and the sender's `message.status` is appended to
their log, numbered after what the log already holds."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.event_log import SqlUserEventReader
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from chat4all.application.ports import BatchWrite, MessageBatches
from chat4all.domain.batch_outcomes import ChannelOutcome, record_outcomes
from chat4all.domain.event_data import message_created
from chat4all.domain.events import EventType
from tests.integration.sql_records import add_users, at, group, private, text_message

pytestmark = pytest.mark.services


@pytest.fixture
def backend(implementation: tuple[str, str]) -> str:
    return implementation[0]


async def test_outcomes_deliver_the_reached_receipts_and_tell_the_sender(
    uow: SqlUnitOfWorkFactory, batches: MessageBatches, engine: AsyncEngine
) -> None:
    alice, bob, carol = await add_users(uow, "alice", "bob", "carol")
    team = group([alice, bob, carol])
    message = text_message(team, alice, "hello", channels=("whatsapp", "instagram"))
    async with uow() as tx:
        await tx.conversations.add(team)
        await tx.messages.add(message, 1)
        await tx.receipts.add(message, 1, [bob.id, carol.id])
        await tx.events.append(message_created(message, team))  # alice's log holds seq 1 already
        await tx.commit()

    def record(found: dict) -> BatchWrite:
        outcomes = [
            ChannelOutcome(message.id, "whatsapp", failure="carol is unknown", reached=(bob.id,)),
            ChannelOutcome(message.id, "instagram", reached=(bob.id, carol.id)),
        ]
        recorded = record_outcomes(found, outcomes, at(30))
        return BatchWrite(recorded.changed, recorded.delivered_receipts, recorded.events, at(30))

    await batches.change([message.id], record)

    async with uow() as tx:
        receipts = {receipt.recipient_id: receipt.delivered_at for receipt in await tx.receipts.for_message(message.id)}
        stored = await tx.messages.get(message.id)
    assert receipts == {bob.id: at(30), carol.id: at(30)}
    assert stored is not None and stored.status.value == "failed"
    _, log = await SqlUserEventReader(engine).read_after(alice.id, 0, 10)
    assert [(event.seq, event.type) for event in log] == [
        (1, EventType.MESSAGE_CREATED),
        (2, EventType.MESSAGE_STATUS),
        (3, EventType.MESSAGE_STATUS),
    ]
    assert [(event.data["status"], event.data["channel"]) for event in log[1:]] == [
        ("routed", {"name": "whatsapp", "status": "failed", "detail": "carol is unknown"}),
        ("failed", {"name": "instagram", "status": "delivered", "detail": None}),
    ]
    for member in (bob, carol):
        _, theirs = await SqlUserEventReader(engine).read_after(member.id, 0, 10)
        assert [event.type for event in theirs] == [EventType.MESSAGE_CREATED]


async def test_a_receipt_delivered_before_keeps_its_time(
    uow: SqlUnitOfWorkFactory, batches: MessageBatches
) -> None:
    alice, bob = await add_users(uow, "alice", "bob")
    team = private(alice, bob)
    message = text_message(team, alice, "hello", channels=("whatsapp", "instagram"))
    async with uow() as tx:
        await tx.conversations.add(team)
        await tx.messages.add(message, 1)
        await tx.receipts.add(message, 1, [bob.id])
        await tx.commit()
    for seconds, channel in ((10, "whatsapp"), (20, "instagram")):
        outcome = ChannelOutcome(message.id, channel, reached=(bob.id,))

        def record(found: dict, outcome: ChannelOutcome = outcome, seconds: int = seconds) -> BatchWrite:
            recorded = record_outcomes(found, [outcome], at(seconds))
            return BatchWrite(recorded.changed, recorded.delivered_receipts, recorded.events, at(seconds))

        await batches.change([message.id, uuid4()], record)
    async with uow() as tx:
        [receipt] = await tx.receipts.for_message(message.id)
    assert receipt.delivered_at == at(10)

