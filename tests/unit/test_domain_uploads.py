from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chat4all.domain.errors import Conflict, Forbidden, Gone, InvalidInput, TooLarge
from chat4all.domain.uploads import (
    MAX_FILE_SIZE,
    MAX_FILENAME_LENGTH,
    ChunkLayout,
    Upload,
    UploadStatus,
    validate_checksum,
    validate_file_size,
    validate_filename,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
GiB = 1024**3

FEWER = settings(max_examples=50)
file_sizes = st.integers(1, MAX_FILE_SIZE)
chunk_sizes = st.integers(1, 64 * 1024 * 1024)


def upload(file_size: int, chunk_size: int, received: set[int] | None = None) -> Upload:
    return Upload(
        id=UUID(int=1),
        owner_id=UUID(int=2),
        filename="a.bin",
        file_size=file_size,
        content_type="application/octet-stream",
        chunk_size=chunk_size,
        status=UploadStatus.PENDING,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        received_chunks=set(received or ()),
    )


# --- chunk arithmetic ------------------------------------------------------------------------


@given(file_size=file_sizes, chunk_size=chunk_sizes)
def test_chunks_cover_the_file_without_a_spare_chunk(file_size, chunk_size):
    layout = ChunkLayout(file_size, chunk_size)
    total = layout.total_chunks
    assert total * chunk_size >= file_size > (total - 1) * chunk_size
    last = layout.expected_size(total - 1)
    assert 1 <= last <= chunk_size
    assert (total - 1) * chunk_size + last == file_size


@FEWER
@given(file_size=st.integers(1, 5000), chunk_size=st.integers(1, 700))
def test_chunk_sizes_sum_to_the_file_size(file_size, chunk_size):
    assume(file_size / chunk_size <= 1000)
    layout = ChunkLayout(file_size, chunk_size)
    sizes = [layout.expected_size(index) for index in range(layout.total_chunks)]
    assert sum(sizes) == file_size
    assert all(size == chunk_size for size in sizes[:-1])


@FEWER
@given(data=st.data(), file_size=file_sizes, chunk_size=chunk_sizes)
def test_every_chunk_but_the_last_is_full(data, file_size, chunk_size):
    layout = ChunkLayout(file_size, chunk_size)
    assume(layout.total_chunks > 1)
    index = data.draw(st.integers(0, layout.total_chunks - 2))
    assert layout.expected_size(index) == chunk_size


@FEWER
@given(data=st.data(), file_size=file_sizes, chunk_size=chunk_sizes)
def test_out_of_range_chunk_index_is_invalid(data, file_size, chunk_size):
    layout = ChunkLayout(file_size, chunk_size)
    index = data.draw(st.integers(max_value=-1) | st.integers(min_value=layout.total_chunks))
    with pytest.raises(InvalidInput) as raised:
        layout.expected_size(index)
    assert raised.value.code == "invalid_chunk_id"


def test_chunk_with_the_wrong_size_is_rejected():
    pending = upload(10, 4)
    pending.check_chunk(0, 4)
    pending.check_chunk(2, 2)
    for index, size in [(0, 3), (0, 5), (2, 4), (2, 1)]:
        with pytest.raises(InvalidInput) as raised:
            pending.check_chunk(index, size)
        assert raised.value.code == "invalid_chunk_size"


# --- resumption ------------------------------------------------------------------------------


@st.composite
def partial_uploads(draw):
    chunk_size = draw(st.integers(1, 16))
    file_size = draw(st.integers(1, 200 * chunk_size))
    total = ChunkLayout(file_size, chunk_size).total_chunks
    received = draw(st.sets(st.integers(0, total - 1), max_size=total))
    return upload(file_size, chunk_size, received), received, total


@FEWER
@given(partial=partial_uploads())
def test_missing_chunks_are_exactly_those_not_received_in_order(partial):
    pending, received, total = partial
    assert pending.missing_chunks() == sorted(set(range(total)) - received)


@FEWER
@given(partial=partial_uploads(), data=st.data())
def test_next_missing_chunk_resumes_after_the_last_sent_and_wraps_around(partial, data):
    pending, received, total = partial
    after = data.draw(st.integers(-1, total + 1))
    missing = sorted(set(range(total)) - received)
    later = [index for index in missing if index > after]
    expected = later[0] if later else (missing[0] if missing else None)
    assert pending.next_missing_chunk(after) == expected
    assert pending.next_missing_chunk() == (missing[0] if missing else None)


# --- lifecycle -------------------------------------------------------------------------------


def test_upload_expires_at_its_deadline_not_before():
    pending = upload(10, 4)
    assert not pending.is_expired_at(pending.expires_at - timedelta(microseconds=1))
    assert pending.is_expired_at(pending.expires_at)
    with pytest.raises(Gone):
        pending.require_open(pending.expires_at)


def test_completed_upload_never_expires_and_is_closed():
    done = upload(10, 4)
    done.complete("0" * 64, NOW)
    assert not done.is_expired_at(done.expires_at + timedelta(days=30))
    with pytest.raises(Conflict):
        done.require_open(NOW)


def test_only_the_owner_may_change_an_upload():
    pending = upload(10, 4)
    pending.require_owner(UUID(int=2))
    with pytest.raises(Forbidden):
        pending.require_owner(UUID(int=3))


# --- validation ------------------------------------------------------------------------------


def test_file_of_exactly_2_gib_is_accepted():
    assert validate_file_size(2 * GiB) == MAX_FILE_SIZE


@FEWER
@given(st.integers(MAX_FILE_SIZE + 1, 10 * MAX_FILE_SIZE))
def test_file_over_2_gib_is_too_large(size):
    with pytest.raises(TooLarge) as raised:
        validate_file_size(size)
    assert raised.value.code == "file_too_large"


@FEWER
@given(st.integers(max_value=0))
def test_empty_or_negative_file_size_is_invalid(size):
    with pytest.raises(InvalidInput):
        validate_file_size(size)


safe_characters = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/\\")
acceptable_names = st.text(safe_characters, min_size=1, max_size=MAX_FILENAME_LENGTH).filter(
    lambda name: name.strip() and name not in (".", "..")
)


@given(acceptable_names)
def test_ordinary_filenames_are_accepted(name):
    assert validate_filename(name) == name


@given(
    prefix=st.text(safe_characters, max_size=20),
    bad=st.sampled_from("/\\") | st.characters(categories=("Cc",)),
    suffix=st.text(safe_characters, max_size=20),
)
def test_filenames_with_path_separators_or_control_characters_are_rejected(prefix, bad, suffix):
    name = prefix + bad + suffix
    assert bad in "/\\" or unicodedata.category(bad) == "Cc"
    with pytest.raises(InvalidInput) as raised:
        validate_filename(name)
    assert "filename" in raised.value.field_errors


@pytest.mark.parametrize("name", ["", "   ", ".", "..", "x" * (MAX_FILENAME_LENGTH + 1), "../etc/passwd", "a\nb", "a\x85b"])
def test_unacceptable_filenames(name):
    with pytest.raises(InvalidInput):
        validate_filename(name)


def test_filename_of_exactly_255_characters_is_accepted():
    assert validate_filename("x" * MAX_FILENAME_LENGTH)


@FEWER
@given(st.binary(min_size=32, max_size=32))
def test_checksum_is_normalised_to_lowercase_hex(digest):
    hex_digest = digest.hex()
    assert validate_checksum(f"  {hex_digest.upper()} ") == hex_digest


@pytest.mark.parametrize("checksum", ["", "0" * 63, "0" * 65, "g" * 64, "sha256:" + "0" * 64])
def test_malformed_checksums_are_rejected(checksum):
    with pytest.raises(InvalidInput):
        validate_checksum(checksum)
