"""The browser provisioning works: Playwright drives Debian's Chromium (installed by
`scripts/services.sh up`, named by `scripts/services.sh env`), which runs a page's script and
renders it. Browser tests of the hub's pages build on `tests/integration/browser.py`."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.integration.browser import chromium_executable, headless_chromium

pytestmark = pytest.mark.services

PAGE = """<!doctype html><title>smoke</title>
<p id="greeting">rendered</p>
<script>document.getElementById("greeting").textContent += " and scripted";</script>"""


async def test_playwright_drives_debians_chromium():
    assert chromium_executable().startswith("/usr/"), "expected the Debian package's chromium, not a download"
    async with headless_chromium() as browser:
        page = await browser.new_page()
        await page.goto("data:text/html," + urllib.parse.quote(PAGE))
        assert await page.title() == "smoke"
        assert await page.text_content("#greeting") == "rendered and scripted"
        screenshot = await page.screenshot()
        assert screenshot.startswith(b"\x89PNG") and len(screenshot) > 1000
        assert browser.version.split(".")[0].isdigit()
