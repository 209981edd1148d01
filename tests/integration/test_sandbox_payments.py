"""The sandbox's payment provider over real loopback HTTP: creating payments, the Russian payment
page and its forms, and signed callbacks delivered to a real aiohttp receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from quote_workers.sandbox.app import create_app
from quote_workers.sandbox.payments.api import PAYMENTS_KEY
from shared.payments.signature import HEADER, verify
from shared.platform.settings import Settings
from tests.integration.sandbox_fixtures import http, sandbox_url

__all__ = ["http", "sandbox_url"]

SECRET = Settings.from_env({}).payment_callback_secret  # the sandbox fixture's settings
WAIT_S = 20.0


@dataclass
class Receiver:
    """A system's callback endpoint: answers the statuses it is given, then 200; keeps every call."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[bytes, str | None, float]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), request.headers.get(HEADER), time.time()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/callback", target.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    target.url = f"http://127.0.0.1:{runner.addresses[0][1]}/callback"
    try:
        yield target
    finally:
        await runner.cleanup()


def payment_body(receiver_url: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": "order-1",
        "amount": "9441.80",
        "currency": "RUB",
        "description": "Полис ОСАГО, заказ order-1",
        "insurer_name": "Северная страховая",
        "callback_url": receiver_url,
        "return_url": "http://127.0.0.1:8080/orders/order-1?back=1&x=<y>",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


async def create(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"{base}/sandbox/payments", json=body) as response:
        return response.status, await response.json()


async def payment(http: aiohttp.ClientSession, base: str, payment_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/sandbox/payments/{payment_id}") as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


async def until_delivery_ended(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """The sandbox's stats once no callback is being delivered (delivered or given up)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            async with http.get(f"{base}/sandbox/stats") as response:
                stats: dict[str, Any] = await response.json()
            if stats["callbacks_in_flight"] == 0:
                return stats
            await asyncio.sleep(0.05)


class Forms(HTMLParser):
    """The page's forms: (method, action, hidden fields, button label)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.external: list[str] = []
        self.links: list[str] = []
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"method": values.get("method"), "action": values.get("action"), "fields": {}, "label": ""}
            )
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][values["name"]] = values["value"]
        elif tag == "button":
            self._in_button = True
        elif tag in ("script", "link", "img", "iframe") or "src" in values:
            self.external.append(tag)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button and self.forms:
            self.forms[-1]["label"] += data


async def test_create_payment_and_repeat_it(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    status, created = await create(http, sandbox_url, payment_body("http://127.0.0.1:9/cb"))
    assert status == 201, created
    assert created["status"] == "pending" and created["amount"] == "9441.80" and created["amount_kopecks"] == 944180
    assert created["payment_url"] == f"{sandbox_url}/pay/{created['payment_id']}"
    # The system retrying after a lost answer gets the same payment; other terms are refused.
    status, again = await create(http, sandbox_url, payment_body("http://127.0.0.1:9/cb"))
    assert status == 200 and again["payment_id"] == created["payment_id"]
    status, other = await create(http, sandbox_url, payment_body("http://127.0.0.1:9/cb", amount="9441.81"))
    assert status == 409 and other["error"]["code"] == "payment_exists"
    # Kopecks are accepted too.
    status, kopecks = await create(
        http, sandbox_url, payment_body("http://127.0.0.1:9/cb", order_id="order-2", amount=None, amount_kopecks=100)
    )
    assert status == 201 and kopecks["amount"] == "1.00"
    assert await payment(http, sandbox_url, created["payment_id"]) == created
    async with http.get(f"{sandbox_url}/sandbox/payments/pay_nope") as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"amount": "9441.8"}, "amount"),
        ({"amount": "-1.00"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": 9441.80}, "amount"),
        ({"amount": None}, ""),
        ({"amount_kopecks": 100}, ""),
        ({"currency": "USD"}, "currency"),
        ({"callback_url": "ftp://x/y"}, "callback_url"),
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"order_id": ""}, "order_id"),
        ({"description": ""}, "description"),
        ({"insurer_name": None}, "insurer_name"),
        ({"tip": "1.00"}, "tip"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00+03:00"}, "expires_at"),
        ({"expires_at": "soon"}, "expires_at"),
    ],
)
async def test_bad_payment_is_422_naming_the_field(
    http: aiohttp.ClientSession, sandbox_url: str, changes: dict[str, Any], path: str
) -> None:
    status, answer = await create(http, sandbox_url, payment_body("http://127.0.0.1:9/cb", **changes))
    assert status == 422 and answer["error"]["code"] == "invalid_payment"
    assert any(item["path"] == path for item in answer["error"]["fields"]), answer
    async with http.get(f"{sandbox_url}/sandbox/stats") as response:
        assert (await response.json())["payments"] == 0  # nothing created


