from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.infrastructure import RunInfrastructure
from tests.support.system import RunningSystem, start_system, stop_system


@pytest.fixture(scope="package")
async def system(infrastructure: RunInfrastructure) -> AsyncIterator[RunningSystem]:
    async with aiohttp.ClientSession() as session:
        running = await start_system(infrastructure, session)
        try:
            yield running
        finally:
            exit_codes = await stop_system(running)
    # Every process must shut down by itself on SIGTERM (no SIGKILL needed).
    assert all(code == 0 for code in exit_codes.values()), exit_codes


@pytest.fixture
async def calm_system(system: RunningSystem) -> AsyncIterator[RunningSystem]:
    """Every sandbox insurer answering quickly and successfully, restored afterwards."""
    await system.set_all_behaviours({"mode": "ok", "latency_ms": [20, 200]})
    yield system
    await system.reset_behaviours()
