from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from chat4all.domain.errors import InvalidInput

BODY_NOT_DECODABLE = "invalid_body"


class GuardedRequest(Request):
    """The request class of the app: the one place where a JSON or form body is decoded, for every route.

    msgspec raises UnicodeDecodeError (not its own DecodeError) for invalid UTF-8 inside a string,
    and RecursionError for JSON nested deeper than its stack; Litestar turns neither into a client
    error, so both were 500s. Every way a body can fail to decode is bad input, said the same way."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise body_not_decodable("it is not valid UTF-8") from None
        except RecursionError:
            raise body_not_decodable("the JSON is nested too deeply") from None
        except (SerializationException, ValueError) as error:
            raise body_not_decodable(f"it is not valid JSON ({_first_line(error)})") from None

    async def form(self) -> Any:
        # Litestar decodes a multipart form's plain (non-file) fields as UTF-8 and lets the error out.
        try:
            return await super().form()
        except UnicodeDecodeError:
            raise body_not_decodable("a form field is not valid UTF-8") from None


def body_not_decodable(why: str) -> InvalidInput:
    return InvalidInput(f"the request body cannot be read: {why}", code=BODY_NOT_DECODABLE, field_errors={"body": [why]})


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or ["malformed"])[0][:200]
