"""CHAT4ALL_S3_COPY_AHEAD reaches the S3 storage the API builds, and a wrong value stops start-up."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.entrypoints.distributed import make_storage
from chat4all.entrypoints.settings import SettingsError, load_settings

DISTRIBUTED = {
    "CHAT4ALL_PROFILE": "distributed",
    "CHAT4ALL_DATABASE_URL": "postgresql+psycopg://chat4all@127.0.0.1:5432/chat4all",
    "CHAT4ALL_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "CHAT4ALL_S3_ENDPOINT": "http://127.0.0.1:9000",
    "CHAT4ALL_S3_BUCKET": "chat4all",
    "CHAT4ALL_S3_ACCESS_KEY": "key",
    "CHAT4ALL_S3_SECRET_KEY": "secret",
}


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("true", True), ("false", False)])
def test_copying_parts_ahead_follows_the_setting(value: str | None, expected: bool) -> None:
    env = DISTRIBUTED if value is None else {**DISTRIBUTED, "CHAT4ALL_S3_COPY_AHEAD": value}
    storage = make_storage(load_settings(env))
    try:
        assert storage._running.copy_ahead is expected
    finally:
        asyncio.run(storage.close())


def test_a_wrong_copy_ahead_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="CHAT4ALL_S3_COPY_AHEAD"):
        load_settings({**DISTRIBUTED, "CHAT4ALL_S3_COPY_AHEAD": "yes please"})
