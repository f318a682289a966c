"""Readiness probes used by scripts/services.sh.

A service counts as ready only when a real client has talked to it:

    probe.py kafka 127.0.0.1:19092 --timeout 60 [--pid PID]
        fetches cluster metadata with aiokafka (the client the project uses),
        then asks for a group coordinator so the offsets topic exists before
        the first test needs it.
    probe.py s3 http://127.0.0.1:17070 --access KEY --secret SECRET \\
            --bucket chat4all --bucket chat4all-test --timeout 60 [--pid PID]
        signed ListBuckets with boto3, then creates the missing buckets.

Retries until --timeout seconds have passed; gives up at once if --pid names a
process that has died. Exit status 0 when ready, 1 otherwise (reason on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time


class ProbeFailed(Exception):
    """Not ready and no point in retrying."""


def process_alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def retry(args: argparse.Namespace, attempt) -> str:
    deadline = time.monotonic() + args.timeout
    last = "no attempt made"
    while True:
        if not process_alive(args.pid):
            raise ProbeFailed(f"server process {args.pid} exited (last probe error: {last})")
        try:
            return attempt()
        except ProbeFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is retried until the deadline
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise ProbeFailed(f"not ready after {args.timeout:.0f}s (last error: {last})")
        time.sleep(1.0)


def kafka_once(bootstrap: str) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            topics = await asyncio.wait_for(admin.list_topics(), 10)
            # Creates __consumer_offsets on a fresh broker; the broker answers
            # COORDINATOR_NOT_AVAILABLE until it is there, so retry it.
            await asyncio.wait_for(admin.find_coordinator("chat4all-readiness"), 10)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
        finally:
            await admin.close()
        return f"cluster {cluster['cluster_id']}, {len(topics)} topic(s)"

    return asyncio.run(run())


def s3_once(args: argparse.Namespace) -> str:
    import boto3
    from botocore.client import Config
    from botocore.exceptions import ClientError, EndpointConnectionError

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        aws_access_key_id=args.access,
        aws_secret_access_key=args.secret,
        region_name=args.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=3,
            read_timeout=10,
            retries={"max_attempts": 1},
        ),
    )
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    except EndpointConnectionError:
        raise
    except ClientError as exc:
        # The server answered: wrong credentials will not fix themselves.
        raise ProbeFailed(f"signed ListBuckets refused: {exc}") from exc
    created = []
    for bucket in args.bucket:
        if bucket not in existing:
            try:
                s3.create_bucket(Bucket=bucket)
                created.append(bucket)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise ProbeFailed(f"cannot create bucket {bucket}: {exc}") from exc
    names = sorted({b["Name"] for b in s3.list_buckets().get("Buckets", [])})
    missing = [b for b in args.bucket if b not in names]
    if missing:
        raise ProbeFailed(f"buckets still missing after create: {missing}")
    return f"buckets {names}" + (f" (created {created})" if created else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="service", required=True)
    for name in ("kafka", "s3"):
        p = sub.add_parser(name)
        p.add_argument("--timeout", type=float, default=60)
        p.add_argument("--pid", type=int, default=None)
    sub.choices["kafka"].add_argument("bootstrap")
    s3p = sub.choices["s3"]
    s3p.add_argument("endpoint")
    s3p.add_argument("--access", required=True)
    s3p.add_argument("--secret", required=True)
    s3p.add_argument("--region", default="us-east-1")
    s3p.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args()

    # The clients log every refused connection while the server starts.
    logging.basicConfig(level=logging.CRITICAL)
    # A missing client library is not worth retrying: import it up front.
    import aiokafka  # noqa: F401
    import boto3  # noqa: F401
    try:
        if args.service == "kafka":
            detail = retry(args, lambda: kafka_once(args.bootstrap))
        else:
            detail = retry(args, lambda: s3_once(args))
    except ProbeFailed as exc:
        print(f"{args.service}: {exc}", file=sys.stderr)
        return 1
    print(detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
