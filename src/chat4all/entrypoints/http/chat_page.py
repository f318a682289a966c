"""The web chat at `/`: one HTML page and its ES modules (static/chat), served as files by every
`chat4all serve`, whatever the profile. The page talks to the same API as any client; it needs no
build step and loads nothing from another origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

CHAT = Path(__file__).parent / "static" / "chat"
CHAT_ASSETS = "/chat"
# No inline script or style, nothing from elsewhere. 'wasm-unsafe-eval' lets the page compile the
# WebAssembly of its SHA-256 (vendor/hash-wasm), and nothing else: no eval of JavaScript. 'self' in
# connect-src covers the page's own ws:// or wss:// origin (CSP level 3); blob: lets a downloaded
# file be saved under its own name.
CHAT_POLICY = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@get("/", include_in_schema=False, sync_to_thread=False)
def chat_page() -> Response[bytes]:
    return Response(
        (CHAT / "index.html").read_bytes(),
        media_type="text/html",
        headers={"content-security-policy": CHAT_POLICY},
    )


def chat_routes() -> list[Any]:
    """The page, and its scripts and styles (revalidated on each load, so an upgraded hub serves the new ones)."""
    return [chat_page, _assets()]


def _assets() -> Router:
    return create_static_files_router(
        path=CHAT_ASSETS,
        directories=[CHAT],
        name="chat-assets",
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
    )
