"""What accepting one message costs the database adapters: the message intakes alone, in-process.

    uv run python -m benchmarks.intake_cost --database-url postgresql+psycopg://postgres@127.0.0.1:15432/postgres
    uv run python -m benchmarks.intake_cost --database-url sqlite        # a throw-away SQLite file

Creates a scratch database (PostgreSQL: a new database next to the given one, dropped at the
end), migrates it, and stores messages through the profile's intake (`PostgresMessageIntake`, one
statement per batch; `SqliteMessageIntake`, one transaction per batch): `--messages` one after
the other (the latency of one accept at low load), then as many with `--concurrency` in flight
(group commit). Conversations: a private one (2 members) and a group of `--group` members.
Reports wall and CPU milliseconds per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


async def _seed(engine: Any, members: int) -> Any:
    from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
    from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
    from chat4all.domain.users import User

    now = datetime.now(UTC)
    users = [User(uuid.uuid4(), f"u{uuid.uuid4().hex[:12]}", "h", now) for _ in range(members)]
    kind = ConversationType.PRIVATE if members == 2 else ConversationType.GROUP
    conversation = Conversation.start(
        conversation_id=uuid.uuid4(), type=kind, members=[user.id for user in users], creator=users[0].id,
        metadata=ConversationMetadata(name=None if members == 2 else "bench"), now=now,
    )
    async with SqlUnitOfWorkFactory(engine)() as uow:
        for user in users:
            await uow.users.add(user)
        await uow.conversations.add(conversation)
        await uow.commit()
    return conversation


def _message(conversation: Any) -> tuple[Any, Any]:
    from chat4all.application.ports import OutboxEvent
    from chat4all.domain.messages import Message, MessageDraft, Priority, TextPayload

    draft = MessageDraft(uuid.uuid4(), conversation.id, conversation.members[0], None, ("whatsapp",),
                         TextPayload("cost of one message"), Priority.NORMAL)
    message = Message.accept(draft, datetime.now(UTC))
    return message, OutboxEvent("message_processing", str(conversation.id), {"message_id": str(message.id)})


async def _timed(count: int, concurrency: int, accept: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await accept()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"wall_ms_per_message": round(1000 * wall / count, 3), "cpu_ms_per_message": round(1000 * cpu / count, 3)}


async def _measure(intake: Any, engine: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for members in (2, args.group):
        conversation = await _seed(engine, members)

        async def accept(conversation: Any = conversation) -> None:
            message, routing = _message(conversation)
            assert await intake.accept(message, conversation, routing)

        await _timed(50, 1, accept)  # warm-up: connections, prepared statements
        for concurrency in (1, args.concurrency):
            figures = await _timed(args.messages, concurrency, accept)
            rows.append({"members": members, "in_flight": concurrency, **figures})
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from chat4all.adapters.sql.engine import create_engine
    from chat4all.adapters.sql.migrations import upgrade_database

    scratch, url = _scratch_url(args.database_url)
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        if url.startswith("sqlite"):
            from chat4all.adapters.sql.sqlite.intake import SqliteMessageIntake

            return {"database": "sqlite", "rows": await _measure(SqliteMessageIntake(engine), engine, args)}
        from chat4all.adapters.sql.postgres.connections import direct_pool
        from chat4all.adapters.sql.postgres.intake import PostgresMessageIntake

        pool = direct_pool(url, max_connections=5)
        await pool.open()
        try:
            return {"database": "postgresql", "rows": await _measure(PostgresMessageIntake(pool), engine, args)}
        finally:
            await pool.close()
    finally:
        await engine.dispose()
        scratch()


def _scratch_url(database_url: str) -> tuple[Callable[[], None], str]:
    if database_url == "sqlite":
        directory = tempfile.TemporaryDirectory()
        return directory.cleanup, f"sqlite+aiosqlite:///{Path(directory.name) / 'intake.db'}"
    import psycopg
    from sqlalchemy import make_url

    base = make_url(database_url)
    name = f"chat4all_intake_{uuid.uuid4().hex[:8]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return drop, base.set(database=name).render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="benchmarks.intake_cost", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--database-url", required=True, help="a PostgreSQL URL to create the scratch database next to, or 'sqlite'")
    cli.add_argument("--messages", type=int, default=1000)
    cli.add_argument("--concurrency", type=int, default=50)
    cli.add_argument("--group", type=int, default=10, help="members of the group conversation")
    args = cli.parse_args(argv)
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
