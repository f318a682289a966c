"""What the web chat's browser tests share: `chat4all serve --demo` in a subprocess, and a user
logged in to the page in a browser context of their own (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.integration.cli_users import wait_ready
from tests.integration.http.profiles import FAST_ARGON2, Processes, distributed_env
from tests.ports import low_port

DEMO_PASSWORD = "chat4all-demo"
CHUNK_SIZE = 1024 * 1024  # 30 MB make 29 chunks: enough to interrupt an upload midway
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}


class Hub:
    def __init__(self, url: str, log: Path, profile: str = "embedded"):
        self.url = url
        self.log = log
        self.profile = profile

    def chunks_stored(self, file_id: str) -> list[int]:
        """The chunk numbers the server stored for this upload, one per stored PATCH, from its DEBUG log."""
        return [int(n) for n in re.findall(rf"upload {file_id}: chunk (\d+) stored", self.log.read_text())]


@contextmanager
def demo_hub(workdir: Path, **env: str) -> Iterator[Hub]:
    port = low_port()
    log = workdir / "serve.log"
    environment = {
        **os.environ, **FAST_ARGON2, "PYTHONUNBUFFERED": "1",
        "CHAT4ALL_DATA_DIR": str(workdir / "data"),
        "CHAT4ALL_CHUNK_SIZE": str(CHUNK_SIZE),
        "CHAT4ALL_LOG_LEVEL": "DEBUG",  # each stored chunk is logged
        **env,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "chat4all.entrypoints.cli", "serve", "--demo", "--port", str(port)],
        env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, log)
        yield Hub(url, log)
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def distributed_demo_hub(workdir: Path) -> Iterator[Hub]:
    """`chat4all serve --demo` and `chat4all worker` on a fresh PostgreSQL database, S3 bucket and
    Kafka topics of their own (S3 takes chunks of 5 MiB at least: the default 8 MiB here)."""
    processes = Processes({**distributed_env("webchat"), "CHAT4ALL_LOG_LEVEL": "DEBUG"}, workdir)
    processes.cli("migrate")
    port = low_port()
    log = processes.start("api", "serve", "--demo", "--port", str(port))
    worker_log = processes.start("worker", "worker")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, log)
        deadline = time.monotonic() + 90
        while "worker started" not in worker_log.read_text():  # else the first deliveries wait for it
            assert time.monotonic() < deadline, worker_log.read_text()[-3000:]
            time.sleep(0.2)
        yield Hub(url, log, "distributed")
    finally:
        processes.stop()




class ChatUser:
    """One person in a browser context of their own: the page, and what they do on it."""

    def __init__(self, name: str, context, page):
        self.name, self.context, self.page = name, context, page
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", lambda message: self._console(message))

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(message.text)

    @classmethod
    async def log_in(cls, browser, hub: Hub, name: str, viewport: dict) -> ChatUser:
        context = await browser.new_context(viewport=viewport, accept_downloads=True)
        user = cls(name, context, await context.new_page())
        await user.page.goto(hub.url + "/")
        await user.page.get_by_label("Username").fill(name)
        await user.page.get_by_label("Password").fill(DEMO_PASSWORD)
        await user.page.get_by_role("button", name="Log in").click()
        await user.page.get_by_role("button", name="Log out").wait_for()
        return user

    def log(self):
        return self.page.get_by_role("log")

    def message(self, text: str):
        return self.log().locator(".message", has_text=text)

    def conversation(self, title: str):
        return self.page.get_by_role("navigation", name="Conversations").locator("li button", has_text=title)

    async def start_conversation(self, *usernames: str, group_name: str = "") -> None:
        await self.page.get_by_label("New conversation with").fill(", ".join(usernames))
        await self.page.get_by_label("Group name (optional)").fill(group_name)
        await self.page.get_by_role("button", name="Start conversation").click()
        await self.page.get_by_role("log").wait_for()

    async def open(self, title: str) -> None:
        await self.conversation(title).click()
        await self.log().wait_for()

    async def send(self, text: str) -> None:
        box = self.page.get_by_label("Message", exact=True)
        await box.fill(text)
        await box.press("Enter")

    def requests(self) -> list[tuple[str, str]]:
        """From now on, every request the page makes, as (method, path)."""
        made: list[tuple[str, str]] = []
        self.page.on("request", lambda request: made.append((request.method, httpx.URL(request.url).path)))
        return made

    async def relay_events(self) -> EventRelay:
        """The page's event socket from now on (the page reloads), through a relay that can slip in frames."""
        relay = EventRelay()
        await self.context.route_web_socket("**/v1/events/ws", relay.connect)
        await self.page.reload()
        await self.page.get_by_role("button", name="Log out").wait_for()
        return relay

    async def token(self) -> str:
        return await self.page.evaluate("JSON.parse(sessionStorage.getItem('chat4all.session')).token")

    async def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / name))

    async def close(self) -> None:
        await self.context.close()
        assert not self.problems, f"{self.name}'s page: {self.problems}"


class EventRelay:
    """Passes every frame between the page and the hub, and can hand the page an event the hub
    never sent (numbered after the last one it did, so the page takes it as new)."""

    def __init__(self) -> None:
        self.page_side = None
        self.last_seq = 0

    def connect(self, page_side) -> None:
        self.page_side = page_side
        hub_side = page_side.connect_to_server()
        hub_side.on_message(lambda frame: self._to_page(frame))

    def _to_page(self, frame: str | bytes) -> None:
        seq = json.loads(frame).get("seq")
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq, seq)
        self.page_side.send(frame)

    def slip_in(self, event_type: str, data: dict) -> None:
        self.last_seq += 1
        self.slip_in_notice({"seq": self.last_seq, "type": event_type, "data": data})

    def slip_in_notice(self, frame: dict) -> None:
        self.page_side.send(json.dumps(frame))


async def attach(user: ChatUser, path) -> None:
    async with user.page.expect_file_chooser() as choosing:
        await user.page.get_by_role("button", name="Attach file").click()
    await (await choosing.value).set_files(path)


async def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
