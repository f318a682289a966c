from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException


class GuardedRequest(Request):
    """The request class of the app. Decoding JSON nested deeper than the decoder's stack allows
    raises RecursionError (a 500 before); it is bad input like any other malformed body."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException("the JSON body is nested too deeply") from None
