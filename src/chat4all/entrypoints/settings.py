"""Configuration from CHAT4ALL_* environment variables, checked once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from chat4all.adapters.storage.s3_limits import MIN_PART_SIZE
from chat4all.application.sending import RetryPolicy
from chat4all.entrypoints.env_values import EnvReader, SettingsError
from chat4all.entrypoints.settings_channels import ChannelSettings, load_channel_settings
from chat4all.entrypoints.settings_client import ClientSettings, load_client_settings
from chat4all.entrypoints.settings_connectors import ConnectorFailures, load_connector_failures
from chat4all.entrypoints.settings_kafka import KafkaSettings, load_kafka_settings
from chat4all.entrypoints.settings_webhooks import WebhookSettings, load_webhook_settings

EMBEDDED = "embedded"
DISTRIBUTED = "distributed"
_HOST_NAME = re.compile(r"[a-z0-9.-]+|\[?[0-9a-f]*:[0-9a-f]*:[0-9a-f:.]*\]?")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "chat4all"


def client_directories() -> ClientSettings:
    return load_client_settings(EnvReader(os.environ), Path.home())


@attrs.frozen
class S3Settings:
    """CHAT4ALL_S3_*, as the operator configured them; the composition root makes the storage
    adapter's own `S3StorageOptions` from them (`entrypoints.distributed.make_storage`)."""

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    public_endpoint_url: str
    copy_ahead: bool = True


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@attrs.frozen
class HttpSettings:
    """The HTTP edge: what a client may hold open, which Host names it may use, who reads /metrics."""

    header_timeout: float = 10.0  # from the connection (or the request's first byte) to its last header
    body_timeout: float = 30.0  # a body that makes no progress for this long is given up
    keep_alive_timeout: float = 5.0  # an idle connection between requests
    max_connections: int = 1000  # per process; past it a new connection gets a 503 and is closed
    allowed_hosts: tuple[str, ...] | None = None  # None: loopback names, the bind host, the public URL's host
    metrics_token: str | None = None  # set: GET /metrics on the API port wants `Authorization: Bearer <it>`
    metrics_port: int | None = None  # set: /metrics (only) on a listener of its own
    metrics_address: str = "127.0.0.1"


@attrs.frozen
class EventsSettings:
    """Users' live events: how long the log keeps them, what a client or a process may hold open."""

    retention: timedelta = timedelta(days=7)
    max_connections_per_user: int = 10  # SSE streams and WebSockets, per process
    # Per process; below the HTTP connection limit, so REST requests always find room.
    max_connections: int = 800
    queue_size: int = 500  # frames waiting to be sent, per connection
    slow_client: float = 10.0  # seconds a full queue waits for its client before dropping it (resync)
    keepalive: float = 15.0  # an SSE comment, a WebSocket ping; an unanswered ping closes the socket
    token_check: float = 5.0  # seconds between checks that a live connection's token is still valid
    typing_interval: timedelta = timedelta(seconds=2)  # per user and conversation


