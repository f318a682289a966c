"""The outbox relay on PostgreSQL in one statement per round: claim and delete with
`DELETE … RETURNING` inside a transaction that commits only after the events were published."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from chat4all.adapters.sql.postgres.connections import pipelined_transaction, translate_psycopg_errors
from chat4all.application.ports import EventPublisher, OutboxEvent

# Relays of several API processes take turns: one relay at a time claims and publishes, so two
# events of one conversation can never be published out of order by relays racing each other.
TAKE_TURN = "SELECT pg_advisory_xact_lock(hashtext('chat4all.outbox-relay'))"

CLAIM = """
DELETE FROM outbox
WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, topic, key, payload
"""


class PostgresOutboxReader:
    """Implements `OutboxReader` like `SqlOutboxReader`, in two pipelined round trips: BEGIN, the
    relays' turn (a transaction-scoped advisory lock) and the claim with `DELETE … RETURNING` go
    together; COMMIT goes after the publish."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def relay_batch(self, publisher: EventPublisher, limit: int) -> int:
        with translate_psycopg_errors():
            async with pipelined_transaction(self._pool) as connection:
                await connection.execute(TAKE_TURN)
                # A failed publish raises out of the transaction, which rolls the delete back.
                rows = await (await connection.execute(CLAIM, {"limit": limit})).fetchall()
                if not rows:
                    return 0
                rows.sort()  # RETURNING follows no order; events leave in commit (id) order
                await publisher.publish_batch([OutboxEvent(topic, key, payload) for _, topic, key, payload in rows])
        return len(rows)

    async def backlog(self) -> int:
        with translate_psycopg_errors():
            async with self._pool.connection() as connection:
                row = await (await connection.execute("SELECT count(*) FROM outbox")).fetchone()
        return int(row[0]) if row else 0
