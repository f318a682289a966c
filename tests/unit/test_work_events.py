"""The events that move a message: one encoding, stored as the outbox, the bus and Kafka carry it,
and one table from kind to handler that every transport feeds."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest

from chat4all.adapters.bus import InProcessEventBus
from chat4all.application.dispatch import Dispatcher
from chat4all.application.work import (
    DeadLettered,
    DeliveryRequested,
    MalformedEvent,
    RouteRequested,
    decode,
    encode,
    every_stream,
)
from chat4all.domain.errors import InvalidInput

MESSAGE = UUID(int=7)
CONVERSATION = UUID(int=3)


@pytest.mark.parametrize(
    ("event", "stored"),
    [
        (RouteRequested(MESSAGE), ("message_processing", {"message_id": str(MESSAGE)})),
        (
            DeliveryRequested(MESSAGE, "whatsapp"),
            ("whatsapp_outgoing", {"message_id": str(MESSAGE), "channel": "whatsapp"}),
        ),
        (
            DeadLettered(MESSAGE, "instagram", "number does not exist", 1),
            (
                "delivery_dead_letters",
                {"message_id": str(MESSAGE), "channel": "instagram", "reason": "number does not exist", "attempts": 1},
            ),
        ),
    ],
)
def test_each_kind_is_stored_as_before_and_read_back_as_itself(event, stored) -> None:
    # The stored form is what outbox rows and Kafka topics of running deployments already hold.
    encoded = encode(event, CONVERSATION)
    assert (encoded.topic, encoded.key, encoded.payload) == (*stored[:1], str(CONVERSATION), stored[1])
    assert decode(encoded.topic, encoded.payload) == event


@pytest.mark.parametrize(
    ("stream", "payload"),
    [
        ("message_processing", {"nope": 1}),
        ("message_processing", {"message_id": "not-a-uuid"}),
        ("message_processing", ["not", "a", "mapping"]),
        ("whatsapp_outgoing", {"message_id": str(MESSAGE)}),
        ("whatsapp_outgoing", {"message_id": str(MESSAGE), "channel": 5}),
        ("delivery_dead_letters", {"message_id": str(MESSAGE), "channel": "x", "reason": "r", "attempts": "1"}),
        ("no_such_stream", {"message_id": str(MESSAGE)}),
    ],
)
def test_a_payload_that_is_no_event_of_its_stream_is_rejected_as_invalid_input(stream, payload) -> None:
    with pytest.raises(MalformedEvent) as raised:
        decode(stream, payload)
    assert isinstance(raised.value, InvalidInput)  # a rejection: transports skip it, nobody retries it


def test_the_hub_publishes_to_the_routing_stream_one_stream_per_channel_and_the_dead_letters() -> None:
    assert every_stream(("whatsapp", "instagram")) == [
        "message_processing",
        "whatsapp_outgoing",
        "instagram_outgoing",
        "delivery_dead_letters",
    ]


async def test_the_dispatcher_runs_the_handler_of_each_kind_once_per_batch_and_consumes_only_what_it_handles() -> None:
    routed: list[list[RouteRequested]] = []
    delivered: list[list[DeliveryRequested]] = []

    async def route(events):
        routed.append(list(events))

    async def deliver(events):
        delivered.append(list(events))

    dispatcher = Dispatcher({RouteRequested: route, DeliveryRequested: deliver}, ("whatsapp", "instagram"))
    assert dispatcher.streams() == ["message_processing", "whatsapp_outgoing", "instagram_outgoing"]

    first, second = uuid4(), uuid4()
    await dispatcher.handle("message_processing", [{"message_id": str(first)}, {"message_id": str(second)}])
    await dispatcher.handle("instagram_outgoing", [{"message_id": str(first), "channel": "instagram"}])
    assert routed == [[RouteRequested(first), RouteRequested(second)]]
    assert delivered == [[DeliveryRequested(first, "instagram")]]


async def test_the_in_process_bus_carries_encoded_events_to_the_dispatcher_in_order() -> None:
    seen: list[UUID] = []

    async def route(events):
        seen.extend(event.message_id for event in events)

    dispatcher = Dispatcher({RouteRequested: route}, ())
    bus = InProcessEventBus()
    for stream in dispatcher.streams():
        bus.subscribe(stream, lambda payloads, stream=stream: dispatcher.handle(stream, payloads))
    ids = [uuid4() for _ in range(5)]
    await bus.start()
    try:
        await bus.publish_batch([encode(RouteRequested(message_id), CONVERSATION) for message_id in ids])
        for _ in range(100):
            if len(seen) == len(ids):
                break
            await asyncio.sleep(0.01)
    finally:
        await bus.stop()
    assert seen == ids
