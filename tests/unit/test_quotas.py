"""Per-user quotas: open uploads, bytes announced by open uploads, conversations started per hour."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat4all.domain.conversations import ConversationMetadata, ConversationType
from chat4all.domain.errors import QuotaExceeded
from chat4all.domain.quotas import GIB, OpenUploads, RecentStarts, UserQuotas
from chat4all.domain.uploads import MAX_FILE_SIZE
from tests.unit.conftest import build_hub


def quota_error(raised: pytest.ExceptionInfo[QuotaExceeded], quota: str) -> QuotaExceeded:
    error = raised.value
    assert (error.code, error.quota) == ("quota_exceeded", quota)
    assert error.detail.startswith(f"{quota} quota exceeded")
    return error


async def initiate(hub, owner, size: int = 10):
    return await hub.initiate_upload.execute(owner.id, "file.bin", size, None)


async def start_group(hub, creator, *others):
    return await hub.create_conversation.execute(
        caller=creator.id,
        type=ConversationType.GROUP,
        members=[creator.id, *(other.id for other in others)],
        metadata=ConversationMetadata(),
    )


def test_the_defaults_are_20_open_uploads_10_gib_announced_and_60_conversations_per_hour():
    assert UserQuotas() == UserQuotas(max_open_uploads=20, max_open_upload_bytes=10 * GIB, max_conversations_per_hour=60)


def test_an_upload_fits_up_to_each_limit_exactly():
    quotas = UserQuotas(max_open_uploads=3, max_open_upload_bytes=100)
    quotas.check_new_upload(OpenUploads(2, 60), 40)
    with pytest.raises(QuotaExceeded) as raised:
        quotas.check_new_upload(OpenUploads(3, 0), 1)
    assert quota_error(raised, "open_uploads").retry_after_seconds is None
    with pytest.raises(QuotaExceeded) as raised:
        quotas.check_new_upload(OpenUploads(2, 60), 41)
    assert "60 are announced already and this one adds 41" in quota_error(raised, "open_upload_bytes").detail


async def test_the_21st_open_upload_is_refused_until_one_completes_or_expires(hub):
    alice, bob = await hub.users("alice", "bob")
    for _ in range(19):
        await initiate(hub, alice)
    await hub.uploaded_file(alice)  # completed: not open any more
    await initiate(hub, alice)
    with pytest.raises(QuotaExceeded) as raised:
        await initiate(hub, alice)
    quota_error(raised, "open_uploads")
    assert len(hub.store.uploads) == 21  # nothing stored for the refused one
    await initiate(hub, bob)  # per user
    hub.clock.advance(hub.upload_lifetime)  # expired, even before the sweep marks them so
    await initiate(hub, alice)


async def test_open_uploads_may_announce_10_gib_in_all(hub):
    alice = (await hub.users("alice"))[0]
    for _ in range(5):
        await initiate(hub, alice, MAX_FILE_SIZE)  # 5 x 2 GiB
    with pytest.raises(QuotaExceeded) as raised:
        await initiate(hub, alice, 1)
    quota_error(raised, "open_upload_bytes")


async def test_concurrent_initiations_cannot_open_more_than_the_quota(hub):
    alice = (await hub.users("alice"))[0]
    outcomes = await asyncio.gather(*(initiate(hub, alice) for _ in range(30)), return_exceptions=True)
    assert sum(isinstance(outcome, QuotaExceeded) for outcome in outcomes) == 10
    assert len(hub.store.uploads) == 20


async def test_the_61st_conversation_in_an_hour_waits_until_the_first_is_an_hour_old(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    pair = await hub.conversation(alice, bob)  # started too: one of the 60
    for _ in range(59):
        hub.clock.advance(timedelta(seconds=10))
        await start_group(hub, alice, bob, carol)
    with pytest.raises(QuotaExceeded) as raised:
        await start_group(hub, alice, bob, carol)
    assert quota_error(raised, "conversations_per_hour").retry_after_seconds == 3600 - 590
    # Getting back an existing private conversation starts nothing, so it is not refused.
    again = await hub.create_conversation.execute(
        caller=alice.id, type=ConversationType.PRIVATE, members=[alice.id, bob.id], metadata=ConversationMetadata()
    )
    assert (again.created, again.conversation.id) == (False, pair.id)
    await start_group(hub, bob, alice, carol)  # per user: bob may
    hub.clock.advance(timedelta(seconds=3600 - 590))
    await start_group(hub, alice, bob, carol)


async def test_concurrent_starts_cannot_pass_the_conversation_quota(hub):
    alice, bob, carol = await hub.users("alice", "bob", "carol")
    create = attrs.evolve(hub.create_conversation, quotas=UserQuotas(max_conversations_per_hour=5))
    outcomes = await asyncio.gather(
        *(
            create.execute(
                caller=alice.id, type=ConversationType.GROUP, members=[alice.id, bob.id, carol.id], metadata=ConversationMetadata()
            )
            for _ in range(12)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, QuotaExceeded) for outcome in outcomes) == 7
    assert len(hub.store.conversations) == 5


def test_a_full_conversation_quota_says_when_a_slot_frees():
    quotas = UserQuotas(max_conversations_per_hour=2)
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    quotas.check_new_conversation(RecentStarts(1, now), now)
    with pytest.raises(QuotaExceeded) as raised:
        quotas.check_new_conversation(RecentStarts(2, now - timedelta(minutes=59, seconds=59, milliseconds=500)), now)
    assert raised.value.retry_after_seconds == 1


def test_the_quotas_come_from_settings():
    from chat4all.entrypoints.bootstrap import user_quotas
    from chat4all.entrypoints.settings import SettingsError, load_settings

    assert user_quotas(load_settings({})) == UserQuotas()
    configured = load_settings(
        {
            "CHAT4ALL_QUOTA_OPEN_UPLOADS": "3",
            "CHAT4ALL_QUOTA_OPEN_UPLOAD_BYTES": "1048576",
            "CHAT4ALL_QUOTA_CONVERSATIONS_PER_HOUR": "7",
        }
    )
    assert user_quotas(configured) == UserQuotas(max_open_uploads=3, max_open_upload_bytes=1048576, max_conversations_per_hour=7)
    for name, value in (
        ("CHAT4ALL_QUOTA_OPEN_UPLOADS", "0"),
        ("CHAT4ALL_QUOTA_OPEN_UPLOAD_BYTES", "10GiB"),
        ("CHAT4ALL_QUOTA_CONVERSATIONS_PER_HOUR", "-1"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})


# --- property: any sequence of initiations, completions and waits -------------------------------

LIMITS = UserQuotas(max_open_uploads=3, max_open_upload_bytes=60)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("initiate"), st.integers(1, 40)),
        st.tuples(st.just("complete"), st.integers(0, 5)),
        st.tuples(st.just("wait"), st.sampled_from([60, 3600 * 12, 3600 * 24])),
    ),
    max_size=25,
)


async def play_uploads(sequence) -> None:
    hub = build_hub()
    hub.initiate_upload = attrs.evolve(hub.initiate_upload, quotas=LIMITS)
    alice = await hub.user("alice")
    model: list[tuple[object, int]] = []  # the uploads the model holds open: (upload, size)
    for action, value in sequence:
        now = hub.clock.now()
        model = [(upload, size) for upload, size in model if upload.expires_at > now]
        if action == "wait":
            hub.clock.advance(timedelta(seconds=value))
        elif action == "complete" and model:
            upload, size = model.pop(value % len(model))
            await hub.send_chunks(alice, upload, b"x" * size)
            await hub.complete_upload.execute(alice.id, upload.id, hub.sha256(b"x" * size))
        elif action == "initiate":
            fits = len(model) < LIMITS.max_open_uploads and sum(size for _, size in model) + value <= LIMITS.max_open_upload_bytes
            try:
                model.append((await initiate(hub, alice, value), value))
                assert fits, f"opened beyond the quotas: {model}"
            except QuotaExceeded:
                assert not fits, "refused although it fits"


@settings(max_examples=150, deadline=None)
@given(sequence=steps)
def test_open_uploads_never_exceed_either_quota_and_every_refusal_is_due(sequence):
    asyncio.run(play_uploads(sequence))
