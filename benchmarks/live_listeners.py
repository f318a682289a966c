"""The receiving side of `benchmarks.live_events`, spread over processes of its own.

One event loop that holds 1,000 WebSockets and also runs the open loop's sends falls behind (it
was measured late by up to tens of milliseconds at 200 msg/s), and a frame read late is timed
late: the latency then includes the load generator's own queueing. Here each of `processes`
child processes holds a share of the sockets and notes when each `message.created` frame is read
(`time.monotonic()`: CLOCK_MONOTONIC, the same clock in every process of the machine), and how
late its own loop runs, so a result says whether its timestamps can be trusted.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

import websockets

from benchmarks.common import latency_summary
from benchmarks.processes import cpu_seconds


class LoopLag:
    """How late this process's event loop wakes a 10 ms timer: the load generator's own queueing."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.task: asyncio.Task | None = None

    def start(self) -> LoopLag:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + 0.01
            await asyncio.sleep(0.01)
            self.lags.append(time.monotonic() - due)

    def stop(self) -> dict[str, Any]:
        if self.task:
            self.task.cancel()
        return latency_summary(self.lags)


async def listen(ws: websockets.ClientConnection, user_id: str, arrived: dict[str, float]) -> None:
    """When each message reached its recipient's socket (the sender's own copy is not counted)."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") == "message.created" and frame["data"]["from"] != user_id:
            arrived.setdefault(frame["data"]["message_id"], time.monotonic())


async def _hold(url: str, users: list[tuple[str, str]], client_ping: float | None, pipe: Connection) -> None:
    from benchmarks import live_events

    live_events.CLIENT_PING = client_ping
    # From seq 0, not "from now": a feed told "from now" starts at the head its first read finds,
    # and the first messages, sent while a thousand feeds were still making that read, were
    # correctly not sent to it, and counted here as lost. Each user's log holds only its
    # conversation's `conversation.created` before the sending starts.
    sockets = await live_events.connect_all_at(url, users, since=0)
    arrived: dict[str, float] = {}
    listeners = [asyncio.create_task(listen(ws, user_id, arrived)) for ws, (user_id, _) in zip(sockets, users, strict=True)]
    pipe.send("connected")
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "measure"
    lag, cpu_before, began = LoopLag().start(), cpu_seconds(os.getpid()), time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
    cpu = (cpu_seconds(os.getpid()) - cpu_before) / (time.monotonic() - began)
    lags = lag.stop()
    ended = [f"{type(task.exception()).__name__}: {task.exception()}" for task in listeners if task.done() and task.exception()]
    closed = sum(1 for ws in sockets if ws.state is not websockets.State.OPEN)
    for task in listeners:
        task.cancel()
    for ws in sockets:
        await ws.close()
    pipe.send({"arrived": arrived, "loop_lag": lags, "cpu_share_of_a_core": round(cpu, 3), "lags": lag.lags,
               "closed_early": closed, "ended": ended[:5]})


def _child(url: str, users: list[tuple[str, str]], client_ping: float | None, pipe: Connection) -> None:
    asyncio.run(_hold(url, users, client_ping, pipe))


class ListenerProcesses:
    """`processes` children holding the users' sockets between `start` and `stop`."""

    def __init__(self, url: str, users: list[tuple[str, str]], processes: int, client_ping: float | None) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._children = []
        for index in range(processes):
            ours, theirs = context.Pipe()
            child = context.Process(target=_child, args=(url, users[index::processes], client_ping, theirs), daemon=True)
            self._pipes.append(ours)
            self._children.append(child)

    async def connect(self) -> None:
        for child in self._children:
            child.start()
        loop = asyncio.get_running_loop()
        for pipe in self._pipes:
            assert await loop.run_in_executor(None, pipe.recv) == "connected"

    def measure(self) -> None:
        for pipe in self._pipes:
            pipe.send("measure")

    async def stop(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for pipe in self._pipes:
            pipe.send("stop")
        reports = [await loop.run_in_executor(None, pipe.recv) for pipe in self._pipes]
        for child in self._children:
            child.join(timeout=30)
        arrived: dict[str, float] = {}
        for report in reports:
            arrived.update(report["arrived"])
        return {"arrived": arrived, "cpu_share_of_a_core": round(sum(r["cpu_share_of_a_core"] for r in reports), 3),
                "loop_lag": latency_summary(lag for report in reports for lag in report["lags"]),
                # Sockets the server or the network closed during the run (their later frames are missing).
                "closed_early": sum(r["closed_early"] for r in reports), "ended": [e for r in reports for e in r["ended"]]}
