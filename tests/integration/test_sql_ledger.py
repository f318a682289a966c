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


async def test_each_key_is_claimed_once(engine):  # noqa: F811
    ledger = SqlSendLedger(engine)
    message, recipient = uuid4(), uuid4()
    claims = await asyncio.gather(*(ledger.claim("whatsapp", message, recipient) for _ in range(10)))
    assert claims.count(True) == 1
    assert await ledger.claim("instagram", message, recipient) is True
    assert await ledger.claim("whatsapp", message, uuid4()) is True
