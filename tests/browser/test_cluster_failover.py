"""Browsers watch offers through the balancer of the supervised cluster (`python -m local_cluster
run` on a port offset, a database and a vhost of its own) when the core app holding their sockets
is SIGKILLed: each page reconnects through the balancer, which sends it to the other instance, and
shows every insurer once, as stored."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from local_cluster.layout import Layout
from tests.browser.conftest import BROWSER_SYSTEM_ENV, artifact
from tests.browser.test_offers_page import COMPLETE_TIMEOUT_MS, open_page, rendered_result
from tests.support.infrastructure import private_infrastructure
from tests.support.supervised import SupervisedCluster, free_offset

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("nginx_installed")]

PAGES = 4
SNAPSHOT_READS = re.compile(r"^osago_snapshot_reads_total (\S+)$", re.M)


def layout(offset: int) -> Layout:
    return Layout(cores=2, aggregators=1, workers=1, port_offset=offset)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[SupervisedCluster]:
    async with private_infrastructure(15.0, prefix="osago_test_failover", pool_max=3) as (infrastructure, _):
        running = SupervisedCluster(infrastructure, layout(free_offset(layout)), **BROWSER_SYSTEM_ENV)
        async with aiohttp.ClientSession() as session:
            try:
                await running.start(session)
                yield running
            finally:
                await running.stop()


async def snapshot_reads(session: aiohttp.ClientSession, port: int) -> float:
    """Each socket opens with a snapshot read on the instance that holds it."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        found = SNAPSHOT_READS.search(await response.text())
        return float(found[1]) if found else 0.0


async def start_watching(page: Page, url: str) -> dict[str, Any]:
    await open_page(page, url)
    await page.get_by_role("button", name="Заполнить примером").click()
    async with page.expect_response("**/api/v1/applications") as answer:
        await page.get_by_role("button", name="Рассчитать цены").click()
    created: dict[str, Any] = await (await answer.value).json()
    await expect(page.locator("#result")).to_have_attribute("data-connections", "1")
    await expect(page.locator("#result")).to_have_attribute("data-state", "live")
    return created


async def test_pages_reconnect_through_the_balancer_when_their_core_app_is_killed(
    cluster: SupervisedCluster, browser: Browser
) -> None:
    async with aiohttp.ClientSession() as session:
        # Slow insurers: every stream is still open at the kill, with events before and after it.
        await cluster.behave_all(session, mode="ok", latency_ms=[2000, 8000])
        cores = dict(zip(["core:core1", "core:core2"], cluster.layout.core_ports, strict=True))
        before = {name: await snapshot_reads(session, port) for name, port in cores.items()}
        contexts = [await browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow") for _ in range(PAGES)]
        try:
            pages = [await context.new_page() for context in contexts]
            errors: list[str] = []
            for page in pages:
                page.on("pageerror", lambda error: errors.append(str(error)))
            created = [await start_watching(page, f"{cluster.url}/") for page in pages]
            opened = {name: await snapshot_reads(session, port) - before[name] for name, port in cores.items()}
            victim = max(opened, key=lambda name: opened[name])  # the instance holding most sockets
            await cluster.kill(victim)

            for page in pages:
                await expect(page.locator("#result")).to_have_attribute(
                    "data-state", "complete", timeout=COMPLETE_TIMEOUT_MS
                )
            seen = [await rendered_result(page) for page in pages]
            await pages[0].screenshot(path=artifact("cluster-failover-complete.png"), full_page=True)
            views = []
            for one in created:
                async with session.get(
                    f"{cluster.url}/api/v1/applications/{one['id']}",
                    headers={"Authorization": f"Bearer {one['access_token']}"},
                ) as response:
                    assert response.status == 200
                    views.append(await response.json())
        finally:
            await asyncio.gather(*(context.close() for context in contexts))

    assert not errors, errors
    reconnected = [s for s in seen if s["connections"] >= 2]
    print(f"\nSIGKILL {victim} holding {opened[victim]:g} of {PAGES} sockets: {len(reconnected)} pages reconnected")
    assert opened[victim] >= 1 and len(reconnected) >= 1
    for shown, view in zip(seen, views, strict=True):
        rows = Counter(row["code"] for row in shown["rows"])
        assert set(rows) == {insurer["code"] for insurer in view["insurers"]} and max(rows.values()) == 1
        assert {row["code"]: row["status"] for row in shown["rows"]} == {
            i["code"]: i["status"] for i in view["insurers"]
        }
        assert [card["code"] for card in shown["cards"]] == [offer["insurer"]["code"] for offer in view["offers"]]
        assert shown["summary"].startswith("Расчёт завершён")
