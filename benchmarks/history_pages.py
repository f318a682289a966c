"""History pages of a small and a huge conversation on PostgreSQL, through the HTTP API.

A throw-away distributed deployment (`benchmarks.deploy`: its own database, dropped at the end;
no worker) gets two private conversations. One message is sent into each through the API; the
rest are bulk-loaded from it in the database (`INSERT ... SELECT ... FROM generate_series`: the
same message, its delivery rows and its receipt, at positions 2..N), the conversations' counters
set to N, and the tables analysed. Then `GET /v1/conversations/{id}/messages` is timed, one
request at a time, for: the first page (no cursor), a page at offset N - limit (kept for old
clients), a page `before` the newest message and a page `after` the middle one (keyset cursors).

    uv run python -m benchmarks.history_pages --small 1000 --large 1000000 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import psycopg

from benchmarks.common import latency_summary, make_session, write_json
from benchmarks.deploy import Deployment
from benchmarks.live_events import FAST, make_users, start_pair
from chat4all.adapters.sql.postgres.connections import conninfo_of
from chat4all.domain.history import HistoryCursor

# Bulk-loaded copies of the conversation's first message: (table, {column: expression}); the
# other columns are the first message's. `n` is the position, `t` the first message's row.
NEW_ID = "md5(t.conversation_id::text || ':' || n)::uuid"
COPIES = {
    "messages": {"id": NEW_ID, "position": "n", "created_at": "t.created_at + n * interval '1 millisecond'", "seq": None},
    "message_deliveries": {"message_id": NEW_ID.replace("t.conversation_id", "m.conversation_id")},
    "message_receipts": {"message_id": NEW_ID, "position": "n"},
}


def message_id_at(conversation_id: str, position: int) -> uuid.UUID:
    import hashlib

    return uuid.UUID(hashlib.md5(f"{conversation_id}:{position}".encode()).hexdigest())


def columns_of(connection: psycopg.Connection, table: str) -> list[str]:
    rows = connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = current_schema() "
        "ORDER BY ordinal_position", (table,)
    ).fetchall()
    return [row[0] for row in rows]


def copy_statement(connection: psycopg.Connection, table: str) -> str:
    overrides = COPIES[table]
    columns = [column for column in columns_of(connection, table) if overrides.get(column, "") is not None]
    values = ", ".join(overrides.get(column) or f"t.{column}" for column in columns)
    if table == "message_deliveries":  # deliveries hang off the message: reach its conversation through it
        source = "message_deliveries t JOIN messages m ON m.id = t.message_id"
    else:
        source = f"{table} t"
    where = "m.conversation_id = %(conversation)s AND m.position = 1" if table == "message_deliveries" else (
        "t.conversation_id = %(conversation)s AND t.position = 1"
    )
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {source}, "
            f"generate_series(2, %(count)s) AS n WHERE {where}")


def bulk_load(database_url: str, conversation_id: str, count: int) -> float:
    """Positions 2..count as copies of the first message; returns the seconds it took."""
    began = time.monotonic()
    with psycopg.connect(conninfo_of(database_url)) as connection:
        connection.execute("SET synchronous_commit = off")
        for table in COPIES:
            connection.execute(copy_statement(connection, table), {"conversation": conversation_id, "count": count})
        connection.execute(
            "UPDATE conversations SET message_count = %(count)s, last_message_id = %(last)s WHERE id = %(conversation)s",
            {"count": count, "last": message_id_at(conversation_id, count), "conversation": conversation_id},
        )
        connection.commit()
        connection.autocommit = True
        for table in ("messages", "message_deliveries", "message_receipts", "conversations"):
            connection.execute(f"VACUUM ANALYZE {table}")
    return time.monotonic() - began


async def send_first(http, base: str, conversation: str, sender: tuple[str, str]) -> None:
    body = {"message_id": str(uuid.uuid4()), "conversation_id": conversation, "from": sender[0], "channels": ["whatsapp"],
            "payload": {"type": "text", "text": "history benchmark"}}
    async with http.post(f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {sender[1]}"}) as answer:
        if answer.status >= 300:
            raise RuntimeError(f"sending the first message failed: {answer.status} {await answer.text()}")


def page_queries(conversation: str, count: int, limit: int) -> dict[str, dict[str, str]]:
    middle = count // 2
    return {
        "first_page": {"limit": str(limit)},
        "deep_offset": {"limit": str(limit), "offset": str(max(0, count - limit))},
        "before_newest": {"limit": str(limit), "before": HistoryCursor(count, message_id_at(conversation, count)).encode()},
        "after_middle": {"limit": str(limit), "after": HistoryCursor(middle, message_id_at(conversation, middle)).encode()},
    }


async def time_pages(http, base: str, conversation: str, reader: tuple[str, str], count: int, limit: int,
                     requests: int) -> dict[str, Any]:
    url, headers = f"{base}/v1/conversations/{conversation}/messages", {"Authorization": f"Bearer {reader[1]}"}
    timings: dict[str, Any] = {}
    for name, query in page_queries(conversation, count, limit).items():
        spent = []
        for index in range(requests + 5):
            began = time.perf_counter()
            async with http.get(url, params=query, headers=headers) as answer:
                body = await answer.json()
            if answer.status != 200 or body["total"] != count or len(body["messages"]) != min(limit, count):
                raise RuntimeError(f"{name}: unexpected answer {answer.status} {str(body)[:300]}")
            if index >= 5:  # the first few warm the caches and the connection pool
                spent.append(time.perf_counter() - began)
        timings[name] = latency_summary(spent)
    return timings


async def run(deployment: Deployment, sizes: dict[str, int], limit: int, requests: int) -> dict[str, Any]:
    users = await make_users(deployment, 2 * len(sizes))
    result: dict[str, Any] = {}
    async with make_session(8) as http:
        for index, (name, count) in enumerate(sizes.items()):
            sender, reader = users[2 * index], users[2 * index + 1]
            conversation = await start_pair(http, deployment.base_url, sender, reader)
            await send_first(http, deployment.base_url, conversation, sender)
            loaded = await asyncio.to_thread(bulk_load, deployment.env["CHAT4ALL_DATABASE_URL"], conversation, count)
            pages = await time_pages(http, deployment.base_url, conversation, reader, count, limit, requests)
            result[name] = {"messages": count, "bulk_load_s": round(loaded, 1), "pages": pages}
    small, large = result["small"]["pages"], result["large"]["pages"]
    result["large_over_small_p50"] = {name: round(large[name]["p50_ms"] / small[name]["p50_ms"], 2) for name in small}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per kind of page")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    with Deployment("distributed", extra_env=FAST, worker=False) as deployment:
        result = {"profile": "distributed", "limit": args.limit, "requests": args.requests,
                  **asyncio.run(run(deployment, {"small": args.small, "large": args.large}, args.limit, args.requests))}
    print(json.dumps(result, indent=2))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
