"""What the client prints. Results go to stdout: a line of text each, or with `--json` one JSON
object each. Steps and errors go to stderr: on a terminal a progress bar (rate and time left) shows
a transfer, elsewhere (a pipe, a log file) each step is one plain line, and `--json` prints no steps
(only the notices of a long-running command: `watch` connected, lost, reconnected)."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from typing import Any, TextIO

from tqdm import tqdm


class Output:
    def __init__(self, as_json: bool = False, out: TextIO | None = None, err: TextIO | None = None):
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = not as_json and self.err.isatty()
        self._bar: tqdm | None = None

    def result(self, record: dict[str, Any], text: str) -> None:
        print(json.dumps(record) if self.as_json else text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        if self.as_json:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.err)
        else:
            print(text, file=self.err, flush=True)

    def notice(self, text: str) -> None:
        """A line on stderr, `--json` or not: the state of a long-running command (`watch`), for
        the person or the log watching a script, whose stdout stays the script's."""
        print(text, file=self.err, flush=True)

    def error(self, text: str) -> None:
        print(f"error: {text}", file=self.err, flush=True)

    def progress(self, label: str, total: int, done: int = 0) -> Progress:
        bar = None
        if self.live:
            # A terminal that does not tell its size (0 x 0) gets 80 x 24: tqdm would draw nothing there.
            screen = shutil.get_terminal_size()
            bar = tqdm(
                total=total,
                initial=done,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.err,
                ncols=screen.columns,
                nrows=screen.lines,
                leave=True,
            )
        self._bar = bar
        return Progress(self, bar)


class Progress:
    """Counts bytes transferred; may be advanced from several threads."""

    def __init__(self, output: Output, bar: tqdm | None):
        self._output = output
        self._bar = bar
        self._lock = threading.Lock()

    def advance(self, amount: int, step: str | None = None) -> None:
        """`step` is the line printed instead of the bar when there is no terminal (None: no line)."""
        with self._lock:
            if self._bar is not None:
                self._bar.update(amount)
            elif step is not None:
                self._output.step(step)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._output._bar = None


def human_size(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GiB"
