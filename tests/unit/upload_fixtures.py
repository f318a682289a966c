"""What the upload use case tests share: the file they upload, its uploader and an outsider, and a
unit of work whose first commit fails."""

from __future__ import annotations

import pytest

DATA = b"0123456789abcdefXYZ"  # 19 bytes: chunks of 4, the last one 3 bytes long


@pytest.fixture
async def alice(hub):
    return await hub.user("alice")


@pytest.fixture
async def mallory(hub):
    return await hub.user("mallory")


class CommitFailsOnce:
    """A unit-of-work factory whose first commit fails, as when the database restarts mid-request."""

    def __init__(self, inner):
        self.inner = inner
        self.failed = False

    def __call__(self):
        uow = self.inner()
        committed = uow.commit

        async def commit():
            if not self.failed:
                self.failed = True
                raise ConnectionError("database went away")
            await committed()

        uow.commit = commit
        return uow
