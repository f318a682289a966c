"""The composition root builds each process (embedded, api, worker) from its settings; an adapter
given as an override is used, and the one it replaces is never made."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.application.messaging import SendRequest
from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.domain.messages import MessageStatus, Priority
from chat4all.entrypoints.bootstrap import build
from chat4all.entrypoints.settings import SettingsError, load_settings
from tests.fakes import (
    InMemoryFileStorage,
    InMemoryOutboxReader,
    InMemoryStore,
    InMemoryUnitOfWorkFactory,
    PlainTestHasher,
    RecordingConnector,
)
from tests.unit.test_settings_s3 import DISTRIBUTED


def in_memory(store: InMemoryStore) -> dict:
    return {
        "uow": InMemoryUnitOfWorkFactory(store),
        "storage": InMemoryFileStorage(),
        "outbox_reader": InMemoryOutboxReader(store),
        "connectors": {"whatsapp": RecordingConnector("whatsapp")},
        "hasher": PlainTestHasher(),
    }


async def test_an_embedded_process_on_in_memory_adapters_carries_a_message_to_its_connector(tmp_path) -> None:
    settings = load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path / "data")})
    adapters = in_memory(InMemoryStore())
    hub = build("embedded", settings, **adapters)
    assert not (tmp_path / "data").exists()  # no database nor file storage was made for it
    assert await hub.readiness() == {}

    alice = await hub.register_user.execute("alice", "correct horse battery")
    bob = await hub.register_user.execute("bob", "correct horse battery")
    chat = await hub.create_conversation.execute(
        caller=alice.id, type=ConversationType.PRIVATE, members=[alice.id, bob.id], metadata=ConversationMetadata()
    )
    await hub.start()
    try:
        request = SendRequest(
            hub.adapters.ids.new_id(), chat.conversation.id, alice.id, None, ("whatsapp",), "hi", None, Priority.NORMAL
        )
        sent = await hub.send_message.execute(alice.id, request)
        for _ in range(200):  # outbox relay -> in-process bus -> dispatcher -> routing, delivering on route
            if (await hub.read_messages.get(alice.id, sent.id)).status is MessageStatus.DELIVERED:
                break
            await asyncio.sleep(0.01)
    finally:
        await hub.stop()
    assert adapters["connectors"]["whatsapp"].recipients_of(sent.id) == [bob.id]


def test_an_override_must_name_an_adapter(tmp_path) -> None:
    settings = load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path)})
    with pytest.raises(TypeError, match="no adapter named database"):
        build("embedded", settings, database=object())


def test_a_unit_of_work_of_its_own_comes_with_what_writes_through_it(tmp_path) -> None:
    settings = load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path)})
    store = InMemoryStore()
    with pytest.raises(TypeError, match="outbox_reader and connectors"):
        build("embedded", settings, uow=InMemoryUnitOfWorkFactory(store))
    hub = build("embedded", settings, **in_memory(store))
    # The faster SQL paths would write another database: the use cases write through the given uow.
    assert hub.adapters.intake is None and hub.adapters.message_batches is None


def test_a_role_runs_its_own_profile(tmp_path) -> None:
    with pytest.raises(SettingsError, match="the worker role runs the distributed profile"):
        build("worker", load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path)}))
    with pytest.raises(SettingsError, match="the embedded role runs the embedded profile"):
        build("embedded", load_settings({**DISTRIBUTED, "CHAT4ALL_DATA_DIR": str(tmp_path)}))
    with pytest.raises(ValueError, match="no role 'router'"):
        build("router", load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path)}))


async def test_each_role_handles_its_own_events(tmp_path) -> None:
    embedded = build("embedded", load_settings({"CHAT4ALL_DATA_DIR": str(tmp_path)}), **in_memory(InMemoryStore()))
    distributed = load_settings({**DISTRIBUTED, "CHAT4ALL_DATA_DIR": str(tmp_path)})
    api, worker = build("api", distributed), build("worker", distributed)
    try:
        assert embedded.dispatcher.streams() == ["message_processing", "whatsapp_outgoing", "delivery_dead_letters"]
        assert worker.dispatcher.streams() == ["message_processing", "whatsapp_outgoing", "instagram_outgoing"]
        assert api.dispatcher.streams() == []  # the API only publishes, through its outbox
        assert set(await api.readiness()) == {"database", "storage", "broker"}
    finally:
        await api.stop()
        await worker.stop()
