"""The providers' idempotency ledger on SQLite and PostgreSQL, through SQLAlchemy and, on PostgreSQL,
on psycopg directly: one claim per key, even when racing."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from chat4all.adapters.connectors import SendLedger
from chat4all.domain.errors import Unavailable
from tests.integration.sql_fixtures import DIRECT, terminate_other_connections

pytestmark = pytest.mark.services


@pytest.fixture
def backend(implementation: tuple[str, str]) -> str:
    return implementation[0]


async def test_each_key_is_sent_once(ledger: SendLedger) -> None:
    message, recipient = uuid4(), uuid4()
    sent = []
    claims = await asyncio.gather(
        *(ledger.send_once("whatsapp", message, recipient, lambda: sent.append(1)) for _ in range(10))
    )
    assert claims.count(True) == 1 and len(sent) == 1
    assert await ledger.send_once("instagram", message, recipient, lambda: None) is True
    assert await ledger.send_once("whatsapp", message, uuid4(), lambda: None) is True


async def test_a_failed_send_leaves_the_key_free(ledger: SendLedger) -> None:
    message, recipient = uuid4(), uuid4()

    def broken() -> None:
        raise RuntimeError("provider connection reset")

    with pytest.raises(RuntimeError):
        await ledger.send_once("whatsapp", message, recipient, broken)
    assert await ledger.send_once("whatsapp", message, recipient, lambda: None) is True


async def test_many_keys_are_recorded_at_once_and_only_new_ones_sent(ledger: SendLedger) -> None:
    first, second = uuid4(), uuid4()
    recipients = [uuid4() for _ in range(3)]
    assert await ledger.send_once("whatsapp", first, recipients[1], lambda: None) is True
    keys = [(first, recipient) for recipient in recipients] + [(second, recipients[0]), (first, recipients[0])]
    sent = []
    assert await ledger.send_new("whatsapp", keys, sent.append) == sent
    assert sent == [(first, recipients[0]), (first, recipients[2]), (second, recipients[0])]
    assert await ledger.send_new("whatsapp", keys, sent.append) == []
    assert await ledger.send_new("instagram", keys[:1], lambda key: None) == keys[:1]
    assert await ledger.send_new("whatsapp", [], sent.append) == []


async def test_racing_batches_send_each_key_once(ledger: SendLedger) -> None:
    keys = [(uuid4(), uuid4()) for _ in range(40)]
    sent = []
    batches = [keys[::-1], keys, keys[10:30], keys[::2]] * 3
    claims = await asyncio.gather(*(ledger.send_new("whatsapp", batch, sent.append) for batch in batches))
    assert sorted(sent) == sorted(keys)
    assert sum(len(claim) for claim in claims) == len(keys)


async def test_a_failed_send_in_a_batch_leaves_every_key_of_it_free(ledger: SendLedger) -> None:
    keys = [(uuid4(), uuid4()) for _ in range(3)]

    def broken(key) -> None:
        if key == keys[1]:
            raise RuntimeError("provider connection reset")

    with pytest.raises(RuntimeError):
        await ledger.send_new("whatsapp", keys, broken)
    assert await ledger.send_new("whatsapp", keys, lambda key: None) == keys


async def test_batches_larger_than_one_statement(ledger: SendLedger) -> None:
    keys = [(uuid4(), uuid4()) for _ in range(1234)]
    assert len(await ledger.send_new("whatsapp", keys, lambda key: None)) == 1234
    assert await ledger.send_new("whatsapp", keys[100:700], lambda key: None) == []


@pytest.mark.parametrize("implementation", DIRECT, indirect=True)
async def test_a_dropped_connection_is_unavailable_and_the_next_call_works(ledger: SendLedger, database_url: str) -> None:
    keys = [(uuid4(), uuid4()) for _ in range(2)]
    assert await ledger.send_new("whatsapp", keys[:1], lambda key: None) == keys[:1]
    terminate_other_connections(database_url)
    sent = []
    with pytest.raises(Unavailable):
        await ledger.send_new("whatsapp", keys, sent.append)
    assert sent == []
    assert await ledger.send_new("whatsapp", keys, sent.append) == keys[1:]
    assert sent == keys[1:]
