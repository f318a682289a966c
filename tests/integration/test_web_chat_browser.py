"""The web chat at `/`, in Debian's Chromium against `chat4all serve --demo` (embedded profile), as
two people use it: alice and bob, each in a browser context of their own, at desktop and at phone
width (360 px). Live messages without a reload, ticks that turn to read, and the network lost and
back with nothing missed and nothing shown twice; the 30 MB upload that a reload interrupts is in
test_web_chat_upload_browser.py. The screenshots in docs/screenshots come from here."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse
from uuid import uuid4

import httpx
import pytest
from playwright.async_api import expect

from tests.integration.browser import browser  # noqa: F401 - fixture
from tests.integration.web_chat import VIEWPORTS, ChatUser, EventRelay, demo_hub, wait_for

pytestmark = pytest.mark.services
EACH_WIDTH = pytest.mark.parametrize("width", list(VIEWPORTS))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with demo_hub(tmp_path_factory.mktemp("web-chat")) as running:
        yield running


async def test_the_page_comes_from_the_hub_alone_and_keeps_the_token_out_of_urls(hub, browser):
    async with httpx.AsyncClient(base_url=hub.url) as client:
        page, docs = await client.get("/"), await client.get("/docs")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in policy and "default-src 'none'" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None, "no inline script"
    assert "script-src 'self'" in docs.headers["content-security-policy"]  # still its own

    requested: list[str] = []
    sockets: list[str] = []

    async def record(route) -> None:
        requested.append(route.request.url)
        await route.continue_()

    alice = await ChatUser.log_in(browser, hub, "alice", VIEWPORTS["desktop"])
    alice.page.on("websocket", lambda socket: sockets.append(socket.url))
    await alice.page.reload()
    await wait_for(lambda: sockets)
    await expect(alice.page.locator("#connection")).to_have_text("")
    assert set(sockets) == {hub.url.replace("http", "ws") + "/v1/events/ws"}, "the token goes in a frame, not the URL"
    await alice.context.route("**/*", record)
    await alice.page.reload()
    await wait_for(lambda: any("/v1/conversations" in url for url in requested))
    assert requested and all(urlparse(url).netloc == urlparse(hub.url).netloc for url in requested), requested
    assert await alice.page.evaluate("localStorage.length") == 0, "no token in localStorage"

    await alice.page.get_by_role("button", name="Log out").click()
    await expect(alice.page.get_by_role("button", name="Log in")).to_be_visible()
    assert await alice.page.evaluate("sessionStorage.length") == 0, "logging out forgets the token"
    await alice.close()


async def keyboard_log_in(browser, hub, name: str, viewport: dict) -> ChatUser:
    """Logs in with the keyboard alone: the page puts the focus on Username."""
    context = await browser.new_context(viewport=viewport)
    user = ChatUser(name, context, await context.new_page())
    await user.page.goto(hub.url + "/")
    await user.page.keyboard.type(name)
    await user.page.keyboard.press("Tab")
    await user.page.keyboard.type("chat4all-demo")
    await user.page.keyboard.press("Enter")
    await user.page.get_by_role("button", name="Log out").wait_for()
    return user


@EACH_WIDTH
async def test_bob_sees_alices_message_live_and_her_tick_turns_to_read(hub, browser, width):
    tag = uuid4().hex[:6]
    alice = await ChatUser.log_in(browser, hub, "alice", VIEWPORTS[width])
    relay = await alice.relay_events()
    bob = await keyboard_log_in(browser, hub, "bob", VIEWPORTS[width])
    await alice.start_conversation("bob")
    asked = alice.requests()
    first = f"Olá, Bob! ({tag})"
    sent_at = time.monotonic()
    await alice.send(first)
    # bob's list shows it, unread, without a reload; alice's tick is not read yet
    await expect(bob.conversation("alice")).to_contain_text(first, timeout=1000)
    await expect(bob.conversation("alice").locator(".unread")).to_have_text("1")
    tick = alice.message(first).locator(".tick")
    await expect(tick).to_have_attribute("data-status", "delivered", timeout=2000)
    assert time.monotonic() - sent_at < 2.0, "delivered as the channels' outcomes come"

    await bob.conversation("alice").focus()
    await bob.page.keyboard.press("Enter")
    await expect(bob.message(first)).to_be_visible()
    await expect(tick).to_have_attribute("data-status", "read", timeout=5000)
    await expect(tick).to_have_attribute("aria-label", "read")

    second = f"Are you there? ({tag})"
    started = time.monotonic()
    await alice.send(second)
    await expect(bob.message(second)).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0

    await bob.page.get_by_label("Message", exact=True).press_sequentially("Sim")
    await expect(alice.page.locator("#typing")).to_have_text("bob is typing…", timeout=3000)
    await bob.page.keyboard.type(f", here! ({tag})")
    await bob.page.keyboard.press("Enter")
    await expect(alice.message(f"Sim, here! ({tag})")).to_be_visible(timeout=1000)
    await expect(alice.page.locator("#typing")).to_have_text("")
    await expect(bob.message(f"Sim, here! ({tag})").locator(".tick")).to_have_attribute("data-status", "read")

    if hub.profile == "embedded":
        await (alice if width == "desktop" else bob).screenshot(f"web-chat-{width}.png")

    await a_late_delivered_leaves_the_tick_read(alice, bob, relay, first)
    assert asks_about_messages(asked) == [], "the ticks move on the `message.status` events alone"
    await alice.close()
    await bob.close()


async def test_a_message_a_channel_refuses_shows_why_from_its_events(browser, tmp_path):
    with demo_hub(tmp_path, CHAT4ALL_CONNECTOR_FAILURES="whatsapp=permanent") as refusing:
        alice = await ChatUser.log_in(browser, refusing, "alice", VIEWPORTS["desktop"])
        await alice.start_conversation("bob")
        asked = alice.requests()
        sent_at = time.monotonic()
        await alice.send("Hello over every channel")
        sent = alice.message("Hello over every channel")
        await expect(sent.locator(".tick")).to_have_attribute("data-status", "failed", timeout=2000)
        assert time.monotonic() - sent_at < 2.0
        why = "not delivered on whatsapp: WhatsApp refused the message (injected permanent failure)"
        await expect(sent.get_by_role("alert")).to_have_text(why)
        assert asks_about_messages(asked) == []

        await alice.page.reload()  # the history page says which channel failed (why: GET /v1/messages/{id})
        await alice.open("bob")
        await expect(sent.locator(".tick")).to_have_attribute("aria-label", "failed")
        await expect(sent.get_by_role("alert")).to_have_text("not delivered on whatsapp")
        await alice.close()


@EACH_WIDTH
async def test_network_lost_and_back_loses_nothing_and_shows_nothing_twice(hub, browser, width):
    tag = uuid4().hex[:6]
    alice = await ChatUser.log_in(browser, hub, "alice", VIEWPORTS[width])
    bob = await ChatUser.log_in(browser, hub, "bob", VIEWPORTS[width])
    await alice.start_conversation("bob")
    await bob.open("alice")

    await bob.context.set_offline(True)
    await expect(bob.page.locator("#connection")).to_contain_text("offline", timeout=5000)
    while_away = [f"while you were away {n} ({tag})" for n in range(3)]
    for text in while_away:
        await alice.send(text)
    from_bob = f"written offline ({tag})"
    await bob.send(from_bob)
    await expect(bob.message(from_bob).locator(".tick")).to_have_attribute("aria-label", "waiting for the network")
    await asyncio.sleep(1)
    await expect(bob.message(while_away[0])).to_have_count(0)

    await bob.context.set_offline(False)
    for text in while_away:
        await expect(bob.message(text)).to_have_count(1, timeout=10000)
    await expect(alice.message(from_bob)).to_have_count(1, timeout=10000)
    await expect(bob.page.locator("#connection")).to_have_text("")
    await asyncio.sleep(1.5)  # anything shown twice would be there by now
    for user in (alice, bob):
        ids = await user.log().locator(".message").evaluate_all("found => found.map(each => each.dataset.id)")
        assert len(ids) == len(set(ids))
        for text in [*while_away, from_bob]:
            await expect(user.message(text)).to_have_count(1)
    await alice.close()
    await bob.close()


async def test_a_group_by_usernames_pages_back_through_its_history_and_can_be_left(hub, browser):
    tag = uuid4().hex[:6]
    alice = await ChatUser.log_in(browser, hub, "alice", VIEWPORTS["desktop"])
    await alice.start_conversation("bob", "carol", group_name=f"Falcon {tag}")
    await expect(alice.page.locator("#thread-title")).to_have_text(f"Falcon {tag}")
    conversation = await alice.page.evaluate("document.querySelector('#conversation-list [aria-current=true]').dataset.id")
    me = await alice.page.evaluate("JSON.parse(sessionStorage.getItem('chat4all.session')).userId")
    async with httpx.AsyncClient(base_url=hub.url, headers={"Authorization": f"Bearer {await alice.token()}"}) as client:
        for n in range(45):  # more than a page (30)
            sent = await client.post("/v1/messages", json={
                "message_id": str(uuid4()), "conversation_id": conversation, "from": me, "channels": ["all"],
                "payload": {"type": "text", "text": f"note {n:02d} ({tag})"}})
            assert sent.status_code == 200, sent.text
    await alice.page.reload()
    await alice.open(f"Falcon {tag}")
    await expect(alice.message(f"note 44 ({tag})")).to_be_visible()
    await expect(alice.message(f"note 00 ({tag})")).to_have_count(0)
    await alice.log().evaluate("log => { log.scrollTop = 0; }")
    await expect(alice.message(f"note 00 ({tag})")).to_have_count(1)
    await expect(alice.page.locator("#history-state")).to_have_text("Start of the conversation")
    assert await alice.log().locator(".message").count() == 45

    await alice.page.get_by_role("button", name="Leave group").click()
    await expect(alice.conversation(f"Falcon {tag}")).to_have_count(0)
    await alice.page.reload()
    await alice.page.get_by_role("button", name="Log out").wait_for()
    await expect(alice.conversation(f"Falcon {tag}")).to_have_count(0)
    await alice.close()


async def a_late_delivered_leaves_the_tick_read(alice: ChatUser, bob: ChatUser, relay: EventRelay, text: str) -> None:
    """A late `delivered` (a redelivered event) does not take the read tick back; a typing notice
    slipped in after it shows that the page has handled it."""
    message_id = await alice.message(text).get_attribute("data-id")
    conversation = await alice.page.evaluate("document.querySelector('#conversation-list [aria-current=true]').dataset.id")
    relay.slip_in("message.status", {
        "message_id": message_id, "conversation_id": conversation, "status": "delivered", "read_by_all_at": None,
        "channel": {"name": "whatsapp", "status": "delivered", "detail": None}, "receipt": None})
    bob_id = await bob.page.evaluate("JSON.parse(sessionStorage.getItem('chat4all.session')).userId")
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    relay.slip_in_notice({"type": "typing", "data": {"conversation_id": conversation, "user_id": bob_id, "until": soon}})
    await expect(alice.page.locator("#typing")).to_have_text("bob is typing…")
    await expect(alice.message(text).locator(".tick")).to_have_attribute("data-status", "read")


def asks_about_messages(requests: list[tuple[str, str]]) -> list[str]:
    return [path for method, path in requests if method == "GET" and path.startswith("/v1/messages/")]

