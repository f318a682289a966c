"""What the worker alone can do: messages written straight into the database and their routing
events straight onto Kafka, at a fixed rate, with no API in the way.

    uv run python -m benchmarks.worker_load --rate 500 --duration 20 [--conversations 50] [--channels whatsapp]

Starts a throw-away distributed deployment (`benchmarks.deploy`: migrate, worker, and an API
that stays idle), creates users and private conversations, then every 10 ms accepts the messages
due by then in one transaction (as SendMessage would, without the outbox) and publishes their
`message_processing` events in one batch. Once sending stops it waits until every message is
terminal, then reports: messages finished per second while sending, the worker's CPU per message
(over the sending window and over sending + drain), and accept->delivered latency from the
messages' own history (server timestamps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import latency_summary, write_json
from benchmarks.deploy import Deployment
from benchmarks.processes import cpu_seconds
from benchmarks.shared_servers import services_up

TICK = 0.01


async def run(args: argparse.Namespace, deployment: Deployment) -> dict[str, Any]:
    from chat4all.adapters.kafka import KafkaEventPublisher
    from chat4all.adapters.sql.engine import create_engine
    from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
    from chat4all.application.ports import OutboxEvent
    from chat4all.application.reading import store_new_message
    from chat4all.application.work import ROUTE_STREAM as MESSAGE_PROCESSING
    from chat4all.domain.conversations import Conversation, ConversationMetadata, ConversationType
    from chat4all.domain.messages import Message, MessageDraft, Priority, TextPayload
    from chat4all.domain.users import User

    env = deployment.env
    engine = create_engine(env["CHAT4ALL_DATABASE_URL"])
    uow = SqlUnitOfWorkFactory(engine)
    publisher = KafkaEventPublisher(env["CHAT4ALL_KAFKA_BOOTSTRAP"], client_id="worker-load")
    await publisher.start()
    channels = tuple(args.channels.split(","))
    try:
        now = datetime.now(UTC)
        users = [User(uuid.uuid4(), f"load{index}", "not-a-hash", now) for index in range(args.conversations + 1)]
        conversations = [
            Conversation.start(
                conversation_id=uuid.uuid4(),
                type=ConversationType.PRIVATE,
                members=[users[0].id, users[index + 1].id],
                creator=users[0].id,
                metadata=ConversationMetadata(),
                now=now,
            )
            for index in range(args.conversations)
        ]
        async with uow() as tx:
            for user in users:
                await tx.users.add(user)
            for conversation in conversations:
                await tx.conversations.add(conversation)
            await tx.commit()

        worker = deployment.pid("worker")
        assert worker is not None
        sent = 0
        ids: list[uuid.UUID] = []
        recorder = None
        if args.py_spy:
            from benchmarks.profiling import Recorder

            recorder = Recorder(Path(args.py_spy), {"worker": worker}, duration=max(1.0, args.duration - 1))
            recorder.start()
        cpu_start = cpu_seconds(worker)
        start = time.monotonic()
        start_wall = time.time()
        while (elapsed := time.monotonic() - start) < args.duration:
            due = int(elapsed * args.rate) + 1 - sent
            if due > 0:
                batch = []
                async with uow() as tx:
                    at = datetime.now(UTC)
                    for index in range(sent, sent + due):
                        conversation = conversations[index % len(conversations)]
                        draft = MessageDraft(
                            uuid.uuid4(), conversation.id, users[0].id, None, channels, TextPayload(f"m{index}"), Priority.NORMAL
                        )
                        message = Message.accept(draft, at)
                        await store_new_message(tx, conversation, message)
                        batch.append(message)
                    await tx.commit()
                await publisher.publish_batch(
                    [
                        OutboxEvent(MESSAGE_PROCESSING, str(message.conversation_id), {"message_id": str(message.id)})
                        for message in batch
                    ]
                )
                ids += [message.id for message in batch]
                sent += due
            await asyncio.sleep(TICK)
        send_end = time.monotonic()
        send_end_wall = time.time()
        cpu_send = cpu_seconds(worker) - cpu_start
        profiles = recorder.stop() if recorder else None

        def terminal_count() -> int:
            import psycopg

            dsn = env["CHAT4ALL_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn) as connection:
                return connection.execute("SELECT count(*) FROM messages WHERE status IN ('delivered', 'failed')").fetchone()[0]

        deadline = time.monotonic() + args.drain_timeout
        finished = 0
        while time.monotonic() < deadline:
            finished = await asyncio.to_thread(terminal_count)
            if finished >= sent:
                break
            await asyncio.sleep(0.2)
        drained = time.monotonic()
        cpu_total = cpu_seconds(worker) - cpu_start

        import psycopg

        dsn = env["CHAT4ALL_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as connection:
            rows = connection.execute(
                "SELECT message_id, min(at) FILTER (WHERE status = 'accepted' AND channel IS NULL),"
                " max(at) FILTER (WHERE status IN ('delivered', 'failed') AND channel IS NULL)"
                " FROM message_events GROUP BY message_id"
            ).fetchall()
        latencies = [(done - accepted).total_seconds() for _, accepted, done in rows if accepted and done]
        finished_while_sending = sum(
            1 for _, accepted, done in rows if done is not None and done.timestamp() <= send_end_wall
        )
        sending = send_end - start
        return {
            "tool": "worker_load",
            "config": {"rate": args.rate, "duration": args.duration, "conversations": args.conversations, "channels": channels},
            "sent": sent,
            "sent_per_s": round(sent / sending, 1),
            "finished": finished,
            "finished_per_s_while_sending": round(finished_while_sending / sending, 1),
            "drain_s": round(drained - send_end, 2),
            "worker_cpu_ms_per_message_while_sending": round(1000 * cpu_send / max(sent, 1), 3),
            "worker_cpu_ms_per_message_total": round(1000 * cpu_total / max(finished, 1), 3),
            "worker_cpu_cores_while_sending": round(cpu_send / sending, 3),
            "accept_to_finished": latency_summary(latencies),
            "started_at": datetime.fromtimestamp(start_wall, UTC).isoformat(),
            "profiles": {name: profile["folded"] for name, profile in (profiles or {}).items()},
        }
    finally:
        await publisher.stop()
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--rate", type=float, default=500.0, help="messages per second")
    cli.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    cli.add_argument("--conversations", type=int, default=50)
    cli.add_argument("--channels", default="whatsapp", help="comma-separated channels per message")
    cli.add_argument("--drain-timeout", type=float, default=300.0)
    cli.add_argument("--json", help="write the report here")
    cli.add_argument("--py-spy", metavar="DIR", help="record the worker with py-spy while sending")
    cli.add_argument("--no-services", action="store_true", help="do not run scripts/services.sh up")
    cli.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra setting for the deployment")
    args = cli.parse_args(argv)
    if not args.no_services:
        services_up()
    extra_env = dict(item.split("=", 1) for item in args.env)
    with Deployment("distributed", extra_env=extra_env) as deployment:
        report = asyncio.run(run(args, deployment))
    print(json.dumps(report, indent=2))
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
