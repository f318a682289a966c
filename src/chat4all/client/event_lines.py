"""Live events as lines for a person: the time, the conversation, and what happened, with names
instead of ids where the client knows them (`--json` prints the events as the server sent them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chat4all.client.api import Hub
from chat4all.client.chat import title_of, usernames
from chat4all.client.credentials import Credentials
from chat4all.client.errors import ClientError
from chat4all.client.output import Output, human_size

REMEMBERED_MESSAGES = 1000  # texts kept to say which message a status is about
QUOTE = 40  # characters of a message quoted in a status line
DIRECTORY_REFRESH = 60.0  # seconds between reloads of the user directory for an unknown id


def printable(text: str) -> str:
    """`text` with control and formatting characters escaped: another user's message must not be
    able to move the cursor, recolour or rewrite the watcher's terminal."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def clock(at: str) -> str:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except (ValueError, AttributeError):
        return "--:--:--"


class EventLines:
    def __init__(self, hub: Hub, me: Credentials, output: Output, monotonic: Callable[[], float] = time.monotonic):
        self._hub, self._me, self._output, self._monotonic = hub, me, output, monotonic
        self._names: dict[str, str] = {me.user_id: me.username}
        self._named_at: float | None = None
        self._titles: dict[str, str] = {}
        self._texts: dict[str, str] = {}

    def show(self, envelope: dict[str, Any]) -> None:
        self._output.result(envelope, "" if self._output.as_json else self.line(envelope))

    def line(self, envelope: dict[str, Any]) -> str:
        data = envelope.get("data") or {}
        describe = DESCRIPTIONS.get(envelope.get("type", ""))
        try:
            what = describe(self, data) if describe else f"{envelope.get('type')}: {data}"  # a newer server's type
        except (KeyError, TypeError, AttributeError):  # a shape this client does not know: shown as it came
            what = f"{envelope.get('type')}: {data}"
        return printable(f"{clock(envelope.get('at', ''))}  [{self.title(data.get('conversation_id'))}]  {what}")

    def title(self, conversation_id: str | None) -> str:
        if conversation_id is None:
            return "-"
        if conversation_id not in self._titles:
            try:
                self.learn(self._hub.call("GET", f"/v1/conversations/{conversation_id}"))
            except ClientError:  # left since, or the network is down: the id will do
                return conversation_id
        return self._titles[conversation_id]

    def learn(self, conversation: dict[str, Any]) -> None:
        for member in conversation["members"]:
            self.name(member)
        self._titles[conversation["conversation_id"]] = title_of(conversation, self._me, self._names)

    def name(self, user_id: str) -> str:
        now = self._monotonic()
        if user_id not in self._names and (self._named_at is None or now - self._named_at >= DIRECTORY_REFRESH):
            self._named_at = now
            try:
                self._names.update(usernames(self._hub))
            except ClientError:
                pass
        return self._names.get(user_id, user_id)

    def _created(self, data: dict[str, Any]) -> str:
        sender, payload = self.name(data["from"]), data["payload"]
        if payload["type"] == "file":
            text = f"{payload['filename']} ({human_size(payload['file_size'])})"
            self._remember(data["message_id"], text)
            return f"{sender} sent {text}: chat4all download {payload['file_id']}"
        self._remember(data["message_id"], payload["text"])
        return f"{sender}: {payload['text']}"

    def _remember(self, message_id: str, text: str) -> None:
        self._texts[message_id] = text if len(text) <= QUOTE else text[: QUOTE - 1] + "…"
        if len(self._texts) > REMEMBERED_MESSAGES:
            del self._texts[next(iter(self._texts))]

    def _status(self, data: dict[str, Any]) -> str:
        quoted = self._texts.get(data["message_id"])
        which = f"“{quoted}”" if quoted else data["message_id"]
        line = f"your message {which} is {data['status']}"
        if channel := data.get("channel"):
            why = channel.get("detail")
            line += f" ({channel['name']}: {channel['status']}{f': {why}' if why else ''})"
        return line

    def _conversation(self, data: dict[str, Any]) -> str:
        self.learn(data)
        return f"new {data['type']} conversation {data['conversation_id']}"

    def _read(self, data: dict[str, Any]) -> str:
        quoted = self._texts.get(data["up_to"])
        return f"{self.name(data['reader_id'])} read up to " + (f"“{quoted}”" if quoted else f"message {data['up_to']}")

    def _typing(self, data: dict[str, Any]) -> str:
        return f"{self.name(data['user_id'])} is typing…"


DESCRIPTIONS: dict[str, Callable[[EventLines, dict[str, Any]], str]] = {
    "message.created": EventLines._created,
    "message.status": EventLines._status,
    "conversation.created": EventLines._conversation,
    "conversation.read": EventLines._read,
    "typing": EventLines._typing,
}
