"""The mock providers' idempotency ledger, kept in the hub's own database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.provider_ids import provider_message_id
from chat4all.adapters.sql.engine import exclusive_use
from chat4all.adapters.sql.errors import translate_errors
from chat4all.adapters.sql.tables import connector_sends

# Rows per INSERT: 5 parameters each stays far below SQLite's and PostgreSQL's parameter limits.
ROWS_PER_STATEMENT = 500


class SqlSendLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def send_once(self, channel: str, message_id: UUID, recipient_id: UUID, send: Callable[[], None]) -> bool:
        """Calls `send` only if the key is new, inside the transaction that records the key.

        Sending before the commit means a crash while the commit is on its way can at worst
        send twice; sending after it could record a send that never happened.
        """
        return bool(await self.send_new(channel, [(message_id, recipient_id)], lambda _key: send()))

    async def send_new(
        self, channel: str, keys: Sequence[tuple[UUID, UUID]], send: Callable[[tuple[UUID, UUID]], None]
    ) -> list[tuple[UUID, UUID]]:
        """`send_once` for many (message, recipient) keys: one transaction, one INSERT per 500 keys.

        The keys are inserted in sorted order, so two batches racing on shared keys wait for one
        another instead of deadlocking; the loser finds those keys taken. `send` is called for the
        new keys in the order given, before the commit; if it raises, nothing is recorded.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        now = datetime.now(UTC)
        new: set[tuple[UUID, UUID]] = set()
        async with exclusive_use(self._engine):
            with translate_errors():
                async with self._engine.begin() as connection:
                    ordered = sorted(wanted)
                    for start in range(0, len(ordered), ROWS_PER_STATEMENT):
                        rows = [
                            {
                                "channel": channel,
                                "message_id": message_id,
                                "recipient_id": recipient_id,
                                "sent_at": now,
                                "provider_message_id": provider_message_id(channel, message_id, recipient_id),
                            }
                            for message_id, recipient_id in ordered[start : start + ROWS_PER_STATEMENT]
                        ]
                        statement = (
                            self._insert(connector_sends)
                            .values(rows)
                            .on_conflict_do_nothing()
                            .returning(connector_sends.c.message_id, connector_sends.c.recipient_id)
                        )
                        new.update((row.message_id, row.recipient_id) for row in await connection.execute(statement))
                    sent = [key for key in wanted if key in new]
                    for key in sent:
                        send(key)
                    return sent
