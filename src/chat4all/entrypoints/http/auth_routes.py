from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from chat4all.application.auth import Authenticate, FindUsers, Logout
from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import PageDep, UserDep, bearer_secret, provide_user
from chat4all.entrypoints.http.openapi_docs import BEARER, errors


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/token",
        status_code=HTTP_200_OK,
        summary="Log in: trade username and password for a bearer token",
        description=(
            "Failed logins are throttled per (username, client address), per client address and, with a much "
            "higher ceiling, per username (429 with Retry-After)."
        ),
        responses=errors(400, 401, 413, 429),
    )
    async def issue_token(
        self, data: JSONBody[schemas.TokenRequest], request: Request, authenticate: NamedDependency[Authenticate]
    ) -> schemas.TokenResponse:
        # The peer address of the connection. Behind a reverse proxy, start the server with
        # CHAT4ALL_TRUSTED_PROXIES so the proxy's forwarded header is used; it is never trusted by default.
        address = request.client.host if request.client else None
        issued = await authenticate.execute(data.username, data.password, address)
        return schemas.TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        dependencies={"user": Provide(provide_user)},
        summary="Revoke the caller's token",
        security=BEARER,
        responses=errors(401),
    )
    async def logout(self, request: Request, user: UserDep, logout: NamedDependency[Logout]) -> None:
        await logout.execute(bearer_secret(request))


class UserController(Controller):
    path = "/v1/users"
    tags = ["users"]
    security = BEARER
    dependencies = {"user": Provide(provide_user)}

    @get("/me", summary="The authenticated user", responses=errors(401))
    async def me(self, user: UserDep) -> schemas.UserOut:
        return views.user_out(user)

    @get("/", summary="Find users (exact username match when given)", responses=errors(400, 401))
    async def find(
        self,
        user: UserDep,
        page: PageDep,
        find_users: NamedDependency[FindUsers],
        username: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> schemas.UserList:
        found = await find_users.execute(username=username, limit=page.limit, offset=page.offset)
        return schemas.UserList([views.user_out(each) for each in found])
