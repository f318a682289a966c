"""The command-line client end to end: `chat4all serve --demo` in a subprocess, and the client run
as a user runs it (`chat4all login`, `send`, `upload`, `download`, ...), each user with config and
state directories of their own."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.cli_users import Hub, User, wait_ready
from tests.integration.http.profiles import FAST_ARGON2
from tests.ports import low_port

CHUNK_SIZE = 128 * 1024  # small chunks: a 30 MB upload takes 229 requests, time enough to kill it midway
MB = 1000 * 1000


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli-client")
    port = low_port()
    log = workdir / "serve.log"
    env = {
        **os.environ, **FAST_ARGON2, "PYTHONUNBUFFERED": "1",
        "CHAT4ALL_DATA_DIR": str(workdir / "data"),
        "CHAT4ALL_CHUNK_SIZE": str(CHUNK_SIZE),
        "CHAT4ALL_LOG_LEVEL": "DEBUG",  # each stored chunk is logged
    }
    server = subprocess.Popen([sys.executable, "-m", "chat4all.entrypoints.cli", "serve", "--demo", "--port", str(port)],
                              env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", log)
        yield Hub(f"http://127.0.0.1:{port}", log)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def alice(hub, tmp_path) -> User:
    user = User("alice", tmp_path / "alice", hub)
    user.home.mkdir()
    user.login()
    return user


@pytest.fixture
def bob(hub, tmp_path) -> User:
    user = User("bob", tmp_path / "bob", hub)
    user.home.mkdir()
    user.login()
    return user


def random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interrupted_upload(user: User, path: Path, after_chunks: int) -> str:
    """Starts `chat4all upload`, SIGKILLs it once it has reported `after_chunks` chunks sent, waits
    until the server stores no more, and returns the upload's id."""
    process = subprocess.Popen(user.command("upload", str(path), "--parallel", "2"), env=user.env, cwd=user.home,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    file_id, sent = None, 0
    try:
        for line in process.stderr:
            if started := re.match(r"upload (\S+) started", line):
                file_id = started[1]
            sent += line.startswith("chunk ")
            if sent == after_chunks:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert file_id is not None and sent == after_chunks, f"the upload ended before it was killed ({sent} chunks)"
    settled(user, file_id)
    return file_id


def settled(user: User, file_id: str) -> dict:
    """The upload's status once chunks the killed client left in flight are stored (or dropped)."""
    previous = None
    while True:
        status = user.api("GET", f"/v1/files/{file_id}").json()
        if status == previous:
            return status
        previous = status
        time.sleep(0.5)


def test_login_saves_the_token_for_the_owner_only_and_logout_revokes_it(hub, tmp_path):
    carol = User("carol", tmp_path / "carol", hub)
    carol.home.mkdir()
    assert carol.login()["username"] == "carol"
    credentials = carol.home / "config" / "chat4all" / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    token = carol.token()
    assert carol.api("GET", "/v1/users/me").json()["username"] == "carol"
    assert carol.run("logout").stdout.startswith("logged out")
    assert not credentials.exists()
    revoked = httpx.get(hub.url + "/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401


def test_send_to_a_username_then_to_the_conversation_id(alice, bob):
    first = alice.json("send", "bob", "Olá, Bob!")[0]
    conversation = first["conversation_id"]
    second = alice.json("send", conversation, "second", "--channel", "whatsapp")[0]
    assert second["conversation_id"] == conversation and second["status"] == "accepted"
    messages = bob.api("GET", f"/v1/conversations/{conversation}/messages?limit=100").json()["messages"]
    texts = {message["message_id"]: message["payload"]["text"] for message in messages}
    assert texts[first["message_id"]] == "Olá, Bob!" and texts[second["message_id"]] == "second"
    channels = {message["message_id"]: message["channels"] for message in messages}
    assert channels[second["message_id"]] == ["whatsapp"]
    listed = {each["conversation_id"]: each for each in alice.json("conversations")}
    assert listed[conversation]["title"] == "with bob"
    assert f"{conversation}  private" in bob.run("conversations").stdout


def test_an_upload_sent_to_a_user_is_downloaded_by_them_and_verified(alice, bob, tmp_path):
    source = tmp_path / "report.pdf"
    checksum = random_file(source, 3 * MB)
    uploaded = alice.json("upload", str(source), "--to", "bob")[0]
    assert uploaded["checksum"] == checksum and uploaded["message"]["status"] == "accepted"
    file_id = uploaded["file_id"]
    downloaded = bob.json("download", file_id, "-o", str(tmp_path / "got.pdf"))[0]
    assert downloaded["checksum"] == checksum and sha256_of(tmp_path / "got.pdf") == checksum
    # A download cut short resumes from the bytes it holds.
    (tmp_path / f".again.pdf.{file_id}.part").write_bytes(source.read_bytes()[: MB + 17])
    resumed = bob.run("download", file_id, "-o", str(tmp_path / "again.pdf"))
    assert "resuming at" in resumed.stderr and sha256_of(tmp_path / "again.pdf") == checksum
    # Bytes that do not hash to the file's checksum never become the target.
    (tmp_path / f".bad.pdf.{file_id}.part").write_bytes(b"\0" * MB)
    refused = bob.run("download", file_id, "-o", str(tmp_path / "bad.pdf"), check=False)
    assert refused.returncode != 0 and "SHA-256" in refused.stderr
    assert not (tmp_path / "bad.pdf").exists() and not (tmp_path / f".bad.pdf.{file_id}.part").exists()
    assert bob.run("download", file_id, "-o", str(tmp_path / "bad.pdf")).returncode == 0


def test_an_upload_killed_midway_sends_only_the_missing_chunks_when_run_again(hub, alice, tmp_path):
    source = tmp_path / "video.mp4"
    checksum = random_file(source, 30 * MB)
    file_id = interrupted_upload(alice, source, after_chunks=10)
    status = settled(alice, file_id)
    missing, total = len(status["missing_chunks"]), status["total_chunks"]
    assert status["status"] == "pending" and 0 < missing < total - 9
    stored_before = hub.chunks_stored(file_id)
    print(f"killed with {total - missing} of {total} chunks stored")
    assert stored_before == total - missing

    result = alice.json("upload", str(source))[0]

    assert result["file_id"] == file_id and result["checksum"] == checksum
    assert result["chunks_sent"] == missing
    assert hub.chunks_stored(file_id) - stored_before == missing  # counted by the server
    alice.run("download", file_id, "-o", str(tmp_path / "copy.mp4"))
    assert sha256_of(tmp_path / "copy.mp4") == checksum


def test_a_file_changed_between_attempts_is_refused_until_restarted(alice, tmp_path):
    source = tmp_path / "notes.txt"
    random_file(source, 6 * MB)
    first = interrupted_upload(alice, source, after_chunks=3)
    with source.open("ab") as grown:
        grown.write(b"one more line\n")

    refused = alice.run("upload", str(source), check=False)

    assert refused.returncode != 0
    assert refused.stderr.splitlines() == [
        f"error: {source} changed since its upload began (its size differs): "
        "run the same command with --restart to upload it afresh"
    ]
    restarted = alice.json("upload", str(source), "--restart")[0]
    assert restarted["file_id"] != first and restarted["checksum"] == sha256_of(source)


def test_on_a_terminal_the_upload_shows_a_progress_bar_with_rate_and_time_left(alice, tmp_path):
    source = tmp_path / "big.bin"
    random_file(source, 20 * MB)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(alice.command("upload", str(source)), env=alice.env, cwd=alice.home,
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    shown = read_all(controller)
    assert process.wait(timeout=60) == 0
    bar = re.search(r"big\.bin: +\d+%\|.*\| [\d.]+M/[\d.]+M \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s\]", shown)
    assert bar is not None, shown
    assert "100%|" in shown and "uploaded big.bin" in shown


def read_all(controller: int, timeout: float = 60) -> str:
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if not ready:
            continue
        try:
            data = os.read(controller, 65536)
        except OSError:  # the other end closed: the process is done
            break
        if not data:
            break
        output += data
    os.close(controller)
    return output.decode(errors="replace")


def test_through_a_pipe_the_upload_prints_one_line_per_step_and_no_bar(alice, tmp_path):
    source = tmp_path / "piped.bin"
    random_file(source, 2 * MB)
    done = alice.run("upload", str(source))
    steps = done.stderr.splitlines()
    total = -(-2 * MB // CHUNK_SIZE)
    assert "\r" not in done.stderr and "%|" not in done.stderr
    assert re.fullmatch(r"upload \S+ started: 1\.9 MiB in 16 chunks of 128\.0 KiB", steps[0])
    assert sorted(steps[1:]) == sorted(f"chunk {index}/{total} sent" for index in range(1, total + 1))
    assert done.stdout.startswith("uploaded piped.bin (1.9 MiB) as file ") and done.stdout.count("\n") == 1


def test_errors_are_one_line_with_a_non_zero_status(hub, alice, tmp_path):
    dave = User("dave", tmp_path / "dave", hub)
    dave.home.mkdir()
    nowhere = f"http://127.0.0.1:{low_port()}"
    cases = [
        (dave.run("login", "--url", nowhere, "alice", "--password-stdin", stdin="x\n", check=False),
         f"error: cannot reach {nowhere}: "),
        (dave.run("login", "--url", hub.url, "alice", "--password-stdin", stdin="wrong\n", check=False),
         "error: invalid username or password (invalid_credentials)"),
        (dave.run("conversations", check=False), "error: not logged in: run `chat4all login --url URL USERNAME`"),
        (alice.run("download", "9b2f6c1e-0000-4000-8000-000000000000", check=False),
         "error: no such file (file_not_found)"),
    ]
    alice.api("POST", "/auth/logout")
    cases.append((alice.run("send", "bob", "hello?", check=False), "error: the session has expired or was revoked"))
    for done, start in cases:
        assert done.returncode != 0 and done.stderr.startswith(start), done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "run `chat4all login --url URL USERNAME` again" in cases[-1][0].stderr
