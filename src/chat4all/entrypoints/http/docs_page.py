"""The /docs page: Swagger UI served by the hub itself. Litestar's plugin loads Swagger UI from a
CDN and starts it with an inline script, so the page was blank without internet access and could
not have a strict Content-Security-Policy. Here every asset comes from the package
(static/swagger-ui, swagger-ui-dist as published on npm) and the page holds no script of its own."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).parent / "static"
ASSETS = "docs-assets"
# security_headers gives this policy to HTML that sets none of its own (the chat page sets its own).
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class LocalSwaggerUI(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path="/")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        def asset(name: str) -> str:
            return escape(request.app.route_reverse(ASSETS, file_path=f"/{name}"))

        title = escape(str(openapi_schema["info"]["title"]))
        spec_url = escape(self.get_openapi_json_route(request))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{asset("swagger-ui/favicon-32x32.png")}">
<link rel="stylesheet" href="{asset("swagger-ui/swagger-ui.css")}">
<script src="{asset("swagger-ui/swagger-ui-bundle.js")}" defer></script>
<script src="{asset("swagger-init.js")}" defer></script>
</head>
<body><div id="swagger-ui" data-spec-url="{spec_url}"></div></body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path="/assets",
                directories=[STATIC],
                name=ASSETS,
                cache_control=CacheControlHeader(max_age=3600),
                include_in_schema=False,
            )
        )
