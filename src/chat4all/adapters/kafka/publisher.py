"""EventPublisher on Kafka: JSON values, the conversation id as key, acknowledged by all in-sync replicas.

Keying by conversation keeps a conversation's events on one partition, so consumers see them
in the order they were published. The idempotent producer keeps that order (and avoids
duplicates) across the producer's own retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from chat4all.application.ports import OutboxEvent

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(dict[str, Any])

# After one of these the idempotent producer's sequence numbers no longer match the broker's
# (seen after a broker restart with batches in flight): every later send to that partition fails
# the same way, for good. Only a new producer (a new producer id) can send again.
BROKEN_PRODUCER = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)


def encode_event(payload: Mapping[str, Any]) -> bytes:
    return _encoder.encode(dict(payload))


def decode_event(raw: bytes) -> dict[str, Any]:
    return _decoder.decode(raw)


class KafkaEventPublisher:
    """Implements the EventPublisher port with one long-lived idempotent producer.

    `start()` connects; if the broker is away it only logs, and every publish retries the
    connection, so an API process can start (and keep events in its outbox) during an outage.
    `topic_prefix` is put before every topic name (see CHAT4ALL_KAFKA_TOPIC_PREFIX).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "chat4all",
        linger_ms: int = 2,
        request_timeout_ms: int = 10_000,
        check_timeout: float = 2.0,
        topic_prefix: str = "",
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self._client_id = client_id
        self._linger_ms = linger_ms
        self._request_timeout_ms = request_timeout_ms
        self._check_timeout = check_timeout
        self._producer: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    async def start(self) -> None:
        self._closed = False
        try:
            await self._ensure_producer()
        except (KafkaError, OSError) as error:
            log.warning(
                "Kafka at %s not reachable yet (%s); will retry on first publish", self.bootstrap_servers, error
            )

    async def stop(self) -> None:
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, topic: str, key: str, payload: Mapping[str, Any]) -> None:
        producer = await self._ensure_producer()
        try:
            delivered = await producer.send(self.topic_prefix + topic, encode_event(payload), key=key.encode("utf-8"))
            await delivered
        except BROKEN_PRODUCER as error:
            await self._replace(producer, error)
            raise

    async def publish_batch(self, events: Sequence[OutboxEvent]) -> None:
        """Hands every event to the producer first (they batch per partition, in order), then waits
        until the broker acknowledged each one; raises if any was not acknowledged."""
        if not events:
            return
        producer = await self._ensure_producer()
        pending = [
            await producer.send(
                self.topic_prefix + event.topic, encode_event(event.payload), key=event.key.encode("utf-8")
            )
            for event in events
        ]
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BROKEN_PRODUCER):
                await self._replace(producer, result)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def check(self) -> None:
        """Readiness: the broker answers a metadata request within a short timeout."""
        producer = await asyncio.wait_for(self._ensure_producer(), self._check_timeout)
        await asyncio.wait_for(producer.client.fetch_all_metadata(), self._check_timeout)

    async def _replace(self, producer: AIOKafkaProducer, error: BaseException) -> None:
        """Drops a producer that cannot send any more; the next publish starts a new one. The
        caller still raises, so its events are sent again (the outbox keeps them, handlers retry)."""
        if self._producer is not producer:
            return  # a concurrent publish already replaced it
        self._producer = None
        log.warning("Kafka producer state lost (%s: %s); starting a new producer", type(error).__name__, error)
        try:
            await asyncio.wait_for(producer.stop(), self._request_timeout_ms / 1000)
        except Exception as stop_error:  # it is being discarded; its pending sends fail with it
            log.debug("stopping the discarded producer failed: %r", stop_error)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        if self._closed:
            raise RuntimeError("publisher is stopped")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=self._linger_ms,
                    request_timeout_ms=self._request_timeout_ms,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer
