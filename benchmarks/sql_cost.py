"""What one message costs in the hub's own code: SQL statements and CPU time per use case, in-process.

    uv run python -m benchmarks.sql_cost --env-file deploy.env [--messages 300] [--profile-top 25] [--role worker]

Runs, against the deployment's database (settings from --env-file or the environment), the use
cases a message goes through: ResolveToken (every authenticated request), SendMessage (POST
/v1/messages), RouteMessage and DeliverMessage (the worker, or the embedded process). Events the
route step publishes go to an in-memory recorder, not to Kafka, so a running worker sees nothing.
For each use case it counts SQL statements (SQLAlchemy's before_cursor_execute) and measures CPU
time (time.process_time) per call, and profiles with cProfile on a CPU-time clock, so time this
process spends waiting (for the database, or for a CPU on a busy machine) is not counted: the
figures say what the code costs, not how loaded the box was.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from benchmarks.common import load_env_file, write_json


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Mapping[str, Any]]] = []

    async def publish(self, topic: str, key: str, payload: Mapping[str, Any]) -> None:
        self.events.append((topic, key, dict(payload)))

    async def publish_batch(self, events: Sequence[Any]) -> None:
        for event in events:
            self.events.append((event.topic, event.key, dict(event.payload)))

    async def check(self) -> None:
        return None


class CountedIntake:
    """The PostgreSQL intake runs one statement per call on its own psycopg pool, out of sight of
    the engine's statement counter; this counts it."""

    def __init__(self, intake: Any, counter: dict[str, int]) -> None:
        self.intake, self.counter = intake, counter

    async def accept(self, *args: Any) -> bool:
        self.counter["n"] += 1
        return await self.intake.accept(*args)


def build_hub(
    settings: Any, publisher: RecordingPublisher, counter: dict[str, int], role: str | None = None
) -> tuple[Any, Any]:
    """The hub the composition root builds for the API (or the embedded process), with the recording
    publisher; returns (hub, engine)."""
    from chat4all.entrypoints.bootstrap import build, serving_role

    hub = build(role or serving_role(settings), settings, publisher=publisher)
    if settings.distributed and hub.adapters.intake is not None:
        hub.adapters.intake = hub.send_message.intake = CountedIntake(hub.adapters.intake, counter)
    return hub, hub.adapters.uow.engine


async def measure(name: str, calls: list[Callable[[], Awaitable[Any]]], counter: dict[str, int],
                  profile: cProfile.Profile | None) -> dict[str, Any]:
    counter["n"] = 0
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    for call in calls:
        await call()
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    return {
        "use_case": name,
        "calls": len(calls),
        "sql_statements_per_call": round(counter["n"] / len(calls), 2),
        "cpu_ms_per_call": round(1000 * cpu / len(calls), 3),
        "wall_ms_per_call": round(1000 * wall / len(calls), 3),
        "calls_per_cpu_second": round(len(calls) / cpu, 1) if cpu else None,
    }