@attrs.frozen
class Settings:
    profile: str
    data_dir: Path
    database_url: str
    kafka_bootstrap: str | None
    s3: S3Settings | None
    token_lifetime: timedelta
    upload_lifetime: timedelta
    chunk_size: int
    public_url: str | None
    connector_failures: ConnectorFailures
    cors_origins: tuple[str, ...]
    argon2_time_cost: int
    argon2_memory_kib: int
    log_level: str
    worker_metrics_port: int | None = None
    kafka_fetch_max_wait_ms: int = 10
    login_max_failures_per_user_and_address: int = 5
    login_max_failures_per_address: int = 20
    login_max_failures_per_user: int = 100
    login_window: timedelta = timedelta(minutes=15)
    quota_open_uploads: int = 20
    quota_open_upload_bytes: int = 10 * 1024**3
    quota_conversations_per_hour: int = 60
    trusted_proxies: tuple[str, ...] = ()
    token_cache: timedelta = timedelta(seconds=5)
    outbox_relay_linger: timedelta = timedelta(milliseconds=10)
    deliver_while_routing: bool = True
    # Not read from the environment: the defaults are what a deployment gets; tests may set others.
    delivery_retry: RetryPolicy = RetryPolicy()
    redrive_after: timedelta = timedelta(seconds=120)  # a message unfinished this long is routed again
    http: HttpSettings = HttpSettings()
    events: EventsSettings = EventsSettings()
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings)
    channels: ChannelSettings = attrs.field(factory=ChannelSettings)
    webhooks: WebhookSettings = WebhookSettings()

    @property
    def distributed(self) -> bool:
        return self.profile == DISTRIBUTED


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    reader = EnvReader(env)
    profile = reader.choice("CHAT4ALL_PROFILE", (EMBEDDED, DISTRIBUTED), EMBEDDED)
    data_dir = Path(reader.text("CHAT4ALL_DATA_DIR", str(default_data_dir()))).expanduser()
    distributed = profile == DISTRIBUTED
    embedded_database = f"sqlite+aiosqlite:///{data_dir / 'chat4all.db'}"
    database_url = reader.text("CHAT4ALL_DATABASE_URL", None if distributed else embedded_database)
    if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")):
        raise SettingsError("CHAT4ALL_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+psycopg://")
    chunk_size = reader.integer("CHAT4ALL_CHUNK_SIZE", 8 * 1024 * 1024, minimum=1024, maximum=64 * 1024 * 1024)
    public_url = env.get("CHAT4ALL_PUBLIC_URL") or None
    if public_url:
        reader.url("CHAT4ALL_PUBLIC_URL", None)
    http = load_http_settings(reader)
    return Settings(
        profile=profile,
        data_dir=data_dir,
        database_url=database_url,
        kafka_bootstrap=reader.text("CHAT4ALL_KAFKA_BOOTSTRAP", None) if distributed else None,
        s3=load_s3_settings(reader, chunk_size) if distributed else None,
        chunk_size=chunk_size,
        public_url=public_url.rstrip("/") if public_url else None,
        **accounts_and_quotas(reader),
        **pipeline(reader),
        cors_origins=tuple(origin for origin in reader.text("CHAT4ALL_CORS_ORIGINS", "").split(",") if origin),
        log_level=reader.choice("CHAT4ALL_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        trusted_proxies=tuple(
            proxy.strip() for proxy in reader.text("CHAT4ALL_TRUSTED_PROXIES", "").split(",") if proxy.strip()
        ),
        http=http,
        events=load_events_settings(reader, http),
        kafka=load_kafka_settings(reader),
        channels=load_channel_settings(reader),
        webhooks=load_webhook_settings(reader),
    )


def load_s3_settings(reader: EnvReader, chunk_size: int) -> S3Settings:
    if chunk_size < MIN_PART_SIZE:
        raise SettingsError("CHAT4ALL_CHUNK_SIZE must be at least 5 MiB with S3 storage (S3's minimum part size)")
    endpoint = reader.url("CHAT4ALL_S3_ENDPOINT", None)
    return S3Settings(
        endpoint_url=endpoint,
        bucket=reader.text("CHAT4ALL_S3_BUCKET", None),
        access_key=reader.text("CHAT4ALL_S3_ACCESS_KEY", None),
        secret_key=reader.text("CHAT4ALL_S3_SECRET_KEY", None),
        region=reader.text("CHAT4ALL_S3_REGION", "us-east-1"),
        public_endpoint_url=reader.url("CHAT4ALL_S3_PUBLIC_ENDPOINT", endpoint),
        copy_ahead=reader.choice("CHAT4ALL_S3_COPY_AHEAD", ("true", "false"), "true") == "true",
    )


def accounts_and_quotas(reader: EnvReader) -> dict[str, Any]:
    return {
        "token_lifetime": timedelta(seconds=reader.integer("CHAT4ALL_TOKEN_TTL_SECONDS", 3600, minimum=60)),
        "token_cache": timedelta(seconds=reader.integer("CHAT4ALL_TOKEN_CACHE_SECONDS", 5, minimum=0, maximum=300)),
        "upload_lifetime": timedelta(seconds=reader.integer("CHAT4ALL_UPLOAD_TTL_SECONDS", 86400, minimum=60)),
        "argon2_time_cost": reader.integer("CHAT4ALL_ARGON2_TIME_COST", 3, minimum=1),
        "argon2_memory_kib": reader.integer("CHAT4ALL_ARGON2_MEMORY_KIB", 64 * 1024, minimum=8 * 1024),
        **login_limits(reader),
        "login_window": timedelta(seconds=reader.integer("CHAT4ALL_LOGIN_WINDOW_SECONDS", 900, minimum=1)),
        "quota_open_uploads": reader.integer("CHAT4ALL_QUOTA_OPEN_UPLOADS", 20, minimum=1),
        "quota_open_upload_bytes": reader.integer("CHAT4ALL_QUOTA_OPEN_UPLOAD_BYTES", 10 * 1024**3, minimum=1),
        "quota_conversations_per_hour": reader.integer("CHAT4ALL_QUOTA_CONVERSATIONS_PER_HOUR", 60, minimum=1),
    }


