"""How long completing an upload takes on S3: hashing the chunks and joining them with part copies.

    eval "$(bash scripts/services.sh env)"
    uv run python -m benchmarks.s3_assemble --chunks 32 --chunk-mib 8 --rounds 3 [--completer same|other] [--in-flight 4]

--completer same completes with the instance that stored the chunks (in order, so it hashed them
as they arrived and copied them into the file's parts meanwhile); other completes with a fresh instance, as another API process
would, which reads every chunk back and hashes it while the copies run.

Uses CHAT4ALL_TEST_S3_* (as the integration tests do) and a throw-away key prefix it removes afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

from chat4all.adapters.storage.s3 import S3FileStorage, make_s3_client
from tests.integration.s3_fixtures import remove_prefix, s3_test_settings

MiB = 1024 * 1024


def timed(assembler: Any, name: str, spent: dict[str, float]) -> None:
    original: Callable[..., Awaitable[Any]] = getattr(assembler, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            spent[name] = time.perf_counter() - started

    setattr(assembler, name, wrapper)


STEPS = ("hash_chunks", "hash_and_copy")


async def one_round(
    storage: S3FileStorage, completer: S3FileStorage, chunks: list[bytes], checksum: str, in_flight: int
) -> dict[str, float]:
    upload_id = uuid4()
    started = time.perf_counter()
    gate = asyncio.Semaphore(in_flight)

    async def put(index: int, chunk: bytes) -> None:
        async with gate:
            await storage.put_chunk(upload_id, index, chunk)

    await asyncio.gather(*(put(index, chunk) for index, chunk in enumerate(chunks)))
    spent = {"put chunks": time.perf_counter() - started}
    for name in STEPS:
        timed(completer._assembler, name, spent)
    started = time.perf_counter()
    assert await completer.assemble_if_matches(upload_id, len(chunks), checksum) == checksum
    spent["assemble total"] = time.perf_counter() - started
    started = time.perf_counter()
    await completer.release_chunks(upload_id)  # what completing does once the database has recorded it
    spent["release_chunks"] = time.perf_counter() - started
    for name in STEPS:
        delattr(completer._assembler, name)
    return spent


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copy-concurrency", type=int, default=4)
    parser.add_argument("--completer", choices=("same", "other"), default="same")
    parser.add_argument("--no-copy-ahead", action="store_true", help="copy every part only when completing")
    parser.add_argument("--in-flight", type=int, default=4, help="chunks stored at once, as the API's clients send them")
    args = parser.parse_args()

    settings = s3_test_settings()
    client = make_s3_client(settings)
    prefix = f"bench-{uuid4().hex[:12]}/"
    storage = S3FileStorage(
        client, settings.bucket, key_prefix=prefix, copy_concurrency=args.copy_concurrency,
        copy_ahead=not args.no_copy_ahead,
    )
    completer = storage
    if args.completer == "other":
        completer = S3FileStorage(client, settings.bucket, key_prefix=prefix, copy_concurrency=args.copy_concurrency)
    await storage.ensure_bucket()
    chunks = [os.urandom(args.chunk_mib * MiB) for _ in range(args.chunks)]
    total_mib = args.chunks * args.chunk_mib

    started = time.perf_counter()
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    checksum = digest.hexdigest()
    in_memory = total_mib / (time.perf_counter() - started)

    rounds: list[dict[str, float]] = []
    try:
        for _ in range(args.rounds):
            rounds.append(await one_round(storage, completer, chunks, checksum, args.in_flight))
    finally:
        await storage.close()
        await completer.close()
        remove_prefix(client, settings.bucket, prefix)

    print(f"{args.chunks} chunks x {args.chunk_mib} MiB = {total_mib} MiB at {settings.endpoint_url}, {args.rounds} rounds")
    print(f"sha256 in memory, one thread: {in_memory:.0f} MB/s")
    print(f"{args.in_flight} chunks stored at once; completed by the {args.completer} instance")
    print("hash_and_copy waits for the parts copied ahead, hashes what was not hashed on arrival and copies it")
    for name in rounds[0]:
        seconds = statistics.median(entry[name] for entry in rounds)
        print(f"{name:>20}: median {seconds:6.2f} s  ({total_mib / seconds:6.0f} MiB/s)")


if __name__ == "__main__":
    asyncio.run(main())
