"""Connecting to an S3-compatible store: the options the adapter takes (the composition root
makes them from the CHAT4ALL_S3_* settings, `entrypoints.settings.S3Settings`), and a boto3 client
configured for the subset of S3 every supported store understands."""

from __future__ import annotations

from typing import Any

import attrs
import boto3
from botocore.config import Config


@attrs.frozen
class S3StorageOptions:
    bucket: str
    endpoint_url: str | None = None
    access_key: str | None = attrs.field(default=None, repr=False)
    secret_key: str | None = attrs.field(default=None, repr=False)
    region: str = "us-east-1"
    presign_endpoint: str | None = None
    url_ttl_seconds: int = 900
    key_prefix: str = ""
    copy_ahead: bool = True


def make_s3_client(options: S3StorageOptions, *, endpoint_url: str | None = None) -> Any:
    """A thread-safe client; credentials fall back to boto3's usual chain when not given."""
    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        max_pool_connections=32,
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Default CRC checksums and aws-chunked bodies are not understood by every S3-compatible server.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or options.endpoint_url,
        aws_access_key_id=options.access_key,
        aws_secret_access_key=options.secret_key,
        region_name=options.region,
        config=config,
    )
