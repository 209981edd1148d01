"""The core app instance a page is connected to dies mid-stream; the page carries on without duplicates."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import artifact
from tests.browser.test_offers_page import COMPLETE_TIMEOUT_MS, open_page, rendered_result
from tests.support.processes import ServiceProcess
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


async def test_page_survives_the_death_of_its_core_app_without_duplicates(
    browser_system: RunningSystem, page: Page
) -> None:
    # Slow insurers: the stream is still open when its core app is killed, with events
    # both before (replayed on reconnect, to be dropped) and after (live on the new instance).
    await browser_system.set_all_behaviours({"mode": "ok", "latency_ms": [1500, 6000]})
    victim = browser_system.cores[0]
    try:
        await open_page(page, f"{victim.url}/")
        await page.get_by_role("button", name="Заполнить примером").click()
        async with page.expect_response("**/api/v1/applications") as answer:
            await page.get_by_role("button", name="Рассчитать цены").click()
        created = await (await answer.value).json()
        result = page.locator("#result")
        await expect(result).to_have_attribute("data-connections", "1")
        await expect(page.locator("#offers .offer").first).to_be_visible(timeout=COMPLETE_TIMEOUT_MS)
        assert await result.get_attribute("data-state") == "live"

        victim.kill()  # SIGKILL: no close frame, the page just loses its socket
        await expect(page.locator("#connection")).to_contain_text("Переподключаемся")
        await page.screenshot(path=artifact("reconnecting.png"), full_page=True)

        # Another instance comes up behind the same address, as after a restart or a failover.
        replacement = ServiceProcess("core1-replacement", "core_app", victim.env, victim.port)
        browser_system.cores[0] = replacement
        replacement.start()
        await replacement.wait_ready()

        await expect(result).to_have_attribute("data-state", "complete", timeout=COMPLETE_TIMEOUT_MS)
        seen = await rendered_result(page)
        status, view = await browser_system.read(1, created)
        assert status == 200
    finally:
        await browser_system.reset_behaviours()
    await page.screenshot(path=artifact("reconnected-complete.png"), full_page=True)

    assert seen["connections"] >= 2, "the page opened a new socket after the instance died"
    # The new socket replayed what the page already had; the page dropped it by event id.
    assert seen["duplicatesDropped"] >= 1
    # No duplicate anywhere: one row per insurer, one card per offer, exactly as stored.
    row_codes = Counter(row["code"] for row in seen["rows"])
    assert set(row_codes) == {insurer["code"] for insurer in view["insurers"]}
    assert max(row_codes.values()) == 1
    card_codes = [card["code"] for card in seen["cards"]]
    assert card_codes == [offer["insurer"]["code"] for offer in view["offers"]]
    assert [Decimal(card["premium"]) for card in seen["cards"]] == [Decimal(o["premium"]) for o in view["offers"]]
    assert {row["code"]: row["status"] for row in seen["rows"]} == {i["code"]: i["status"] for i in view["insurers"]}
    assert seen["summary"].startswith("Расчёт завершён")
    await expect(page.locator("#connection")).to_have_text("")


async def test_page_reloaded_mid_stream_resumes_the_same_application(browser_system: RunningSystem, page: Page) -> None:
    await browser_system.set_all_behaviours({"mode": "ok", "latency_ms": [1000, 4000]})
    try:
        await open_page(page, f"{browser_system.cores[1].url}/")
        await page.get_by_role("button", name="Заполнить примером").click()
        async with page.expect_response("**/api/v1/applications") as answer:
            await page.get_by_role("button", name="Рассчитать цены").click()
        created = await (await answer.value).json()
        await expect(page.locator("#offers .offer").first).to_be_visible(timeout=COMPLETE_TIMEOUT_MS)

        posts: list[str] = []
        page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
        await page.reload()
        await expect(page.locator("#result")).to_have_attribute("data-state", "complete", timeout=COMPLETE_TIMEOUT_MS)
        seen = await rendered_result(page)
        status, view = await browser_system.read(1, created)
        assert status == 200
    finally:
        await browser_system.reset_behaviours()
    assert posts == [], "a reload follows the application it had; it does not submit again"
    assert [card["code"] for card in seen["cards"]] == [offer["insurer"]["code"] for offer in view["offers"]]
    assert len(seen["rows"]) == len(view["insurers"])
