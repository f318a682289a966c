"""Lookups that miss the caches together are read together: a process that has just started, with
every client's token and conversation still to look up, reads them in a transaction per batch,
not one each, and every caller still gets exactly its own answer."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.application.batched_loads import BatchedLoads
from chat4all.domain.errors import NotAuthenticated
from tests.fakes.repositories import InMemoryConversationRepository
from tests.unit.conftest import PASSWORD


async def test_tokens_first_seen_together_are_read_in_one_transaction_each_caller_getting_its_own_user(hub):
    users = await hub.users(*(f"user{n}" for n in range(40)))
    secrets = [(await hub.authenticate.execute(user.username, PASSWORD)).access_token for user in users]
    opened = len(hub.uow.opened)
    resolved = await asyncio.gather(*(hub.resolve_token.execute(secret) for secret in secrets))
    assert resolved == users
    assert len(hub.uow.opened) - opened <= 2  # at most two batches in flight; far from forty transactions


async def test_an_invalid_token_in_a_batch_is_refused_alone(hub):
    alice, bob = await hub.users("alice", "bob")
    good = (await hub.authenticate.execute("alice", PASSWORD)).access_token
    revoked = (await hub.authenticate.execute("bob", PASSWORD)).access_token
    await hub.logout.execute(revoked)
    answers = await asyncio.gather(
        hub.resolve_token.execute(good),
        hub.resolve_token.execute(revoked),
        hub.resolve_token.execute("not-a-token"),
        return_exceptions=True,
    )
    assert answers[0] == alice
    assert all(isinstance(answer, NotAuthenticated) and answer.code == "invalid_token" for answer in answers[1:])


async def test_first_sends_into_many_conversations_read_the_conversations_together(hub, monkeypatch):
    users = await hub.users(*(f"user{n}" for n in range(20)))
    conversations = [await hub.conversation(a, b) for a, b in zip(users[::2], users[1::2], strict=True)]
    reads: list[str] = []
    for name in ("get", "get_many"):
        original = getattr(InMemoryConversationRepository, name)

        async def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return await _original(self, *args, **kwargs)

        monkeypatch.setattr(InMemoryConversationRepository, name, counted)
    sent = await asyncio.gather(*(hub.send_text(a, c) for a, c in zip(users[::2], conversations, strict=True)))
    assert {message.conversation_id for message in sent} == {c.id for c in conversations}
    assert 1 <= len(reads) <= 2  # ten conversations, first seen together


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_load_reads_again():
    calls: list[list[str]] = []

    async def load_many(keys: list[str]) -> dict[str, int]:
        calls.append(sorted(keys))
        if len(calls) == 1:
            raise ConnectionError("database away")
        return {key: len(key) for key in keys}

    loads: BatchedLoads[str, int] = BatchedLoads(load_many)
    failed = await asyncio.gather(loads.load("a"), loads.load("bb"), return_exceptions=True)
    assert all(isinstance(answer, ConnectionError) for answer in failed)
    assert await asyncio.gather(loads.load("a"), loads.load("bb"), loads.load("a")) == [1, 2, 1]
    assert calls == [["a", "bb"], ["a", "bb"]]


async def test_a_caller_that_stops_waiting_leaves_the_value_to_the_others():
    release = asyncio.Event()

    async def load_many(keys: list[str]) -> dict[str, int]:
        await release.wait()
        return dict.fromkeys(keys, 7)

    loads: BatchedLoads[str, int] = BatchedLoads(load_many)
    leaving = asyncio.ensure_future(loads.load("k"))
    staying = asyncio.ensure_future(loads.load("k"))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == 7
    with pytest.raises(asyncio.CancelledError):
        await leaving
