"""The web chat on the distributed profile (`chat4all serve` and `chat4all worker` on PostgreSQL,
Kafka and S3): the same flows as on the embedded profile, run by importing them here, where the
`hub` fixture is a distributed deployment. A message's ticks come from the worker's deliveries,
its live events from PostgreSQL notifications, the file's chunks go to S3."""

from __future__ import annotations

import pytest

from tests.integration.test_web_chat_browser import (  # noqa: F401 - collected here against this module's hub
    browser,
    test_bob_sees_alices_message_live_and_her_tick_turns_to_read,
    test_network_lost_and_back_loses_nothing_and_shows_nothing_twice,
)
from tests.integration.web_chat import distributed_demo_hub

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with distributed_demo_hub(tmp_path_factory.mktemp("web-chat-distributed")) as running:
        yield running
