"""The command-line client's local files: the saved token and the state of an unfinished upload,
and the decision to resume an upload or refuse a file that changed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from chat4all.client.credentials import Credentials, load_credentials, save_credentials
from chat4all.client.errors import FileChanged, NotLoggedIn, SessionExpired
from chat4all.client.paths import Directories, write_private
from chat4all.client.upload_state import LocalFile, StateStore, UploadState, should_resume
from chat4all.entrypoints.env_values import EnvReader
from chat4all.entrypoints.settings_client import load_client_settings

SERVER = "http://127.0.0.1:8000"


@pytest.fixture
def xdg(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def directories(xdg: Path) -> Directories:
    return Directories.under(xdg / "config", xdg / "state")


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def a_file(tmp_path: Path, data: bytes = b"x" * 10) -> LocalFile:
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    return LocalFile.at(path)


def a_state(local: LocalFile, **changes: object) -> UploadState:
    fields = dict(server=SERVER, username="alice", path=str(local.path), size=local.size, mtime_ns=local.mtime_ns,
                  file_id="f-1", chunk_size=4, total_chunks=3)
    return UploadState(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_directories_follow_xdg_and_ignore_relative_values(xdg: Path) -> None:
    home = Path("/home/someone")
    env = {"XDG_CONFIG_HOME": str(xdg / "config"), "XDG_STATE_HOME": str(xdg / "state")}
    found = load_client_settings(EnvReader(env), home)
    assert Directories.under(found.config_home, found.state_home) == Directories(
        xdg / "config" / "chat4all", xdg / "state" / "chat4all"
    )
    unset = load_client_settings(EnvReader({"XDG_CONFIG_HOME": "relative/dir", "XDG_STATE_HOME": ""}), home)
    assert (unset.config_home, unset.state_home) == (home / ".config", home / ".local" / "state")


def test_a_private_file_is_owner_only_from_the_start_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "dir" / "secret.json"
    previous = os.umask(0)
    try:
        write_private(target, "one")
        write_private(target, "two")
    finally:
        os.umask(previous)
    assert target.read_text() == "two"
    assert mode(target) == 0o600 and mode(target.parent) == 0o700
    assert [path.name for path in target.parent.iterdir()] == ["secret.json"]  # no temporary file left


def test_credentials_round_trip_in_the_config_dir_with_mode_0600(xdg: Path, directories: Directories) -> None:
    saved = Credentials(SERVER, "alice", "u-1", "token", time.time() + 3600)
    path = save_credentials(directories, saved)
    assert path == xdg / "config" / "chat4all" / "credentials.json"
    assert mode(path) == 0o600
    assert load_credentials(directories) == saved


def test_no_credentials_or_unreadable_ones_ask_to_log_in(xdg: Path, directories: Directories) -> None:
    with pytest.raises(NotLoggedIn, match="chat4all login"):
        load_credentials(directories)
    write_private(xdg / "config" / "chat4all" / "credentials.json", "{not json")
    with pytest.raises(NotLoggedIn, match="chat4all login"):
        load_credentials(directories)


def test_an_expired_token_asks_to_log_in_again_without_asking_the_server(directories: Directories) -> None:
    save_credentials(directories, Credentials(SERVER, "alice", "u-1", "token", expires_at=1000.0))
    with pytest.raises(SessionExpired, match="chat4all login"):
        load_credentials(directories, now=1000.0)
    assert load_credentials(directories, now=999.0).access_token == "token"


def test_upload_state_round_trips_with_its_digests(tmp_path: Path) -> None:
    local = a_file(tmp_path)
    store = StateStore(tmp_path / "uploads")
    state = a_state(local)
    state.confirm(2, "ab" * 32)
    state.message_id = "m-1"
    store.save(state)
    assert store.load(SERVER, "alice", local) == state
    assert mode(store.path_for(SERVER, "alice", local.path)) == 0o600
    store.remove(state)
    assert store.load(SERVER, "alice", local) is None


def test_the_state_is_kept_apart_per_server_user_and_path(tmp_path: Path) -> None:
    local = a_file(tmp_path)
    store = StateStore(tmp_path / "uploads")
    store.save(a_state(local))
    assert store.load(SERVER, "alice", local) is not None
    assert store.load("http://elsewhere:8000", "alice", local) is None
    assert store.load(SERVER, "bob", local) is None
    other = tmp_path / "other.jpg"
    other.write_bytes(b"x" * 10)
    assert store.load(SERVER, "alice", LocalFile.at(other)) is None


def test_an_unreadable_state_counts_as_none(tmp_path: Path) -> None:
    local = a_file(tmp_path)
    store = StateStore(tmp_path / "uploads")
    store.save(a_state(local))
    path = store.path_for(SERVER, "alice", local.path)
    for broken in ("", "{", json.dumps({"file_id": "f-1"}), "[]"):
        path.write_text(broken)
        assert store.load(SERVER, "alice", local) is None


def test_resume_only_with_a_state_and_without_restart(tmp_path: Path) -> None:
    local = a_file(tmp_path)
    assert should_resume(None, local, restart=False) is False
    assert should_resume(a_state(local), local, restart=False) is True
    assert should_resume(a_state(local), local, restart=True) is False


def test_a_file_whose_size_or_time_changed_is_refused_unless_restarted(tmp_path: Path) -> None:
    local = a_file(tmp_path)
    state = a_state(local)
    local.path.write_bytes(b"x" * 11)
    grown = LocalFile.at(local.path)
    with pytest.raises(FileChanged, match="size differs.*--restart"):
        should_resume(state, grown, restart=False)
    touched = LocalFile(local.path, local.size, local.mtime_ns + 1)
    with pytest.raises(FileChanged, match="modification time differs.*--restart"):
        should_resume(state, touched, restart=False)
    assert should_resume(state, grown, restart=True) is False


def test_a_file_whose_start_reads_back_differently_up_to_a_confirmed_chunk_is_refused(tmp_path: Path) -> None:
    state = a_state(a_file(tmp_path))  # 10 bytes in chunks of 4
    state.confirm(1, "d1")
    state.require_same_start(1, "d1")
    state.require_same_start(0, "anything")  # the server has it, this client never saw it confirmed
    with pytest.raises(FileChanged, match="its first 8 bytes differ.*--restart"):
        state.require_same_start(1, "d2")


def test_chunk_lengths_follow_the_servers_layout(tmp_path: Path) -> None:
    state = a_state(a_file(tmp_path))  # 10 bytes in chunks of 4
    assert [state.chunk_length(index) for index in range(3)] == [4, 4, 2]
