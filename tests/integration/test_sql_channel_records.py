"""What inbound replies rely on, on SQLite and PostgreSQL: the send ledger stores a provider id per
copy (the same one when a copy is sent again), found again by that id; a handle belongs to one user
per channel; an unmatched reply is kept once however often it is retried."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.connectors import SendLedger
from chat4all.adapters.sql.channel_tables import unmatched_inbound
from chat4all.adapters.sql.unit_of_work import SqlUnitOfWork
from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import SentCopy, UnmatchedReply
from chat4all.domain.channel_handles import InboundReply
from chat4all.domain.users import User

pytestmark = pytest.mark.services
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def backend(implementation: tuple[str, str]) -> str:
    return implementation[0]


async def test_each_copy_sent_gets_a_provider_id_that_finds_it(ledger: SendLedger, engine: AsyncEngine) -> None:
    message, bob, carol = uuid4(), uuid4(), uuid4()
    await ledger.send_new("whatsapp", [(message, bob), (message, carol)], lambda key: None)
    await ledger.send_new("instagram", [(message, bob)], lambda key: None)
    async with SqlUnitOfWork(engine) as uow:
        ids = await uow.channels.provider_ids(message)
    assert sorted(ids) == sorted([("whatsapp", bob), ("whatsapp", carol), ("instagram", bob)])
    assert ids["whatsapp", bob].startswith("wamid.") and ids["instagram", bob].startswith("mid.")
    assert len(set(ids.values())) == 3

    assert await ledger.send_new("whatsapp", [(message, bob)], lambda key: None) == []  # a redelivery
    async with SqlUnitOfWork(engine) as uow:
        assert await uow.channels.provider_ids(message) == ids
        assert await uow.channels.sent_copy("whatsapp", ids["whatsapp", carol]) == SentCopy(message, carol)
        assert await uow.channels.sent_copy("instagram", ids["whatsapp", carol]) is None
        assert await uow.channels.sent_copy("whatsapp", "wamid.unknown") is None


async def test_a_handle_belongs_to_one_user_per_channel(engine: AsyncEngine) -> None:
    bob, carol = User(uuid4(), "bob", "hash", NOW), User(uuid4(), "carol", "hash", NOW)
    async with SqlUnitOfWork(engine) as uow:
        for user in (bob, carol):
            await uow.users.add(user)
        await uow.channels.replace_handles(bob.id, {"whatsapp": "+5511999990000", "instagram": "@bob"})
        await uow.channels.replace_handles(carol.id, {"instagram": "@carol", "whatsapp": "+5511888880000"})
        await uow.commit()
    async with SqlUnitOfWork(engine) as uow:
        with pytest.raises(DuplicateKey):
            await uow.channels.replace_handles(carol.id, {"whatsapp": "+5511999990000"})
    async with SqlUnitOfWork(engine) as uow:  # nothing of the refused change stayed
        assert await uow.channels.handles_of(carol.id) == {"instagram": "@carol", "whatsapp": "+5511888880000"}
        await uow.channels.replace_handles(bob.id, {"instagram": "@bob"})
        await uow.channels.replace_handles(carol.id, {"whatsapp": "+5511999990000"})
        await uow.commit()
    async with SqlUnitOfWork(engine) as uow:
        assert await uow.channels.owner_of("whatsapp", "+5511999990000") == carol.id
        assert await uow.channels.owner_of("instagram", "@bob") == bob.id
        assert await uow.channels.owner_of("whatsapp", "@bob") is None


async def test_an_unmatched_reply_is_kept_once(engine: AsyncEngine) -> None:
    reply = InboundReply("whatsapp", "+5511777770000", "oi", "wamid.R1", "wamid.C1")
    for _ in range(3):
        async with SqlUnitOfWork(engine) as uow:
            await uow.channels.record_unmatched(reply, "unknown_handle", NOW)
            await uow.commit()
    async with engine.connect() as connection:
        rows = (await connection.execute(select(unmatched_inbound))).all()
        assert [(row.sender_handle, row.context_id, row.text, row.reason) for row in rows] == [
            ("+5511777770000", "wamid.C1", "oi", "unknown_handle")
        ]
        assert (await connection.execute(select(func.count()).select_from(unmatched_inbound))).scalar() == 1


async def test_unmatched_replies_are_listed_newest_first_by_channel(engine: AsyncEngine) -> None:  # noqa: F811
    kept = [
        (InboundReply(channel, "+5511777770000", "oi", f"id.{index}", "ctx"), NOW.replace(minute=index))
        for index, channel in enumerate(["whatsapp", "instagram", "whatsapp"])
    ]
    async with SqlUnitOfWork(engine) as uow:
        for reply, at in kept:
            await uow.channels.record_unmatched(reply, "unknown_context", at)
        await uow.commit()
    async with SqlUnitOfWork(engine) as uow:
        assert await uow.channels.unmatched("whatsapp", 10) == [
            UnmatchedReply(kept[2][0], "unknown_context", kept[2][1]),
            UnmatchedReply(kept[0][0], "unknown_context", kept[0][1]),
        ]
        assert [one.reply.provider_message_id for one in await uow.channels.unmatched(None, 2)] == ["id.2", "id.1"]
