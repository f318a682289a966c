"""What a watch prints, across reconnections: each stored event once, in seq order, and only
those of the conversation it follows (if it follows one).

The cursor is the seq of the last stored event taken. A reconnection resumes after it, so the
server sends nothing older; an event at or before it (the server replaying) is dropped anyway,
not printed twice. Typing notices have no seq: they are never replayed, each is new. The cursor
moves only as the server says: to its answer's `next` (which may be behind, if the server's data
was restored from an older backup: the events numbered again from there are new ones), or to a
`resume_from` when the events after the cursor are no longer kept."""

from __future__ import annotations

from typing import Any


class Follow:
    def __init__(self, conversation_id: str | None = None):
        self.conversation_id = conversation_id
        self.cursor: int | None = None  # None: nothing taken yet, start from the newest

    def take(self, envelope: dict[str, Any]) -> bool:
        """Whether to print this event (the cursor moves past a stored one either way)."""
        seq = envelope.get("seq")
        if seq is not None:
            if self.cursor is not None and seq <= self.cursor:
                return False
            self.cursor = seq
        if self.conversation_id is None:
            return True
        return (envelope.get("data") or {}).get("conversation_id") == self.conversation_id

    def caught_up(self, server_next: int) -> str | None:
        """The server's cursor after a catch-up page; a notice when it is behind this watch's."""
        behind = self.cursor is not None and server_next < self.cursor
        notice = (
            f"the server's events end at seq {server_next}, before this watch's {self.cursor} "
            "(its data was restored from an older backup?): following from there"
        )
        self.cursor = server_next
        return notice if behind else None

    def expired(self, resume_from: int) -> str:
        """Events after the cursor are no longer kept: a notice, and the cursor moves to the newest."""
        notice = (
            f"events after seq {self.cursor} are no longer kept on the server: some were missed "
            f"(see `chat4all conversations`); following from the newest, seq {resume_from}"
        )
        self.cursor = resume_from
        return notice
