"""Fixtures for tests that talk to a real insurer sandbox over loopback HTTP.

Import them explicitly into a test module (``from tests.integration.sandbox_fixtures import
sandbox_url, http``) so the lead's conftest stays the only implicit one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from quote_workers.sandbox.app import create_app
from shared.platform.settings import Settings
from tests.support import samples


@pytest_asyncio.fixture
async def sandbox_url() -> AsyncIterator[str]:
    """A fresh sandbox on 127.0.0.1 with an ephemeral port; its base URL."""
    app = create_app(Settings.from_env({}))
    # The default runner: no handler cancellation, so tests prove hangs are released anyway.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def set_behaviour(http: aiohttp.ClientSession, base: str, code: str, **behaviour: Any) -> dict[str, Any]:
    async with http.put(f"{base}/sandbox/insurers/{code}/behaviour", json=behaviour) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def set_kbm(http: aiohttp.ClientSession, base: str, document: str, kbm_class: str) -> None:
    async with http.put(f"{base}/sandbox/kbm/{document}", json={"class": kbm_class}) as response:
        assert response.status == 200, await response.text()


def start_date(days_ahead: int = 7) -> str:
    return (date.today() + timedelta(days=days_ahead)).isoformat()


SAMPLE_LICENCE = "7701123456"


def sample_application(**changes: Any) -> dict[str, Any]:
    """The tests' sample applicant starting next week; ``changes`` are dotted-path overrides."""
    application = samples.sample_application()
    for path, value in changes.items():
        target = application
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[leaf] = value
    return application
