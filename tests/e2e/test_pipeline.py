"""One application through every process: core app → aggregator → PostgreSQL → RabbitMQ →
workers → sandbox → offers fanout → the OTHER core app → WebSocket."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp
import pytest

from tests.support.samples import sample_application
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

FINAL_TYPES = {"offer", "quote_status"}


def assert_well_formed_stream(events: list[dict[str, Any]], created: dict[str, Any]) -> None:
    """Exactly one final event per insurer, `complete` last and consistent, no duplicate id."""
    codes = {insurer["code"] for insurer in created["insurers"]}
    ids = [event["event_id"] for event in events]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert all(event["application_id"] == created["id"] for event in events)
    finals = [event for event in events if event["type"] in FINAL_TYPES]
    per_insurer = Counter(event["insurer"]["code"] for event in finals)
    assert set(per_insurer) == codes
    assert all(count == 1 for count in per_insurer.values()), per_insurer
    assert events[-1]["type"] == "complete"
    complete = events[-1]
    statuses = Counter("offered" if e["type"] == "offer" else e["status"] for e in finals)
    assert complete["offers"] == statuses["offered"]
    assert complete["statuses"] == {
        status: statuses.get(status, 0) for status in ("offered", "declined", "failed", "unavailable", "timed_out")
    }
    for event in finals:
        if event["type"] == "quote_status":
            assert event["reason"], event


def coefficient_product(coefficients: dict[str, str]) -> Decimal:
    product = Decimal(1)
    for value in coefficients.values():
        product *= Decimal(value)
    return product.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_application_posted_to_one_core_app_streams_from_the_other(calm_system: RunningSystem) -> None:
    started = time.monotonic()
    status, created = await calm_system.create(0, sample_application())
    assert status == 201, created
    assert created["status"] == "pending" and len(created["insurers"]) >= 3

    events, close_code = await calm_system.collect_events(1, created, timeout=calm_system.deadline_s + 10)
    elapsed = time.monotonic() - started

    assert close_code == 1000
    assert_well_formed_stream(events, created)
    offers = [e for e in events if e["type"] == "offer"]
    assert offers, "the sandbox priced the sample application"
    for event in offers:
        offer = event["offer"]
        assert offer["currency"] == "RUB"
        assert coefficient_product(offer["coefficients"]) == Decimal(offer["premium"])
    print(
        f"\nend to end: {len(events) - 1} insurer outcomes and complete in {elapsed:.2f}s (sandbox latency 20-200 ms)"
    )

    status, view = await calm_system.read(0, created)
    assert status == 200
    assert view["status"] == "complete"
    assert {o["id"] for o in view["offers"]} == {e["offer"]["id"] for e in offers}
    assert all(i["status"] != "pending" for i in view["insurers"])


async def test_socket_opened_mid_way_gets_every_event_exactly_once(calm_system: RunningSystem) -> None:
    insurers = [i["code"] for i in await calm_system.insurers()]
    slow, fast = insurers[: len(insurers) // 2], insurers[len(insurers) // 2 :]
    await asyncio.gather(
        *(calm_system.set_behaviour(code, {"mode": "ok", "latency_ms": [2500, 3000]}) for code in slow),
        *(calm_system.set_behaviour(code, {"mode": "ok", "latency_ms": [10, 50]}) for code in fast),
    )
    status, created = await calm_system.create(0, sample_application())
    assert status == 201

    # Wait until some outcomes are stored but the application is still open.
    for _ in range(200):
        _, view = await calm_system.read(1, created)
        finished = [i for i in view["insurers"] if i["status"] != "pending"]
        if finished:
            break
        await asyncio.sleep(0.05)
    assert view["status"] == "pending" and finished, view

    events, close_code = await calm_system.collect_events(1, created, timeout=calm_system.deadline_s + 10)
    assert close_code == 1000
    assert_well_formed_stream(events, created)

    # A socket opened after completion gets the same events again from the database.
    replayed, close_code = await calm_system.collect_events(0, created, timeout=10)
    assert close_code == 1000
    assert_well_formed_stream(replayed, created)
    assert {e["event_id"] for e in replayed} == {e["event_id"] for e in events}


async def test_strangers_get_404_before_any_frame(calm_system: RunningSystem) -> None:
    status, first = await calm_system.create(0, sample_application())
    assert status == 201
    status, second = await calm_system.create(1, sample_application())
    assert status == 201
    stranger = {**first, "access_token": second["access_token"]}

    status, body = await calm_system.read(0, stranger)
    assert status == 404 and body["error"]["code"] == "not_found"
    for token in (second["access_token"], "", "not-a-token"):
        url = f"{calm_system.cores[1].url}{first['links']['offers']}?token={token}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with calm_system.session.ws_connect(url):
                pass
        assert refused.value.status == 404


async def test_every_sandbox_insurer_prices_the_sample_by_its_own_base_rate(calm_system: RunningSystem) -> None:
    status, created = await calm_system.create(1, sample_application())
    assert status == 201
    events, _ = await calm_system.collect_events(0, created, timeout=calm_system.deadline_s + 10)
    assert_well_formed_stream(events, created)
    offers = {e["insurer"]["code"]: e["offer"] for e in events if e["type"] == "offer"}
    assert set(offers) == {i["code"] for i in await calm_system.insurers()}, "every insurer offers for the sample"
    for offer in offers.values():
        assert list(offer["coefficients"]) == ["TB", "KT", "KBM", "KVS", "KO", "KM", "KS", "KN"]
        assert coefficient_product(offer["coefficients"]) == Decimal(offer["premium"])
        assert offer["insurer_reference"] and offer["valid_until"].endswith("Z")
    # Same application, same KT/KBM/KVS/KM...: only the insurers' base rates differ.
    non_tb = {tuple((k, v) for k, v in o["coefficients"].items() if k != "TB") for o in offers.values()}
    assert len(non_tb) == 1
    assert len({o["premium"] for o in offers.values()}) >= len(offers) // 2
