"""A real browser (Debian's chromium through Playwright) against the whole system as subprocesses.

The browser tests get their own database, vhost and processes: they kill and replace a
core app, and their sandbox behaviours must not leak into other tests' workers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.support.infrastructure import RunInfrastructure, private_infrastructure
from tests.support.system import RunningSystem, start_system, stop_system

CHROMIUM = Path(os.environ.get("OSAGO_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"

# Short heartbeat and idle timeout: a stream lasts longer than the idle timeout, so a page
# that kept one socket to the end shows that a real browser's pongs count as activity.
# (A pong may take heartbeat/2 = 1 s: ample for Chromium on a busy machine.)
BROWSER_SYSTEM_ENV = {"OSAGO_WS_HEARTBEAT_S": "2", "OSAGO_WS_IDLE_TIMEOUT_S": "5"}


@dataclass(frozen=True)
class TunedInfrastructure(RunInfrastructure):
    """The run's infrastructure, with extra environment for every service it starts."""

    extra_env: tuple[tuple[str, str], ...] = ()

    def env(self, **overrides: str) -> dict[str, str]:
        return super().env(**{**dict(self.extra_env), **overrides})


@pytest.fixture(scope="package")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    return CHROMIUM


@pytest.fixture(scope="package")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="package")
async def browser_infrastructure() -> AsyncIterator[RunInfrastructure]:
    async with private_infrastructure() as (infrastructure, _):
        yield TunedInfrastructure(
            infrastructure.database_url,
            infrastructure.amqp_url,
            infrastructure.vhost,
            extra_env=tuple(BROWSER_SYSTEM_ENV.items()),
        )


@pytest.fixture(scope="package")
async def browser_system(browser_infrastructure: RunInfrastructure) -> AsyncIterator[RunningSystem]:
    async with aiohttp.ClientSession() as session:
        running = await start_system(browser_infrastructure, session)
        try:
            yield running
        finally:
            await stop_system(running)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context: BrowserContext = await browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow")
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    # An exception in the page's script is a failure even if the page still looked right.
    assert not errors, errors


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
