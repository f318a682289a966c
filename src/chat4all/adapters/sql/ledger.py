"""The mock providers' idempotency ledger, kept in the hub's own database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.tables import connector_sends


class SqlSendLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def send_once(self, channel: str, message_id: UUID, recipient_id: UUID, send: Callable[[], None]) -> bool:
        """Calls `send` only if the key is new, inside the transaction that records the key.

        Sending before the commit means a crash while the commit is on its way can at worst
        send twice; sending after it could record a send that never happened.
        """
        statement = (
            self._insert(connector_sends)
            .values(channel=channel, message_id=message_id, recipient_id=recipient_id, sent_at=datetime.now(UTC))
            .on_conflict_do_nothing()
            .returning(connector_sends.c.channel)
        )
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.begin() as connection:
                    if (await connection.execute(statement)).first() is None:
                        return False
                    send()
                    return True
