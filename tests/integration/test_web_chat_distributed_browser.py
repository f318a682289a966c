"""The web chat on the distributed profile (`chat4all serve` and `chat4all worker` on PostgreSQL,
Kafka and S3): the same flows as on the embedded profile, run by importing them here, where the
`hub` fixture is a distributed deployment. A message's ticks come from the worker's deliveries,
its live events from PostgreSQL notifications; a file's chunks go to S3, and bob downloads it
straight from there, by the presigned URL the API hands out."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import urlparse
from uuid import uuid4

import pytest
from playwright.async_api import expect

from tests.integration.browser import browser  # noqa: F401 - fixture
from tests.integration.test_web_chat_browser import (  # noqa: F401 - collected here against this module's hub
    test_bob_sees_alices_message_live_and_her_tick_turns_to_read,
    test_network_lost_and_back_loses_nothing_and_shows_nothing_twice,
)
from tests.integration.web_chat import VIEWPORTS, ChatUser, attach, distributed_demo_hub

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with distributed_demo_hub(tmp_path_factory.mktemp("web-chat-distributed")) as running:
        yield running


async def test_a_file_goes_through_s3_and_bob_downloads_it_by_its_presigned_url(hub, browser, tmp_path):
    alice = await ChatUser.log_in(browser, hub, "alice", VIEWPORTS["desktop"])
    bob = await ChatUser.log_in(browser, hub, "bob", VIEWPORTS["desktop"])
    await alice.start_conversation("bob")
    path = tmp_path / f"report-{uuid4().hex[:6]}.bin"
    path.write_bytes(os.urandom(12 * 1000 * 1000))  # two 8 MiB chunks
    await attach(alice, path)
    await expect(alice.message(path.name)).to_be_visible(timeout=60000)

    await bob.open("alice")
    async with bob.page.expect_download() as downloading:
        await bob.message(path.name).get_by_role("button", name=f"Download {path.name} (12.0 MB)").click()
    download = await downloading.value
    assert urlparse(download.url).netloc != urlparse(hub.url).netloc, "straight from the object store"
    assert download.suggested_filename == path.name
    saved = tmp_path / "bob-got-it"
    await download.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    await alice.close()
    await bob.close()
