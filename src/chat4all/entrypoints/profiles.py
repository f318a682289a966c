"""The adapters of each profile, made on first use: part of the composition root (`bootstrap`).

embedded: SQLite, files on local disk, the in-process bus. distributed: PostgreSQL (with psycopg
directly on the hot paths: the API's intake and relay, the worker's batches and send ledger),
S3-compatible object storage and Kafka. An adapter given as an override is never made, nor is
anything only it needed; what is made registers its readiness check and its start and stop hooks.
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

import attrs

from chat4all.adapters.caching import ExpiringCache
from chat4all.adapters.connectors import mock_connectors
from chat4all.adapters.metrics import PrometheusMetrics
from chat4all.adapters.security import Argon2PasswordHasher, OpaqueTokenIssuer
from chat4all.adapters.system import RandomIds, SystemClock
from chat4all.entrypoints.hub import Adapters, Check, Hook
from chat4all.entrypoints.settings import Settings

LIFECYCLE = ("checks", "on_start", "on_stop")
ADAPTER_NAMES = tuple(field.name for field in attrs.fields(Adapters) if field.name not in LIFECYCLE)
# Adapters that write the database the unit of work reaches. A build given a `uow` of its own is
# given the first ones too, and runs without the others (the use cases then write through the
# uow): the profile's would write another database.
GIVEN_WITH_UOW = ("outbox_reader", "connectors")
NONE_WITH_UOW = ("intake", "message_batches", "events", "webhooks")


class Parts:
    """Adapters every profile makes alike; a profile adds its own, and its lifecycle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.checks: dict[str, Check] = {}
        self.on_start: list[Hook] = []
        self.on_stop: list[Hook] = []

    def hasher(self) -> Argon2PasswordHasher:
        settings = self.settings
        return Argon2PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=2
        )

    def tokens(self) -> OpaqueTokenIssuer:
        return OpaqueTokenIssuer()

    def clock(self) -> SystemClock:
        return SystemClock()

    def ids(self) -> RandomIds:
        return RandomIds()

    def metrics(self) -> PrometheusMetrics:
        return PrometheusMetrics()

    def caches(self) -> type[ExpiringCache]:
        return ExpiringCache

    def sleep(self) -> Any:
        return asyncio.sleep

    def intake(self) -> Any:
        return None

    def message_batches(self) -> Any:
        return None

    def bus(self) -> Any:
        return None

    def notifier(self) -> Any:
        return None

    def events(self) -> Any:
        return None

    def webhooks(self) -> Any:
        return None


class Embedded(Parts):
    """One process: SQLite, files on local disk, and an in-process bus."""

    @cached_property
    def engine(self) -> Any:
        from chat4all.adapters.sql.engine import check_database, create_engine

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.settings.database_url)
        self.checks["database"] = lambda: check_database(engine)
        self.on_stop.append(engine.dispose)
        return engine

    def uow(self) -> Any:
        from chat4all.adapters.sql.unit_of_work import SqlUnitOfWorkFactory

        return SqlUnitOfWorkFactory(self.engine)

    def storage(self) -> Any:
        from chat4all.adapters.storage.local import LocalFileStorage

        storage = LocalFileStorage(self.settings.data_dir / "files")
        self.checks["storage"] = storage.check
        return storage

    @cached_property
    def the_bus(self) -> Any:
        from chat4all.adapters.bus import InProcessEventBus

        bus = InProcessEventBus()
        self.on_start.append(bus.start)
        self.on_stop.append(bus.stop)
        return bus

    def bus(self) -> Any:
        return self.the_bus

    def publisher(self) -> Any:
        return self.the_bus

    @cached_property
    def the_notifier(self) -> Any:
        from chat4all.adapters.notifier import InProcessEventNotifier

        return InProcessEventNotifier()

    def notifier(self) -> Any:
        return self.the_notifier

    def events(self) -> Any:
        """The live side wakes its readers on the notifier the writers are given."""
        from chat4all.entrypoints.recipient import embedded_event_adapters

        return embedded_event_adapters(self.engine, self.the_notifier)

    def outbox_reader(self) -> Any:
        from chat4all.adapters.sql.outbox import SqlOutboxReader

        return SqlOutboxReader(self.engine)

    def webhooks(self) -> Any:
        from chat4all.entrypoints.webhooks import sql_webhook_adapters

        return sql_webhook_adapters(
            self.engine, sending=True, appended=self.the_notifier.watch, allow_private=self.settings.webhooks.allow_private
        )

    def connectors(self) -> Any:
        from chat4all.adapters.sql.ledger import SqlSendLedger

        return mock_connectors(ledger=SqlSendLedger(self.engine), **injected_failures(self.settings))

    def intake(self) -> Any:
        from chat4all.adapters.sql.sqlite.intake import SqliteMessageIntake

        return SqliteMessageIntake(self.engine)


def adapters_of(parts: Parts, overrides: dict[str, Any]) -> Adapters:
    """The profile's adapters, but those given in `overrides` (by name, see ADAPTER_NAMES)."""
    unknown = sorted(set(overrides) - set(ADAPTER_NAMES))
    if unknown:
        raise TypeError(f"no adapter named {', '.join(unknown)}; adapters are {', '.join(ADAPTER_NAMES)}")
    if "uow" in overrides:
        missing = [name for name in GIVEN_WITH_UOW if name not in overrides]
        if missing:
            raise TypeError(f"given a uow of its own, a build needs {' and '.join(missing)} too")
        overrides = {**dict.fromkeys(NONE_WITH_UOW), **overrides}
    made = {name: overrides[name] if name in overrides else getattr(parts, name)() for name in ADAPTER_NAMES}
    return Adapters(**made, checks=parts.checks, on_start=parts.on_start, on_stop=parts.on_stop)


def injected_failures(settings: Settings) -> dict[str, Any]:
    """The mock connectors' options for the failures the settings inject (see `settings_connectors`)."""
    failures = settings.connector_failures
    return {
        "failure_rate": failures.rate,
        "failure_rates": failures.rates,
        "failing_permanently": failures.permanent,
    }
