from __future__ import annotations

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from chat4all.domain.errors import NotAuthenticated
from chat4all.domain.users import User
from chat4all.entrypoints.bootstrap import Hub

MAX_TOKEN_LENGTH = 512

HubDep = NamedDependency[Hub]
UserDep = NamedDependency[User]


def provide_hub(state: State) -> Hub:
    return state.hub


def bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_TOKEN_LENGTH:
        raise NotAuthenticated("send 'Authorization: Bearer <access_token>'", code="missing_token")
    return secret


async def provide_user(request: Request, hub: HubDep) -> User:
    return await hub.resolve_token.execute(bearer_secret(request))
