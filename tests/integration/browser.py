"""The headless browser of the integration tests: Debian's `chromium`, which `scripts/services.sh up`
installs, driven by Playwright. Playwright's own browser builds are never downloaded."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

# Root (CI) cannot run Chromium's sandbox; the pages opened are the tests' own.
LAUNCH_ARGS = ["--no-sandbox"]


def chromium_executable() -> str:
    """The browser `scripts/services.sh env` names in CHAT4ALL_TEST_CHROMIUM; fails, never skips."""
    path = os.environ.get("CHAT4ALL_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not (path and os.access(path, os.X_OK)):
        pytest.fail(
            f"no Chromium at {path or 'CHAT4ALL_TEST_CHROMIUM (unset)'}: run `bash scripts/services.sh up` "
            'as root (it installs Debian\'s chromium package), then eval "$(bash scripts/services.sh env)"',
            pytrace=False,
        )
    return path


@asynccontextmanager
async def headless_chromium() -> AsyncIterator:
    """A Playwright `Browser` on Debian's Chromium, closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_executable(), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browser():
    async with headless_chromium() as running:
        yield running
