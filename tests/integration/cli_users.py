"""Users of the command-line client against a demo hub: each runs `chat4all` in a subprocess with
config and state directories of their own; the hub reads its stored chunks from the server's log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

DEMO_PASSWORD = "chat4all-demo"


class Hub:
    def __init__(self, url: str, log: Path):
        self.url = url
        self.log = log

    def chunks_stored(self, file_id: str) -> int:
        """Chunk PATCHes the server stored for this upload, from its DEBUG log."""
        return len(re.findall(rf"upload {file_id}: chunk \d+ stored", self.log.read_text()))


class User:
    def __init__(self, name: str, home: Path, hub: Hub):
        self.name, self.home, self.hub = name, home, hub
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "chat4all.entrypoints.cli", *args]

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), input=stdin, capture_output=True, text=True, env=self.env,
                              cwd=self.home, timeout=300)
        if check:
            assert done.returncode == 0, f"chat4all {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str) -> list[dict]:
        return [json.loads(line) for line in self.run(*args, "--json").stdout.splitlines()]

    def login(self) -> dict:
        return json.loads(self.run("login", "--url", self.hub.url, self.name, "--password-stdin", "--json",
                                   stdin=DEMO_PASSWORD + "\n").stdout)

    def token(self) -> str:
        return json.loads((self.home / "config" / "chat4all" / "credentials.json").read_text())["access_token"]

    def api(self, method: str, path: str) -> httpx.Response:
        return httpx.request(method, self.hub.url + path, headers={"Authorization": f"Bearer {self.token()}"})


def wait_ready(url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server never became ready:\n" + log.read_text()[-3000:])