def pipeline(reader: EnvReader) -> dict[str, Any]:
    """Routing, delivery and the outbox relay."""
    return {
        "connector_failures": load_connector_failures(reader),
        "worker_metrics_port": reader.integer("CHAT4ALL_WORKER_METRICS_PORT", 0, minimum=0, maximum=65535) or None,
        "kafka_fetch_max_wait_ms": reader.integer("CHAT4ALL_KAFKA_FETCH_MAX_WAIT_MS", 10, minimum=1, maximum=10_000),
        "outbox_relay_linger": timedelta(
            milliseconds=reader.integer("CHAT4ALL_OUTBOX_RELAY_LINGER_MS", 10, minimum=0, maximum=1000)
        ),
        "deliver_while_routing": reader.choice("CHAT4ALL_DELIVER_WHILE_ROUTING", ("true", "false"), "true") == "true",
    }


def load_events_settings(reader: EnvReader, http: HttpSettings) -> EventsSettings:
    def seconds(name: str, default: int) -> int:
        return reader.integer(f"CHAT4ALL_EVENTS_{name}_SECONDS", default, minimum=1, maximum=600)

    events = EventsSettings(
        retention=timedelta(days=reader.integer("CHAT4ALL_EVENTS_RETENTION_DAYS", 7, minimum=1, maximum=3650)),
        max_connections_per_user=reader.integer("CHAT4ALL_EVENTS_MAX_CONNECTIONS_PER_USER", 10, minimum=1),
        # By default four fifths of the HTTP connection limit (800 of 1000).
        max_connections=reader.integer(
            "CHAT4ALL_EVENTS_MAX_CONNECTIONS", max(1, http.max_connections * 4 // 5), minimum=1
        ),
        queue_size=reader.integer("CHAT4ALL_EVENTS_QUEUE_SIZE", 500, minimum=1, maximum=100_000),
        slow_client=seconds("SLOW_CLIENT", 10),
        keepalive=seconds("KEEPALIVE", 15),
        token_check=seconds("TOKEN_CHECK", 5),
        typing_interval=timedelta(
            milliseconds=reader.integer("CHAT4ALL_EVENTS_TYPING_INTERVAL_MS", 2000, minimum=100, maximum=60_000)
        ),
    )
    if events.max_connections >= http.max_connections > 1:
        raise SettingsError(
            f"CHAT4ALL_EVENTS_MAX_CONNECTIONS ({events.max_connections}) must be below "
            f"CHAT4ALL_HTTP_MAX_CONNECTIONS ({http.max_connections}), so REST requests always find room"
        )
    return events


def load_http_settings(reader: EnvReader) -> HttpSettings:
    allowed = [host.strip().lower() for host in reader.text("CHAT4ALL_ALLOWED_HOSTS", "").split(",") if host.strip()]
    for host in allowed:
        if host != "*" and not _HOST_NAME.fullmatch(host):
            raise SettingsError(
                f"CHAT4ALL_ALLOWED_HOSTS must list host names or addresses (no port, no scheme) or *, got {host!r}"
            )
    metrics_token = reader.text("CHAT4ALL_METRICS_TOKEN", "") or None
    if metrics_token is not None and len(metrics_token) < 16:
        raise SettingsError("CHAT4ALL_METRICS_TOKEN must be at least 16 characters")
    return HttpSettings(
        header_timeout=reader.integer("CHAT4ALL_HTTP_HEADER_TIMEOUT_SECONDS", 10, minimum=1, maximum=600),
        body_timeout=reader.integer("CHAT4ALL_HTTP_BODY_TIMEOUT_SECONDS", 30, minimum=1, maximum=3600),
        keep_alive_timeout=reader.integer("CHAT4ALL_HTTP_KEEP_ALIVE_SECONDS", 5, minimum=1, maximum=600),
        max_connections=reader.integer("CHAT4ALL_HTTP_MAX_CONNECTIONS", 1000, minimum=1, maximum=1_000_000),
        allowed_hosts=tuple(host.strip("[]") for host in allowed) or None,
        metrics_token=metrics_token,
        metrics_port=reader.integer("CHAT4ALL_METRICS_PORT", 0, minimum=0, maximum=65535) or None,
        metrics_address=reader.text("CHAT4ALL_METRICS_ADDRESS", "127.0.0.1"),
    )


def login_limits(reader: EnvReader) -> dict[str, int]:
    per_pair = reader.integer("CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS", 5, minimum=1)
    per_user = reader.integer("CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER", 100, minimum=1)
    if per_user < per_pair:
        # The username's ceiling would then be what locks a user out, from every address.
        raise SettingsError(
            f"CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER ({per_user}) must be at least "
            f"CHAT4ALL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS ({per_pair})"
        )
    return {
        "login_max_failures_per_user_and_address": per_pair,
        "login_max_failures_per_address": reader.integer("CHAT4ALL_LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1),
        "login_max_failures_per_user": per_user,
    }