async def test_payment_page_is_russian_and_the_form_pays(
    http: aiohttp.ClientSession, sandbox_url: str, receiver: Receiver
) -> None:
    _, created = await create(http, sandbox_url, payment_body(receiver.url))
    async with http.get(created["payment_url"]) as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert "form-action 'self'" in response.headers["Content-Security-Policy"]
        html = await response.text()
    assert '<html lang="ru">' in html
    assert "9\u00a0441,80\u00a0₽" in html and "Северная страховая" in html
    forms = Forms()
    forms.feed(html)
    assert forms.external == []  # no scripts, styles or images from anywhere
    assert [(f["method"], f["label"], f["fields"]) for f in forms.forms] == [
        ("post", "Оплатить", {"outcome": "paid"}),
        ("post", "Отказаться", {"outcome": "failed"}),
    ]
    pay = forms.forms[0]
    async with http.post(sandbox_url + pay["action"], data=pay["fields"]) as response:
        assert response.status == 200 and response.history[0].status == 303
        result = await response.text()
    assert "Оплата прошла успешно" in result and "Оплатить" not in result
    back = Forms()
    back.feed(result)
    assert back.links == [payment_body(receiver.url)["return_url"]]
    assert (await payment(http, sandbox_url, created["payment_id"]))["status"] == "paid"
    # A second click (the other button, from a stale tab) changes nothing.
    decline = forms.forms[1]
    async with http.post(sandbox_url + decline["action"], data=decline["fields"]) as response:
        assert "Оплата прошла успешно" in await response.text()
    stats = await until_delivery_ended(http, sandbox_url)
    assert (await payment(http, sandbox_url, created["payment_id"]))["status"] == "paid"
    assert len(receiver.received) == 1 and stats["callbacks_delivered"] == 1
    assert json.loads(receiver.received[0][0])["status"] == "paid"


async def test_declining_on_the_page_fails_the_payment(
    http: aiohttp.ClientSession, sandbox_url: str, receiver: Receiver
) -> None:
    _, created = await create(http, sandbox_url, payment_body(receiver.url))
    async with http.post(created["payment_url"], data={"outcome": "failed"}) as response:
        assert "Оплата не выполнена" in await response.text()
    async with http.post(created["payment_url"], data={"outcome": "maybe"}) as response:
        assert response.status == 400
    async with http.get(f"{sandbox_url}/pay/pay_unknown") as response:
        assert response.status == 404 and "Платёж не найден" in await response.text()
    await until_delivery_ended(http, sandbox_url)
    assert [json.loads(body)["status"] for body, _, _ in receiver.received] == ["failed"]


