"""`chat4all` command line: serve the API, run workers, migrate, manage users, list unmatched inbound
replies; and the client commands (see `chat4all.client`)."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
from collections.abc import Sequence

from chat4all.client.commands import add_client_commands, run_client_command
from chat4all.client.paths import Directories
from chat4all.domain.errors import DomainError
from chat4all.entrypoints.settings import Settings, SettingsError, client_directories, load_settings

DEMO_USERS = ("alice", "bob", "carol")
DEMO_PASSWORD = "chat4all-demo"


def build_hub(settings: Settings):
    """The process `chat4all serve` runs in the configured profile (the one-off commands use it too)."""
    from chat4all.entrypoints.bootstrap import build, serving_role

    return build(serving_role(settings), settings)


async def migrate(settings: Settings) -> None:
    from chat4all.adapters.sql.migrations import upgrade_database

    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    outcome = upgrade_database(settings.database_url)
    if inspect.isawaitable(outcome):
        await outcome
    if settings.distributed:
        from chat4all.entrypoints.distributed import prepare_distributed_services

        await prepare_distributed_services(settings)


async def add_user(settings: Settings, username: str, password: str) -> str:
    if not settings.distributed:
        await migrate(settings)
    hub = build_hub(settings)
    try:
        user = await hub.register_user.execute(username, password)
        return str(user.id)
    finally:
        await hub.stop()


async def list_users(settings: Settings) -> list[tuple[str, str]]:
    if not settings.distributed:
        await migrate(settings)
    hub = build_hub(settings)
    try:
        users = await hub.find_users.execute(limit=100)
        return [(str(user.id), user.username) for user in users]
    finally:
        await hub.stop()


async def unmatched_replies(settings: Settings, channel: str | None, limit: int) -> list[dict[str, str]]:
    if not settings.distributed:
        await migrate(settings)
    hub = build_hub(settings)
    try:
        kept = await hub.list_unmatched_replies.execute(channel, limit)
    finally:
        await hub.stop()
    return [
        {
            "received_at": one.received_at.isoformat().replace("+00:00", "Z"),
            "channel": one.reply.channel,
            "reason": one.reason,
            "from": one.reply.sender_handle,
            "provider_message_id": one.reply.provider_message_id,
            "answers": one.reply.context_id,
            "text": one.reply.text,
        }
        for one in kept
    ]


def _print_unmatched(replies: list[dict[str, str]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(replies, ensure_ascii=False))
        return
    for one in replies:
        print(
            f"{one['received_at']}  {one['channel']}  {one['reason']}  from {one['from']}  "
            f"id {one['provider_message_id']}  answers {one['answers']}  {json.dumps(one['text'], ensure_ascii=False)}"
        )


async def seed_demo(settings: Settings) -> list[tuple[str, str]]:
    from chat4all.domain.errors import Conflict

    hub = build_hub(settings)
    try:
        seeded = []
        for name in DEMO_USERS:
            try:
                user = await hub.register_user.execute(name, DEMO_PASSWORD)
                seeded.append((name, str(user.id)))
            except Conflict:
                found = await hub.find_users.execute(username=name)
                seeded.append((name, str(found[0].id)))
        return seeded
    finally:
        await hub.stop()


def serve(settings: Settings, host: str, port: int, demo: bool) -> None:
    from chat4all.entrypoints.http.server import ByListener
    from chat4all.entrypoints.web import metrics_app, run_server, server_config, web_app

    if settings.http.metrics_port == port:
        raise SettingsError(f"CHAT4ALL_METRICS_PORT must differ from the API port ({port})")
    if not settings.distributed:
        asyncio.run(migrate(settings))
    if demo:
        users = asyncio.run(seed_demo(settings))
        print(_demo_banner(users, host, port), flush=True)
    hub = build_hub(settings)
    app = web_app(hub, settings, bind_host=host)
    if settings.http.metrics_port:
        app = ByListener(app, metrics_app(hub, settings), settings.http.metrics_port)
    print(f"Chat4All ({settings.profile}) listening on http://{host}:{port} — API docs at /docs", file=sys.stderr, flush=True)
    if settings.http.metrics_port:
        where = f"{settings.http.metrics_address}:{settings.http.metrics_port}"
        print(f"Prometheus metrics on http://{where}/metrics", file=sys.stderr, flush=True)
    recipient = hub.recipient
    run_server(server_config(app, settings, host, port), settings, recipient.live_events.end_all if recipient else None)


def _demo_banner(users: list[tuple[str, str]], host: str, port: int) -> str:
    lines = [f"Demo users (password '{DEMO_PASSWORD}'):"]
    lines += [f"  {name:<6} {user_id}" for name, user_id in users]
    lines.append(
        f"Log in:  curl -s -X POST http://{host}:{port}/auth/token -H 'Content-Type: application/json' "
        f"-d '{{\"username\": \"alice\", \"password\": \"{DEMO_PASSWORD}\"}}'"
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chat4all", description="Chat4All messaging hub")
    commands = root.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP API (embedded profile: also router and connectors)")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--demo", action="store_true", help=f"create users {', '.join(DEMO_USERS)} first")
    commands.add_parser("worker", help="distributed profile: run the Kafka router and channel connectors")
    commands.add_parser("migrate", help="create or upgrade the database schema (and the bucket and topics when distributed)")
    users = commands.add_parser("users", help="manage users").add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="create a user and print its id")
    add.add_argument("username")
    add.add_argument("--password", required=True)
    users.add_parser("list", help="list users")
    inbound = commands.add_parser("inbound", help="replies from channels").add_subparsers(dest="inbound_command", required=True)
    unmatched = inbound.add_parser("unmatched", help="the replies the hub could not place, newest first")
    unmatched.add_argument("--channel", help="only this channel's")
    unmatched.add_argument("--limit", type=int, default=50, help="how many (1-1000, default 50)")
    unmatched.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    add_client_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "client_command", None):
        found = client_directories()
        return run_client_command(args, Directories.under(found.config_home, found.state_home))
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    from chat4all.entrypoints.logs import configure_logging

    configure_logging(settings.log_level)
    try:
        _run_server_command(args, settings)
    except DomainError as error:
        print(f"error: {error.detail}", file=sys.stderr)
        return 1
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    return 0


def _run_server_command(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "serve":
        serve(settings, args.host, args.port, args.demo)
    elif args.command == "worker":
        from chat4all.entrypoints.worker import run_worker

        run_worker(settings)
    elif args.command == "migrate":
        asyncio.run(migrate(settings))
        print("database schema is up to date")
    elif args.command == "inbound":
        _print_unmatched(asyncio.run(unmatched_replies(settings, args.channel, args.limit)), args.json)
    elif args.users_command == "add":
        print(asyncio.run(add_user(settings, args.username, args.password)))
    else:
        for user_id, username in asyncio.run(list_users(settings)):
            print(f"{user_id}  {username}")


if __name__ == "__main__":
    sys.exit(main())
