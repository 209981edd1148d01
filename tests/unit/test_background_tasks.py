"""Work started by a request and awaited only at shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.platform.tasks import BackgroundTasks


async def test_shutdown_lets_running_work_finish_and_cancels_what_overruns() -> None:
    tasks = BackgroundTasks("test")
    finished: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished.append(name)

    tasks.start(work("quick", 0.01))
    tasks.start(work("slow", 10))
    assert len(tasks) == 2
    await tasks.wait(timeout_s=0.2)
    assert finished == ["quick"]
    assert len(tasks) == 0


async def test_failed_work_is_logged_and_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks("test")

    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger="shared.platform.tasks"):
        tasks.start(broken())
        await asyncio.sleep(0.01)
    assert len(tasks) == 0
    assert any(record.message == "background work failed" for record in caplog.records)
