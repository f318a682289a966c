"""A user's handles on the channels: how the providers' inbound replies find who wrote them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from uuid import UUID

import attrs

from chat4all.application.errors import DuplicateKey
from chat4all.application.ports import UnitOfWorkFactory
from chat4all.domain.channel_handles import checked_handles
from chat4all.domain.errors import Conflict


@attrs.define
class ChannelHandles:
    """Rules: a user sets all their handles at once (a channel left out has none); each is checked
    against its channel's format; a handle belongs to one user per channel."""

    uow: UnitOfWorkFactory
    channels: Collection[str]

    async def read(self, caller: UUID) -> dict[str, str]:
        async with self.uow() as uow:
            return await uow.channels.handles_of(caller)

    async def replace(self, caller: UUID, handles: Mapping[str, object]) -> dict[str, str]:
        checked = checked_handles(handles, tuple(self.channels))
        async with self.uow() as uow:
            for channel, handle in checked.items():
                owner = await uow.channels.owner_of(channel, handle)
                if owner is not None and owner != caller:
                    raise _taken([channel])
            try:
                await uow.channels.replace_handles(caller, checked)
                await uow.commit()
            except DuplicateKey:  # another user took one of them meanwhile
                raise _taken(sorted(checked)) from None
        return checked


def _taken(channels: list[str]) -> Conflict:
    return Conflict(
        f"another user already has this {' or '.join(channels)} handle",
        code="handle_taken",
        field_errors={channel: ["belongs to another user"] for channel in channels},
    )
