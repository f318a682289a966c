"""Load on a `Stack`: `Load` sends a planned burst from N concurrent clients and records, per
message id, whether the API answered 200, answered something else, or did not answer at all."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from tests.integration.faults.stack import Stack


@dataclass(frozen=True)
class Planned:
    message_id: str
    conversation_id: str
    sender: str
    channels: tuple[str, ...]  # as requested: "whatsapp", "instagram" or "all"
    file_id: str | None = None  # a file message when set, else a text one

    def body(self) -> dict:
        payload = (
            {"type": "file", "file_id": self.file_id}
            if self.file_id
            else {"type": "text", "text": f"fault test {self.message_id[:8]}"}
        )
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "from": self.sender,
            "channels": list(self.channels),
            "payload": payload,
        }


CHANNEL_MIX = (("whatsapp",), ("instagram",), ("all",))


def plan(
    conversations: list[tuple[str, str, str]], count: int, seed: int = 7, *, per_client: int | None = None
) -> list[Planned]:
    """`count` text messages over the conversations, each from one of its two members, on a
    whatsapp / instagram / all mix. With `per_client=N`, message j goes to conversation j % N:
    sent by a `Load(..., sticky=True)` of N clients, each conversation then has one client
    sending its messages one after the other, so their acceptance order is known."""
    rng = random.Random(seed)
    if per_client is not None:
        assert per_client <= len(conversations), f"{per_client} clients need as many conversations"
    planned = []
    for index in range(count):
        if per_client is None:
            conversation_id, first, second = rng.choice(conversations)
        else:
            conversation_id, first, second = conversations[index % per_client]
        planned.append(
            Planned(str(uuid.uuid4()), conversation_id, rng.choice((first, second)), rng.choice(CHANNEL_MIX))
        )
    return planned


@dataclass
class Answer:
    outcome: str  # "accepted" (200), "error" (another status) or "no_answer"
    detail: str = ""
    api: str = ""


class Load:
    """Sends the planned messages from `clients` concurrent clients, each taking the next message
    as soon as its previous one was answered (closed loop). `targets(client_index)` names the API
    base URL a client uses; a client that got no answer may switch with `on_no_answer`."""

    def __init__(
        self,
        stack: Stack,
        planned: list[Planned],
        clients: int,
        targets: Callable[[int], str],
        *,
        on_no_answer: Callable[[int], None] | None = None,
        timeout: float = 30.0,
        sticky: bool = False,
        think_time: float = 0.0,
    ):
        self.stack = stack
        self.think_time = think_time  # a client's pause after each answer (0: as fast as answers come)
        self.planned = planned
        self.clients = clients
        self.targets = targets
        self.on_no_answer = on_no_answer
        self.timeout = timeout
        self.answers: dict[str, Answer] = {}
        self.started = 0.0
        self.finished = 0.0
        self._next = iter(planned)
        self.sticky = sticky  # client i sends planned[i], planned[i + clients], ... in that order
        self._progress = asyncio.Event()

    @property
    def answered(self) -> int:
        return len(self.answers)

    async def run(self) -> None:
        self.started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=self.clients, force_close=False)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as session:
            await asyncio.gather(*(self._client(session, index) for index in range(self.clients)))
        self.finished = time.monotonic()

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        for message in self.planned[index :: self.clients] if self.sticky else self._next:
            self.answers[message.message_id] = await send(session, self.targets(index), self.stack, message)
            self._progress.set()
            if self.answers[message.message_id].outcome == "no_answer" and self.on_no_answer is not None:
                self.on_no_answer(index)
            if self.think_time:
                await asyncio.sleep(self.think_time)

    async def until(self, answered: int) -> None:
        """Returns once `answered` messages were answered (or the whole burst was)."""
        while self.answered < min(answered, len(self.planned)):
            self._progress.clear()
            await self._progress.wait()

    def ids(self, outcome: str) -> list[str]:
        return [message_id for message_id, answer in self.answers.items() if answer.outcome == outcome]

    def figures(self) -> dict[str, int]:
        counts = Counter(answer.outcome for answer in self.answers.values())
        return {
            "sent": len(self.planned),
            "accepted": counts["accepted"],
            "errors": counts["error"],
            "no_answer": counts["no_answer"],
        }

    def unanswered(self, limit: int = 5) -> dict[str, str]:
        """A few of the messages that did not get a 200, with what they got instead."""
        odd = {key: f"{a.outcome}: {a.detail}" for key, a in self.answers.items() if a.outcome != "accepted"}
        return dict(list(odd.items())[:limit])

    def rate(self) -> float:
        return len(self.answers) / max(self.finished - self.started, 1e-9)


async def send(session: aiohttp.ClientSession, base_url: str, stack: Stack, message: Planned) -> Answer:
    try:
        async with session.post(
            f"{base_url}/v1/messages", json=message.body(), headers=stack.auth(message.sender)
        ) as response:
            text = await response.text()
            if response.status == 200:
                return Answer("accepted", api=base_url)
            return Answer("error", f"{response.status} {text[:300]}", base_url)
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
        return Answer("no_answer", f"{type(error).__name__}: {error}", base_url)
