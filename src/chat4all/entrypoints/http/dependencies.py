"""Dependencies the routes share besides the use cases: the caller, the page asked for, the links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import attrs
from litestar import Request
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from chat4all.application.auth import ResolveToken
from chat4all.domain.errors import NotAuthenticated
from chat4all.domain.history import HistoryCursor, PageRequest
from chat4all.domain.paging import MAX_OFFSET, MAX_PAGE, check_page
from chat4all.domain.users import User
from chat4all.entrypoints.http.links import Links

MAX_TOKEN_LENGTH = 512
DEFAULT_PAGE = 50

UserDep = NamedDependency[User]

# The bounds are documented here and checked by domain.paging, for every paged list alike.
PageSize = Annotated[
    int, QueryParameter(description=f"Page size, 1-{MAX_PAGE}", schema_extra={"minimum": 1, "maximum": MAX_PAGE})
]
Offset = Annotated[
    int, QueryParameter(description="Items to skip", schema_extra={"minimum": 0, "maximum": MAX_OFFSET})
]


@attrs.frozen
class Page:
    limit: int
    offset: int


PageDep = NamedDependency[Page]


def provide_page(limit: PageSize = DEFAULT_PAGE, offset: Offset = 0) -> Page:
    check_page(limit, offset)
    return Page(limit, offset)


Cursor = Annotated[
    str | None, QueryParameter(description="A cursor from a page's `before` or `after`", schema_extra={"maxLength": 80})
]
OptionalOffset = Annotated[
    int | None,
    QueryParameter(description="Messages to skip (not with before or after)", schema_extra={"minimum": 0, "maximum": MAX_OFFSET}),
]
HistoryPageDep = NamedDependency[PageRequest]


def provide_history_page(
    limit: PageSize = DEFAULT_PAGE, offset: OptionalOffset = None, before: Cursor = None, after: Cursor = None
) -> PageRequest:
    """A history page: `offset`, or keyset cursors (`before`/`after`), which cost the same at any depth."""
    return PageRequest(
        limit,
        offset,
        None if before is None else HistoryCursor.decode(before, "before"),
        None if after is None else HistoryCursor.decode(after, "after"),
    )


def bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_TOKEN_LENGTH:
        raise NotAuthenticated("send 'Authorization: Bearer <access_token>'", code="missing_token")
    return secret


async def provide_user(request: Request, resolve_token: NamedDependency[ResolveToken]) -> User:
    return await resolve_token.execute(bearer_secret(request))


def links_provider(public_url: str | None) -> Callable[[Request], Links]:
    def provide_links(request: Request) -> Links:
        return Links(public_url or str(request.base_url).rstrip("/"))

    return provide_links