def top_functions(profile: cProfile.Profile, limit: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = sum(entry[2] for entry in stats.stats.values()) or 1  # tottime
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():
        short = filename.split("site-packages/")[-1].split("/src/")[-1]
        rows.append({"function": f"{function} ({short}:{line})", "calls": calls,
                     "self_percent": round(100 * tottime / total, 1), "cumulative_percent": round(100 * cumtime / total, 1)})
    by_self = sorted(rows, key=lambda row: row["self_percent"], reverse=True)[:limit]
    by_package: dict[str, float] = {}
    for row in rows:
        location = row["function"].split(" (", 1)[1]
        package = location.split("/", 1)[0] if "/" in location else "python"
        by_package[package] = by_package.get(package, 0.0) + row["self_percent"]
    return [{"self_by_package_percent": dict(sorted(((k, round(v, 1)) for k, v in by_package.items()),
                                                    key=lambda item: -item[1])[:12])}, *by_self]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import event

    from chat4all.application.messaging import SendRequest
    from chat4all.domain.conversations import ConversationMetadata, ConversationType
    from chat4all.domain.messages import Priority
    from chat4all.entrypoints.settings import load_settings

    env = {**os.environ, **(load_env_file(args.env_file) if args.env_file else {})}
    settings = load_settings(env)
    if not settings.distributed:
        from chat4all.entrypoints.cli import migrate

        await migrate(settings)
    publisher = RecordingPublisher()
    counter = {"n": 0}
    hub, engine = build_hub(settings, publisher, counter, args.role)
    if settings.distributed:
        for hook in hub.adapters.on_start:  # the direct statements' pool and the like: no relay, no background loops
            await hook()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(*_: Any) -> None:
        counter["n"] += 1

    profiles = {name: cProfile.Profile(time.process_time) for name in ("resolve", "send", "route", "deliver")}
    try:
        prefix = f"cost{uuid.uuid4().hex[:6]}_"
        sender = await hub.register_user.execute(prefix + "a", "cost-password-1")
        recipient = await hub.register_user.execute(prefix + "b", "cost-password-1")
        secret = (await hub.authenticate.execute(prefix + "a", "cost-password-1")).access_token
        conversation = (await hub.create_conversation.execute(
            caller=sender.id, type=ConversationType.PRIVATE, members=[sender.id, recipient.id],
            metadata=ConversationMetadata())).conversation
        def send(message_id: uuid.UUID) -> Callable[[], Awaitable[Any]]:
            request = SendRequest(message_id=message_id, conversation_id=conversation.id, sender_id=sender.id,
                                  recipient_id=None, channels=("whatsapp",), text="cost", file_id=None,
                                  priority=Priority.NORMAL)
            return lambda: hub.send_message.execute(sender.id, request)

        async def one_round(profiling: bool) -> list[dict[str, Any]]:
            ids = [uuid.uuid4() for _ in range(args.messages)]

            def use(name: str) -> cProfile.Profile | None:
                return profiles[name] if profiling else None

            return [
                await measure("ResolveToken (every request)",
                              [lambda: hub.resolve_token.execute(secret)] * args.messages, counter, use("resolve")),
                await measure("SendMessage (POST /v1/messages)", [send(i) for i in ids], counter, use("send")),
                await measure("RouteMessage (message_processing event)",
                              [lambda i=i: hub.route_message.execute(i) for i in ids], counter, use("route")),
                await measure("DeliverMessage (whatsapp_outgoing event)",
                              [lambda i=i: hub.deliver_message.execute(i, "whatsapp") for i in ids], counter,
                              use("deliver")),
            ]

        # warm-up: SQLAlchemy's statement cache, prepared statements, pool connections
        for message_id in [uuid.uuid4() for _ in range(20)]:
            await hub.resolve_token.execute(secret)
            await send(message_id)()
            await hub.route_message.execute(message_id)
            await hub.deliver_message.execute(message_id, "whatsapp")
        results = await one_round(profiling=False)  # the figures: no profiler overhead
        await one_round(profiling=True)  # where the CPU goes (cProfile inflates the totals, not the shares much)
    finally:
        await hub.stop()
    return {
        "tool": "sql_cost",
        "profile": settings.profile if args.role is None else f"{settings.profile}, {args.role} role",
        "database": settings.database_url.split("@")[-1],
        "messages": args.messages,
        "use_cases": results,
        "cpu_profiles": {name: top_functions(profile, args.profile_top) for name, profile in profiles.items()},
    }


def render(report: dict[str, Any]) -> str:
    lines = [f"Per-use-case cost ({report['profile']}, {report['messages']} messages, {report['database']})", ""]
    header = f"{'use case':<44} {'SQL/call':>9} {'CPU ms/call':>12} {'wall ms/call':>13} {'calls/CPU s':>12}"
    lines += [header, "-" * len(header)]
    for row in report["use_cases"]:
        lines.append(f"{row['use_case']:<44} {row['sql_statements_per_call']:>9} {row['cpu_ms_per_call']:>12} "
                     f"{row['wall_ms_per_call']:>13} {row['calls_per_cpu_second']:>12}")
    for name, rows in report["cpu_profiles"].items():
        lines += ["", f"CPU profile {name}: " + ", ".join(f"{k} {v}%" for k, v in rows[0]["self_by_package_percent"].items())]
        lines += [f"  {row['self_percent']:5.1f}% self {row['cumulative_percent']:5.1f}% cum  {row['function']}"
                  for row in rows[1:13]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="benchmarks.sql_cost", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--env-file", help="the deployment's CHAT4ALL_* settings; default: environment")
    cli.add_argument("--messages", type=int, default=300)
    cli.add_argument(
        "--role",
        choices=["api", "worker"],
        help="distributed profile: the process whose adapters run the use cases (default api; a worker "
        "routes and delivers through its psycopg batch writer, whose statements the SQL count misses)",
    )
    cli.add_argument("--profile-top", type=int, default=25)
    cli.add_argument("--json")
    args = cli.parse_args(argv)
    from benchmarks.messages import run_async

    report = run_async(run(args))
    write_json(args.json, report)
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
