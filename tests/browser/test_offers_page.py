"""The page in a real browser: a person fills the form, submits, and watches the offers arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, Request, Route, expect

from core_app.app import create_app
from tests.browser.conftest import artifact
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

# Generous: the sandbox's slowest insurer hangs until the 10 s test deadline.
COMPLETE_TIMEOUT_MS = 45_000
FINAL_STATUSES = {"offered", "declined", "failed", "unavailable", "timed_out"}


async def open_page(page: Page, url: str) -> None:
    await page.goto(url)
    # The page marks itself ready once it has the server's reference data (today, region codes).
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")


async def rendered_result(page: Page) -> dict[str, Any]:
    """What the person sees: each insurer's row and each offer card, in page order."""
    seen: dict[str, Any] = await page.evaluate(
        """() => ({
            rows: [...document.querySelectorAll('#insurers tr')].map(r => ({
                code: r.dataset.insurer, status: r.dataset.status, name: r.cells[0].textContent,
                detail: r.cells[2].textContent})),
            cards: [...document.querySelectorAll('#offers .offer')].map(c => ({
                code: c.dataset.insurer, premium: c.dataset.premium})),
            summary: document.getElementById('summary').textContent,
            state: document.getElementById('result').dataset.state,
            connections: Number(document.getElementById('result').dataset.connections),
            duplicatesDropped: Number(document.getElementById('result').dataset.duplicatesDropped),
        })"""
    )
    return seen


async def application_view(system: RunningSystem, created: dict[str, Any]) -> dict[str, Any]:
    status, view = await system.read(0, created)
    assert status == 200, view
    return view


async def test_person_fills_the_form_and_sees_offers_arrive_then_the_end_state(
    browser_system: RunningSystem, page: Page
) -> None:
    codes = [insurer["code"] for insurer in await browser_system.insurers()]
    refusing, failing, hanging, answering = codes[0], codes[1], codes[2], codes[3:]
    await asyncio.gather(
        *(browser_system.set_behaviour(code, {"mode": "ok", "latency_ms": [300, 2500]}) for code in answering),
        browser_system.set_behaviour(refusing, {"mode": "refuse", "latency_ms": [100, 300]}),
        browser_system.set_behaviour(failing, {"mode": "error", "latency_ms": [50, 100]}),
        # Never answers: the page must show a countdown and, at the deadline, "нет ответа".
        browser_system.set_behaviour(hanging, {"mode": "hang"}),
    )
    try:
        await open_page(page, f"{browser_system.cores[0].url}/")
        await page.get_by_role("button", name="Заполнить примером").click()
        async with page.expect_response("**/api/v1/applications") as answer:
            await page.get_by_role("button", name="Рассчитать цены").click()
        created = await (await answer.value).json()
        assert (await answer.value).status == 201, created

        result = page.locator("#result")
        await expect(result).to_be_visible()
        await expect(page.locator("#insurers tr")).to_have_count(len(codes))
        await expect(page.locator("#countdown")).to_contain_text("осталось")
        # Offers appear one by one while the application is still open (one insurer hangs).
        await expect(page.locator("#offers .offer").first).to_be_visible(timeout=COMPLETE_TIMEOUT_MS)
        assert await result.get_attribute("data-state") == "live"
        await page.screenshot(path=artifact("offers-arriving.png"), full_page=True)

        await expect(result).to_have_attribute("data-state", "complete", timeout=COMPLETE_TIMEOUT_MS)
        seen = await rendered_result(page)
        view = await application_view(browser_system, created)
    finally:
        await browser_system.reset_behaviours()

    # One row per insurer, each with its final status as the server stored it.
    assert sorted(row["code"] for row in seen["rows"]) == sorted(codes)
    stored = {insurer["code"]: insurer["status"] for insurer in view["insurers"]}
    assert {row["code"]: row["status"] for row in seen["rows"]} == stored
    assert stored[refusing] == "declined" and stored[failing] == "failed" and stored[hanging] == "timed_out"
    assert all(row["status"] in FINAL_STATUSES for row in seen["rows"])
    declined_row = next(row for row in seen["rows"] if row["code"] == refusing)
    assert declined_row["detail"], "a declined insurer shows its reason"

    # One card per offer, cheapest first, with the premiums the server stored.
    assert [card["code"] for card in seen["cards"]] == [offer["insurer"]["code"] for offer in view["offers"]]
    premiums = [Decimal(card["premium"]) for card in seen["cards"]]
    assert premiums == sorted(premiums) and len(premiums) == len(answering)
    assert premiums == [Decimal(offer["premium"]) for offer in view["offers"]]

    # A clear end state; one socket from start to end although the stream (about 11 s, one
    # insurer hangs to the deadline) outlived the idle timeout (5 s here): pongs kept it alive.
    assert seen["summary"].startswith("Расчёт завершён")
    assert f"{len(answering)} предложени" in seen["summary"] and "без ответа: 1" in seen["summary"]
    assert seen["connections"] == 1
    await expect(page.locator("#countdown")).to_have_text("")

    # The coefficient breakdown opens on demand.
    first_card = page.locator("#offers .offer").first
    breakdown = first_card.locator("dl")
    await expect(breakdown).to_be_hidden()
    await first_card.get_by_text("Из чего складывается цена").click()
    await expect(breakdown).to_be_visible()
    await expect(breakdown.locator("dt")).to_have_count(8)
    await expect(breakdown).to_contain_text("Бонус-малус (КБМ)")
    await page.screenshot(path=artifact("offers-complete.png"), full_page=True)

    # Readable on a phone: nothing wider than the screen.
    await page.set_viewport_size({"width": 375, "height": 800})
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    await page.screenshot(path=artifact("offers-complete-phone.png"), full_page=True)