async def test_callback_is_signed_and_carries_the_payment(
    http: aiohttp.ClientSession, sandbox_url: str, receiver: Receiver
) -> None:
    _, created = await create(http, sandbox_url, payment_body(receiver.url))
    async with http.post(f"{sandbox_url}/sandbox/payments/{created['payment_id']}", json={"outcome": "paid"}) as r:
        assert r.status == 200 and (await r.json())["status"] == "paid"
    await until_delivery_ended(http, sandbox_url)
    [(body, header, at)] = receiver.received
    assert verify(body, header, SECRET, now=at) > 0
    event = json.loads(body)
    assert set(event) == {"event_id", "payment_id", "order_id", "amount", "currency", "status", "occurred_at"}
    assert event["payment_id"] == created["payment_id"] and event["order_id"] == "order-1"
    assert event["amount"] == "9441.80" and event["status"] == "paid" and event["occurred_at"].endswith("Z")
    shown = await payment(http, sandbox_url, created["payment_id"])
    assert shown["event_id"] == event["event_id"] and shown["callback"]["delivered"] is True
    # The test API: the same outcome again is a no-op, the other one is refused; neither sends more.
    async with http.post(f"{sandbox_url}/sandbox/payments/{created['payment_id']}", json={"outcome": "paid"}) as r:
        assert r.status == 200
    async with http.post(f"{sandbox_url}/sandbox/payments/{created['payment_id']}", json={"outcome": "failed"}) as r:
        assert r.status == 409 and (await r.json())["error"]["code"] == "payment_finished"
    async with http.post(f"{sandbox_url}/sandbox/payments/{created['payment_id']}", json={"outcome": "x"}) as r:
        assert r.status == 422 and (await r.json())["error"]["fields"][0]["path"] == "outcome"
    await until_delivery_ended(http, sandbox_url)
    assert len(receiver.received) == 1


async def test_callback_is_retried_until_a_2xx_and_never_after(
    http: aiohttp.ClientSession, sandbox_url: str, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    _, created = await create(http, sandbox_url, payment_body(receiver.url))
    async with http.post(f"{sandbox_url}/sandbox/payments/{created['payment_id']}", json={"outcome": "paid"}):
        pass
    stats = await until_delivery_ended(http, sandbox_url)
    assert len(receiver.received) == 3 and stats["callback_attempts"] == 3 and stats["callbacks_delivered"] == 1
    bodies = {body for body, _, _ in receiver.received}
    assert len(bodies) == 1  # one event, the same body at every attempt
    for body, header, at in receiver.received:
        verify(body, header, SECRET, now=at)  # each attempt signed afresh and valid
    shown = await payment(http, sandbox_url, created["payment_id"])
    assert shown["callback"] == {"attempts": 3, "delivered": True, "gave_up": False, "last_status": 200}


async def test_callback_to_nobody_is_retried_and_stopped_at_shutdown() -> None:
    """A receiver that is down: the provider keeps trying in the background; shutdown ends it."""
    app = create_app(Settings.from_env({}))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    provider = app[PAYMENTS_KEY]
    try:
        async with aiohttp.ClientSession() as session:
            # Port 9 (discard) on loopback refuses connections.
            _, created = await create(session, base, payment_body("http://127.0.0.1:9/callback"))
            async with session.post(f"{base}/sandbox/payments/{created['payment_id']}", json={"outcome": "paid"}):
                pass
            async with asyncio.timeout(WAIT_S):
                while (await payment(session, base, created["payment_id"]))["callback"]["attempts"] < 2:
                    await asyncio.sleep(0.05)
        assert provider.stats()["callbacks_in_flight"] == 1
    finally:
        async with asyncio.timeout(WAIT_S):
            await runner.cleanup()
    assert provider.stats()["callbacks_in_flight"] == 0 and provider.stats()["callbacks_delivered"] == 0


async def test_an_expired_payment_takes_no_click_and_sends_nothing(
    http: aiohttp.ClientSession, sandbox_url: str, receiver: Receiver
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    expires_at = soon.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    status, created = await create(http, sandbox_url, payment_body(receiver.url, expires_at=expires_at))
    assert status == 201 and created["expires_at"].startswith(expires_at[:19])
    async with asyncio.timeout(WAIT_S):
        while (await payment(http, sandbox_url, created["payment_id"]))["status"] != "expired":
            await asyncio.sleep(0.05)
    async with http.get(created["payment_url"]) as response:
        page = await response.text()
    assert "Срок оплаты истёк" in page and "Оплатить" not in page
    async with http.post(created["payment_url"], data={"outcome": "paid"}) as response:
        assert "Срок оплаты истёк" in await response.text()
    async with http.post(f"{sandbox_url}/sandbox/payments/{created['payment_id']}", json={"outcome": "paid"}) as r:
        assert r.status == 409 and (await r.json())["error"]["code"] == "payment_expired"
    stats = await until_delivery_ended(http, sandbox_url)
    assert stats["callback_attempts"] == 0 and receiver.received == []
