"""A restarted worker's recovery time is mostly its start-up: the app must not idle in it."""

from __future__ import annotations

from chat4all.adapters.kafka.faust_transport import LowLatencyApp


async def test_an_app_without_tables_subscribes_without_faust_s_one_second_wait(tmp_path, monkeypatch) -> None:
    app = LowLatencyApp("startup-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path), web_enabled=False)
    manager = app.tables
    slept, steps = [], []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def update_channels() -> None:
        steps.append("channels registered")

    async def start_recovery() -> None:
        steps.append("recovery started")

    monkeypatch.setattr(manager, "sleep", sleep)
    monkeypatch.setattr(manager, "_update_channels", update_channels)
    monkeypatch.setattr(manager.recovery, "start", start_recovery)

    await manager.on_start()

    assert slept == []
    assert steps == ["channels registered", "recovery started"]