async def test_client_checks_mirror_the_server_and_server_422_lands_next_to_the_field(
    browser_system: RunningSystem, page: Page
) -> None:
    posts: list[Request] = []
    page.on("request", lambda request: posts.append(request) if request.method == "POST" else None)
    await open_page(page, f"{browser_system.cores[1].url}/")
    await page.get_by_role("button", name="Заполнить примером").click()
    # Three mistakes the schema catches: an I in the VIN, plate 000, a licence before 16.
    await page.get_by_label("VIN *").fill("XW7BF4FK60S12345I")
    await page.get_by_label("Госномер *").fill("А000ВС777")
    await page.locator('[data-path="drivers.0.license.issued"]').fill("1999-01-01")
    await page.get_by_role("button", name="Рассчитать цены").click()

    await expect(page.locator("#err-vehicle\\.id_number")).to_contain_text("без I, O, Q")
    await expect(page.locator("#err-vehicle\\.plate")).to_contain_text("не 000")
    await expect(page.locator("#err-drivers\\.0\\.license\\.issued")).to_contain_text("16-летия")
    await expect(page.get_by_label("VIN *")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#banner")).to_be_visible()
    assert posts == [], "nothing is sent while the form has mistakes the page can see"

    # Fixed by the person: the errors go away.
    await page.get_by_role("button", name="Заполнить примером").click()
    await expect(page.locator("#err-vehicle\\.plate")).to_have_text("")

    # A mistake only the server sees (here: the body is altered on its way, as a stale page
    # would send it) comes back as a real 422 and is shown beside the field, in Russian.
    async def stale_client(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["owner"]["registration"]["region_code"] = "00"
        body["period"]["months"] = 2
        await route.continue_(post_data=json.dumps(body, ensure_ascii=False))

    await page.route("**/api/v1/applications", stale_client)
    async with page.expect_response("**/api/v1/applications") as answer:
        await page.get_by_role("button", name="Рассчитать цены").click()
    response = await answer.value
    assert response.status == 422
    paths = [field["path"] for field in (await response.json())["error"]["fields"]]
    assert paths == ["owner.registration.region_code", "period.months"]
    await expect(page.locator("#err-owner\\.registration\\.region_code")).to_have_text("Такого кода региона нет")
    await expect(page.locator("#err-period\\.months")).to_have_text("От 3 до 12")
    await expect(page.locator("#banner")).to_contain_text("Сервер не принял заявку")
    await expect(page.locator("#result")).to_be_hidden()
    await page.screenshot(path=artifact("server-422.png"), full_page=True)


@pytest.fixture
async def lone_core_app(
    browser_infrastructure: RunInfrastructure, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A core app in this process whose aggregator is down, with the browser quota the test asks for."""
    rps: float = request.param
    port = free_port()
    settings = browser_infrastructure.settings(
        aggregator_url=f"http://127.0.0.1:{free_port()}",
        browser_rps=rps,
        allowed_origins=(f"http://127.0.0.1:{port}",),
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()


@pytest.mark.parametrize("lone_core_app", [0.01], indirect=True)
async def test_over_quota_shows_a_banner_with_the_wait(lone_core_app: str, page: Page) -> None:
    # One request per 100 s: the page's reference request takes it, the submit is refused.
    await open_page(page, f"{lone_core_app}/")
    await page.get_by_role("button", name="Заполнить примером").click()
    async with page.expect_response("**/api/v1/applications") as answer:
        await page.get_by_role("button", name="Рассчитать цены").click()
    assert (await answer.value).status == 429
    await expect(page.locator("#banner")).to_have_text("Слишком много запросов с вашего адреса. Повторите через 100 с.")
    await expect(page.get_by_role("button", name="Рассчитать цены")).to_be_disabled()


@pytest.mark.parametrize("lone_core_app", [1000.0], indirect=True)
async def test_quoting_service_down_shows_a_banner_and_keeps_the_form(lone_core_app: str, page: Page) -> None:
    await open_page(page, f"{lone_core_app}/")
    await page.get_by_role("button", name="Заполнить примером").click()
    async with page.expect_response("**/api/v1/applications") as answer:
        await page.get_by_role("button", name="Рассчитать цены").click()
    response = await answer.value
    assert response.status == 503 and int(await response.header_value("Retry-After") or 0) >= 1
    await expect(page.locator("#banner")).to_contain_text("Сервис расчёта временно недоступен")
    await expect(page.get_by_label("Фамилия *").first).to_have_value("Иванов")
    await expect(page.locator("#result")).to_be_hidden()


async def test_page_is_served_with_a_strict_content_security_policy(browser_system: RunningSystem) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{browser_system.cores[0].url}/") as response:
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
