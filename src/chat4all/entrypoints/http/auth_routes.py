from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from chat4all.entrypoints.http import schemas, views
from chat4all.entrypoints.http.dependencies import HubDep, UserDep, bearer_secret, provide_user


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/token", status_code=HTTP_200_OK, summary="Log in: trade username and password for a bearer token")
    async def issue_token(self, data: JSONBody[schemas.TokenRequest], request: Request, hub: HubDep) -> schemas.TokenResponse:
        # The peer address of the connection. Behind a reverse proxy, start the server with
        # CHAT4ALL_TRUSTED_PROXIES so the proxy's forwarded header is used; it is never trusted by default.
        address = request.client.host if request.client else None
        issued = await hub.authenticate.execute(data.username, data.password, address)
        return schemas.TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)

    @post("/logout", status_code=HTTP_204_NO_CONTENT, dependencies={"user": Provide(provide_user)}, summary="Revoke the caller's token")
    async def logout(self, request: Request, user: UserDep, hub: HubDep) -> None:
        await hub.logout.execute(bearer_secret(request))


class UserController(Controller):
    path = "/v1/users"
    tags = ["users"]
    dependencies = {"user": Provide(provide_user)}

    @get("/me", summary="The authenticated user")
    async def me(self, user: UserDep) -> schemas.UserOut:
        return views.user_out(user)

    @get("/", summary="Find users (exact username match when given)")
    async def find(
        self, user: UserDep, hub: HubDep, username: FromQuery[str | None] = None, limit: FromQuery[int] = 50, offset: FromQuery[int] = 0
    ) -> schemas.UserList:
        found = await hub.find_users.execute(username=username, limit=max(1, min(limit, 100)), offset=max(offset, 0))
        return schemas.UserList([views.user_out(each) for each in found])
