"""The mock providers' idempotency ledger on psycopg directly, for the worker (see
`chat4all.adapters.sql.ledger` for the SQLAlchemy one the embedded profile uses).

A batch of keys costs two round trips: BEGIN with one INSERT of every key, then COMMIT after the
sends. The keys travel as two `uuid[]` literals, so one statement holds any number of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.provider_ids import provider_message_id
from chat4all.adapters.sql.postgres.connections import pipelined_transaction, translate_psycopg_errors
from chat4all.adapters.sql.postgres.parameters import uuid_array

# In the order given (sorted by the caller), so two batches racing on shared keys wait for one
# another instead of deadlocking; the loser finds those keys taken.
RECORD_NEW = """
INSERT INTO connector_sends (channel, message_id, recipient_id, sent_at, provider_message_id)
SELECT %(channel)s, key.message_id, key.recipient_id, %(sent_at)s, key.provider_message_id
FROM unnest(%(message_ids)s::uuid[], %(recipient_ids)s::uuid[], %(provider_ids)s::text[])
     WITH ORDINALITY AS key(message_id, recipient_id, provider_message_id, position)
ORDER BY key.position
ON CONFLICT DO NOTHING
RETURNING message_id, recipient_id
"""


class PostgresSendLedger:
    """Implements the connectors' `SendLedger` with the semantics of `SqlSendLedger`."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def send_once(self, channel: str, message_id: UUID, recipient_id: UUID, send: Callable[[], None]) -> bool:
        """Calls `send` only if the key is new, inside the transaction that records the key
        (see `SqlSendLedger.send_once`)."""
        return bool(await self.send_new(channel, [(message_id, recipient_id)], lambda _key: send()))

    async def send_new(
        self, channel: str, keys: Sequence[tuple[UUID, UUID]], send: Callable[[tuple[UUID, UUID]], None]
    ) -> list[tuple[UUID, UUID]]:
        """Records the keys not recorded yet and calls `send` for each of them, in the order given,
        before the commit; if `send` raises, nothing is recorded."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        ordered = sorted(wanted)
        parameters = {
            "channel": channel,
            "sent_at": datetime.now(UTC),
            "message_ids": uuid_array(message_id for message_id, _ in ordered),
            "recipient_ids": uuid_array(recipient_id for _, recipient_id in ordered),
            "provider_ids": [provider_message_id(channel, *key) for key in ordered],
        }
        with translate_psycopg_errors():
            async with pipelined_transaction(self._pool) as connection:
                new = set(await (await connection.execute(RECORD_NEW, parameters)).fetchall())
                sent = [key for key in wanted if key in new]
                for key in sent:
                    send(key)
        return sent
