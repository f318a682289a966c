"""/docs in a real headless browser (Debian's chromium, driven by Playwright) against a real
`chat4all serve`: Swagger UI renders the API's operations, every request the page makes goes to
the hub itself (a machine without internet access gets the same page), and the page's
Content-Security-Policy lets it run without a single violation."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from tests.integration.http.profiles import FAST_ARGON2, Processes
from tests.ports import low_port

CHROMIUM = "/usr/bin/chromium"
QUIET_CHROMIUM = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("docs")
    processes = Processes({**FAST_ARGON2, "CHAT4ALL_DATA_DIR": str(workdir / "data")}, workdir)
    port = low_port()
    log = processes.start("api", "serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url
    finally:
        processes.stop()


def test_the_docs_page_renders_the_operations_from_the_hub_alone(hub_url):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium is needed (scripts/services.sh installs it)"
    requested: list[str] = []
    left_the_machine: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET_CHROMIUM)
        try:
            context = browser.new_context()

            def only_the_hub(route) -> None:
                url = route.request.url
                requested.append(url)
                if urlparse(url).scheme in ("data", "blob") or urlparse(url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    left_the_machine.append(url)
                    route.abort()

            context.route("**/*", only_the_hub)
            page = context.new_page()
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.goto(f"{hub_url}/docs", wait_until="networkidle")
            page.wait_for_selector(".opblock", timeout=20_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".information-container .title").inner_text()
            page.locator(".opblock-summary", has_text="/v1/messages").first.click()  # an operation opens
            page.wait_for_selector(".opblock.is-open .opblock-body", timeout=10_000)
        finally:
            browser.close()
    assert left_the_machine == []
    assert problems == []
    assert any(url.endswith("swagger-ui-bundle.js") for url in requested) and any("openapi.json" in url for url in requested)
    assert title.startswith("Chat4All")
    normalized = {path.replace("\u200b", "") for path in paths}  # Swagger UI puts zero-width spaces in long paths
    assert {"/auth/token", "/v1/messages", "/v1/files/upload", "/v1/conversations/{conversation_id}/messages"} <= normalized
    assert len(paths) >= 15
