"""Property: whatever a client does to an upload - chunks in any order, repeated, of the wrong
size, out of range, missing (a truncated file), a wrong or a corrupted-data checksum, completing
twice, after expiry, completing while the database fails to record it - no upload ever becomes
`completed` unless its stored bytes hash to the declared checksum, a stored file never changes,
and every answer is the one a simple model of the protocol predicts.

The use cases run on the in-memory adapters, with the in-memory storage and with LocalFileStorage
on a real directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chat4all.adapters.storage.local import LocalFileStorage
from chat4all.domain.errors import Conflict, DomainError, Gone, InvalidInput
from chat4all.domain.uploads import Upload, UploadStatus
from tests.unit.conftest import CHUNK_SIZE, build_hub


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Put:
    index: int
    kind: str  # right | corrupt | short | long

    def bytes_for(self, data: bytes) -> bytes:
        right = data[self.index * CHUNK_SIZE : (self.index + 1) * CHUNK_SIZE] if self.index >= 0 else b"x"
        if self.kind == "corrupt":
            return bytes(byte ^ 0x5A for byte in right)
        if self.kind == "short":
            return right[:-1]
        if self.kind == "long":
            return right + b"!"
        return right


@dataclass(frozen=True)
class Complete:
    kind: str  # right | wrong | truncated | as_stored | malformed
    recorded: bool = True  # False: the database fails to commit the completion


@dataclass(frozen=True)
class Expire:
    pass


@st.composite
def scenarios(draw) -> tuple[bytes, list]:
    data = draw(st.binary(min_size=1, max_size=6 * CHUNK_SIZE + 3))
    total = math.ceil(len(data) / CHUNK_SIZE)
    put = st.builds(Put, index=st.integers(-1, total), kind=st.sampled_from(["right", "right", "corrupt", "short", "long"]))
    complete = st.builds(
        Complete,
        kind=st.sampled_from(["right", "wrong", "truncated", "as_stored", "malformed"]),
        recorded=st.sampled_from([True, True, False]),
    )
    steps = st.one_of(*[put] * 6, *[complete] * 3, st.just(Expire()))
    return data, draw(st.lists(steps, max_size=3 * total + 6))


class Model:
    """What the protocol promises, in a few lines."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.total = math.ceil(len(data) / CHUNK_SIZE)
        self.chunks: dict[int, bytes] = {}
        self.completed: bytes | None = None
        # The file a completion stored, recorded or not: it stands.
        self.stored_file: bytes | None = None
        self.expired = False

    def expected_size(self, index: int) -> int:
        return min(CHUNK_SIZE, len(self.data) - index * CHUNK_SIZE)

    def put(self, index: int, chunk: bytes) -> type[DomainError] | None:
        if self.completed is not None:
            return Conflict
        if self.expired:
            return Gone
        if not 0 <= index < self.total or len(chunk) != self.expected_size(index):
            return InvalidInput
        self.chunks[index] = chunk
        return None

    def stored(self) -> bytes | None:
        if any(index not in self.chunks for index in range(self.total)):
            return None
        return b"".join(self.chunks[index] for index in range(self.total))

    def checksum_for(self, kind: str) -> str:
        return {
            "right": sha256(self.data),
            "wrong": "0" * 64,
            "truncated": sha256(self.data[:-1]),
            "as_stored": sha256(self.stored() or b""),
            "malformed": "not-a-checksum",
        }[kind]

    def complete(self, checksum: str, recorded: bool = True) -> type[Exception] | None:
        if checksum == "not-a-checksum":
            return InvalidInput
        if self.completed is not None:
            return Conflict
        if self.expired:
            return Gone
        stored = self.stored()
        if stored is None or sha256(stored) != checksum:
            return InvalidInput
        if self.stored_file is not None and sha256(self.stored_file) != checksum:
            return Conflict
        self.stored_file = stored
        if not recorded:
            return ConnectionError
        self.completed = stored
        return None


async def outcome(call) -> type[Exception] | None:
    try:
        await call
    except (DomainError, ConnectionError) as error:
        return type(error)
    return None


