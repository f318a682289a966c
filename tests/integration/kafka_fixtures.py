"""The real broker from scripts/services.sh, for the Kafka integration tests."""

from __future__ import annotations

import os

import pytest

from chat4all.adapters.kafka import check_broker

BOOTSTRAP = os.environ.get("CHAT4ALL_TEST_KAFKA", "127.0.0.1:19092")


async def require_broker() -> str:
    """The broker's address; an unreachable broker fails the test, it is never a reason to skip it."""
    try:
        await check_broker(BOOTSTRAP, timeout=5.0)
    except Exception as error:
        pytest.fail(
            f"the Kafka broker at {BOOTSTRAP} did not answer ({error!r}); "
            "start it with `bash scripts/services.sh up` and load `scripts/services.sh env`",
            pytrace=False,
        )
    return BOOTSTRAP
