"""A 30 MB upload in the web chat, in Debian's Chromium against `chat4all serve --demo` (embedded
profile), at desktop and at phone width: a reload interrupts it, it resumes without sending again
what the server has, and bob downloads the same bytes (the same SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from uuid import uuid4

import httpx
import pytest
from playwright.async_api import expect

from tests.integration.browser import browser  # noqa: F401 - fixture
from tests.integration.web_chat import VIEWPORTS, ChatUser, attach, demo_hub, wait_for

pytestmark = pytest.mark.services
EACH_WIDTH = pytest.mark.parametrize("width", list(VIEWPORTS))
MB = 1000 * 1000


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with demo_hub(tmp_path_factory.mktemp("web-chat-upload")) as running:
        yield running


@EACH_WIDTH
async def test_an_upload_resumes_after_a_reload_and_bob_downloads_the_same_bytes(hub, browser, width, tmp_path):
    alice = await ChatUser.log_in(browser, hub, "alice", VIEWPORTS[width])
    bob = await ChatUser.log_in(browser, hub, "bob", VIEWPORTS[width])
    await alice.start_conversation("bob")
    path = tmp_path / f"holiday-{width}-{uuid4().hex[:6]}.bin"
    path.write_bytes(os.urandom(30 * MB))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    async def slowly(route):  # chunks take a while, so the reload comes midway
        await asyncio.sleep(0.3)
        try:
            await route.continue_()
        except Exception:  # noqa: BLE001 - the reload cancelled it
            pass

    await alice.page.route("**/v1/files/upload?*", slowly)
    await attach(alice, path)
    status = alice.page.locator(".upload-status")
    await expect(status).to_contain_text("MB/s", timeout=10000)
    await expect(status).to_contain_text("left")
    file_id = await alice.page.evaluate(
        "name => Object.keys(localStorage).filter(k => k.startsWith('chat4all.upload.'))"
        ".map(k => JSON.parse(localStorage.getItem(k))).find(u => u.filename === name).file_id",
        path.name,
    )
    await wait_for(lambda: len(set(hub.chunks_stored(file_id))) >= 6)
    assert await alice.page.get_by_label(f"Upload of {path.name}").evaluate("bar => bar.value") > 0

    await alice.page.unroute("**/v1/files/upload?*")
    await alice.page.reload()
    await alice.open("bob")
    await expect(alice.page.get_by_text(f"{path.name} (30.0 MB) was interrupted")).to_be_visible()
    await asyncio.sleep(0.5)  # chunks the reload cut off are done with on the server
    stored_before = hub.chunks_stored(file_id)
    token = await alice.token()
    async with httpx.AsyncClient() as client:
        upload = (await client.get(f"{hub.url}/v1/files/{file_id}", headers={"Authorization": f"Bearer {token}"})).json()
    assert 0 < len(upload["missing_chunks"]) < upload["total_chunks"] == 29

    await attach(alice, path)  # picked again: it resumes
    await expect(alice.message(path.name)).to_be_visible(timeout=60000)
    resent = hub.chunks_stored(file_id)[len(stored_before):]
    assert sorted(resent) == upload["missing_chunks"], "only the missing chunks are sent again"
    assert sorted(set(hub.chunks_stored(file_id))) == list(range(29))

    await bob.open("alice")
    async with bob.page.expect_download() as downloading:
        await bob.message(path.name).get_by_role("button", name=f"Download {path.name} (30.0 MB)").click()
    download = await downloading.value
    assert download.suggested_filename == path.name
    saved = tmp_path / "bob-got-it"
    await download.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == digest
    await alice.close()
    await bob.close()