class CommitFails:
    """A unit-of-work factory whose commits fail, as when the database restarts mid-request."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self):
        uow = self.inner()

        async def commit():
            raise ConnectionError("database went away")

        uow.commit = commit
        return uow


async def play(hub, data: bytes, steps: list) -> None:
    owner = await hub.user("owner")
    upload: Upload = await hub.initiate_upload.execute(owner.id, "f.bin", len(data), None)
    model = Model(data)
    for step in steps:
        if isinstance(step, Expire):
            hub.clock.set(upload.expires_at)
            model.expired = model.completed is None
            continue
        if isinstance(step, Put):
            chunk = step.bytes_for(data)
            expected = model.put(step.index, chunk)
            actual = await outcome(hub.upload_chunk.execute(owner.id, upload.id, step.index, chunk))
        else:
            checksum = model.checksum_for(step.kind)
            expected = model.complete(checksum, step.recorded)
            complete = hub.complete_upload if step.recorded else attrs.evolve(hub.complete_upload, uow=CommitFails(hub.uow))
            actual = await outcome(complete.execute(owner.id, upload.id, checksum))
        assert actual is expected, (step, actual, expected)
        await check_invariants(hub, upload.id, model)


async def check_invariants(hub, upload_id, model: Model) -> None:
    current = await hub.upload(upload_id)
    if current.status is UploadStatus.COMPLETED:
        stored = b"".join([block async for block in hub.storage.read_file(upload_id)])
        # the one property that matters: a completed file is exactly the bytes its checksum declares
        assert sha256(stored) == current.checksum
        assert len(stored) == current.file_size
        assert stored == model.completed
    else:
        assert model.completed is None
        if model.stored_file is not None:
            assert b"".join([block async for block in hub.storage.read_file(upload_id)]) == model.stored_file
        if not model.expired:
            view = await hub.view_upload.execute(current.owner_id, upload_id)
            assert view.missing_chunks == [index for index in range(model.total) if index not in model.chunks]


# Stored and verified, not recorded; a chunk re-sent; completed as now stored: the first file stands.
FILE_STORED_THEN_CHUNK_RESENT = (
    b"01234567",
    [Put(0, "right"), Put(1, "right"), Complete("right", recorded=False), Put(1, "corrupt"), Complete("as_stored")],
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@PROPERTY
@given(scenario=scenarios())
@example(scenario=FILE_STORED_THEN_CHUNK_RESENT)
def test_in_memory_storage_never_completes_bytes_that_miss_the_checksum(scenario):
    data, steps = scenario
    asyncio.run(play(build_hub(), data, steps))


@settings(PROPERTY, max_examples=40)
@given(scenario=scenarios())
@example(scenario=FILE_STORED_THEN_CHUNK_RESENT)
def test_local_file_storage_never_completes_bytes_that_miss_the_checksum(scenario):
    data, steps = scenario
    with tempfile.TemporaryDirectory() as directory:
        hub = attrs.evolve(build_hub(), storage=LocalFileStorage(Path(directory)))
        asyncio.run(play(hub, data, steps))


@pytest.mark.parametrize("kind", ["short", "long", "corrupt"])
async def test_a_bad_chunk_can_be_replaced_and_the_file_then_completes(hub, kind):
    owner = await hub.user("owner")
    data = b"0123456789"
    upload = await hub.initiate_upload.execute(owner.id, "f.bin", len(data), None)
    bad = Put(1, kind).bytes_for(data)
    outcome_of_bad = await outcome(hub.upload_chunk.execute(owner.id, upload.id, 1, bad))
    assert outcome_of_bad is (None if kind == "corrupt" else InvalidInput)
    await hub.send_chunks(owner, upload, data, [0, 2])
    if kind == "corrupt":
        with pytest.raises(InvalidInput):
            await hub.complete_upload.execute(owner.id, upload.id, sha256(data))
    await hub.send_chunks(owner, upload, data, [1])
    done = await hub.complete_upload.execute(owner.id, upload.id, sha256(data))
    assert done.status is UploadStatus.COMPLETED and hub.storage.files[upload.id] == data
