"""Route dependencies resolved one after another, not in a task group per request.

Litestar resolves the dependencies of a route level by level, and the dependencies of one level
concurrently, in an anyio task group: a task each, a cancel scope, the group's exit. `POST
/v1/messages` has two at its first level (the token lookup and the send use case), so every send
paid for a task group, which was a tenth of a busy API process's CPU (py-spy, 1,000 WebSocket
clients and 200 messages per second). Ours are the use cases (values made once) and the
caller's user (one lookup, usually cached): nothing to overlap. Each level is split into levels
of one, kept in Litestar's order (a dependency still comes after those it needs), so a request
resolves them in turn on its own task; what each receives is unchanged.
"""

from __future__ import annotations

from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute, WebSocketRoute


class DependenciesInTurn(ReceiveRoutePlugin):
    """A plugin: every route's dependencies, levels of one, as each route is registered."""

    def receive_route(self, route: BaseRoute) -> None:
        for model in _kwargs_models(route):
            model.dependency_batches = [
                {dependency} for level in model.dependency_batches for dependency in sorted(level, key=_key)
            ]


def _kwargs_models(route: BaseRoute) -> list:  # litestar._kwargs.KwargsModel: not exported
    if isinstance(route, HTTPRoute):
        return [model for _handler, model in route.route_handler_map.values()]
    if isinstance(route, WebSocketRoute):
        return [route.handler_parameter_model] if route.handler_parameter_model is not None else []
    return []


def _key(dependency: object) -> str:
    return dependency.key  # type: ignore[attr-defined]
