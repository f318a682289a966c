"""The providers' idempotency ledger on SQLite and PostgreSQL: one claim per key, even when racing."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from chat4all.adapters.sql.ledger import SqlSendLedger
from tests.integration.sql_fixtures import (  # noqa: F401 - fixtures
    backend,
    database_url,
    engine,
    postgres_url,
    sqlite_template,
)

pytestmark = pytest.mark.services


async def test_each_key_is_sent_once(engine):  # noqa: F811
    ledger = SqlSendLedger(engine)
    message, recipient = uuid4(), uuid4()
    sent = []
    claims = await asyncio.gather(
        *(ledger.send_once("whatsapp", message, recipient, lambda: sent.append(1)) for _ in range(10))
    )
    assert claims.count(True) == 1 and len(sent) == 1
    assert await ledger.send_once("instagram", message, recipient, lambda: None) is True
    assert await ledger.send_once("whatsapp", message, uuid4(), lambda: None) is True


async def test_a_failed_send_leaves_the_key_free(engine):  # noqa: F811
    ledger = SqlSendLedger(engine)
    message, recipient = uuid4(), uuid4()

    def broken() -> None:
        raise RuntimeError("provider connection reset")

    with pytest.raises(RuntimeError):
        await ledger.send_once("whatsapp", message, recipient, broken)
    assert await ledger.send_once("whatsapp", message, recipient, lambda: None) is True
