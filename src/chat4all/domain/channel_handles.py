"""The handles the channels' providers know a user by, and what makes an inbound reply the same reply.

A WhatsApp handle is a phone number in E.164 form (`+5511999990000`); spaces, dashes, dots and
parentheses people type in between digits are dropped. An Instagram handle is a username (letters,
digits, `.` and `_`, at most 30), case-insensitive, kept lowercase with its `@`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from uuid import UUID, uuid5

import attrs

from chat4all.domain.errors import InvalidInput

_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_INSTAGRAM = re.compile(r"@?([a-z0-9._]{1,30})")

# Inbound replies get message ids derived from their provider's message id: a provider retrying a
# reply (even after the hub crashed half way) sends the same message again, which is accepted once.
INBOUND_NAMESPACE = UUID("8f1f7a52-2c4e-4d55-9a57-3f0e0b6c2a11")


def _whatsapp(handle: str) -> str | None:
    number = _PHONE_SEPARATORS.sub("", handle)
    return number if _PHONE.fullmatch(number) else None


def _instagram(handle: str) -> str | None:
    match = _INSTAGRAM.fullmatch(handle.strip().lower())
    return None if match is None else "@" + match.group(1)


HANDLE_FORMATS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "whatsapp": (_whatsapp, "a phone number in E.164 form, e.g. +5511999990000"),
    "instagram": (_instagram, "an Instagram username, e.g. @bob (letters, digits, '.' and '_', at most 30)"),
}


def handle_for(channel: str, handle: str) -> str | None:
    """The handle in the form it is stored and looked up in, or None if it is not one of `channel`'s."""
    known = HANDLE_FORMATS.get(channel)
    return None if known is None or len(handle) > 64 else known[0](handle)


def checked_handles(handles: Mapping[str, object], channels: tuple[str, ...]) -> dict[str, str]:
    """Every handle of `handles` in its stored form, or InvalidInput naming each one that is not
    (a channel this hub has no connector for, or a handle not in the channel's format)."""
    errors: dict[str, list[str]] = {}
    checked: dict[str, str] = {}
    for channel, handle in handles.items():
        if channel not in channels or channel not in HANDLE_FORMATS:
            allowed = ", ".join(sorted(set(channels) & set(HANDLE_FORMATS)))
            errors[channel] = [f"not a channel with handles (allowed: {allowed})"]
            continue
        normal = handle_for(channel, handle) if isinstance(handle, str) else None
        if normal is None:
            errors[channel] = [HANDLE_FORMATS[channel][1]]
        else:
            checked[channel] = normal
    if errors:
        names = ", ".join(sorted(errors))
        raise InvalidInput(f"invalid channel handles: {names}", code="invalid_handle", field_errors=errors)
    return checked


def inbound_message_id(channel: str, provider_message_id: str) -> UUID:
    return uuid5(INBOUND_NAMESPACE, f"{channel}:{provider_message_id}")


@attrs.frozen
class InboundReply:
    """A reply a channel's provider posted: from the user it knows by `sender_handle`, answering the
    message it knows as `context_id`."""

    channel: str
    sender_handle: str
    text: str
    provider_message_id: str
    context_id: str
