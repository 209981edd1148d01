"""The insurer sandbox over real loopback HTTP: control API, the three protocols, pricing."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from xml.etree.ElementTree import fromstring as trusted_fromstring  # our own test server's XML

import aiohttp
import pytest

from quote_workers.sandbox.kbm import CLASSES, derived_class
from shared.quoting.insurers import CATALOGUE
from tests.integration.sandbox_fixtures import http, sandbox_url, set_behaviour, set_kbm, start_date
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS

__all__ = ["http", "sandbox_url"]  # fixtures, imported explicitly (no shared conftest)

MODES = ("ok", "error", "hang", "slow", "malformed", "reset", "refuse")
FAST = [0, 0]
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
CALC = "{urn:sandbox:osago:calc:1}"


def json_body(
    *,
    purpose: str = "personal",
    birth: str = "1985-03-14",
    since: str = "2005-06-01",
    licence: str = "7701123456",
    power: int = 181,
    year: int = 2019,
) -> dict[str, Any]:
    return {
        "policy": {"start_date": start_date(), "months": 12, "unlimited_drivers": False},
        "vehicle": {
            "category": "B",
            "make": "Toyota",
            "model": "Camry",
            "year": year,
            "power_hp": power,
            "purpose": purpose,
        },
        "owner": {"region_code": "77", "city": "Москва", "document": None},
        "drivers": [{"birth_date": birth, "experience_since": since, "licence": licence}],
    }


def poll_body(key: str = "k-1") -> dict[str, Any]:
    return {
        "clientRequestId": key,
        "startDate": start_date(),
        "termMonths": 12,
        "car": {
            "category": "B",
            "brand": "Toyota",
            "model": "Camry",
            "manufactureYear": 2019,
            "enginePowerHp": 181,
            "usage": "PERSONAL",
        },
        "insurant": {"regionCode": "77", "city": "Москва", "passport": None},
        "driversRestricted": True,
        "drivers": [{"birthDate": "1985-03-14", "drivingSince": "2005-06-01", "licenseNumber": "7701123456"}],
    }


def soap_body(key: str = "m-1", year: int = 2019) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:sandbox:osago:calc:1">'
        f"<soap:Header><o:MessageID>{key}</o:MessageID></soap:Header><soap:Body><o:CalculateRequest>"
        f'<o:Policy startDate="{start_date()}" months="12" unlimitedDrivers="false"/>'
        f'<o:Vehicle category="B" year="{year}" powerHp="181" purpose="personal"/>'
        '<o:Owner regionCode="77" city="Москва"/>'
        '<o:Drivers><o:Driver birthDate="1985-03-14" experienceSince="2005-06-01" licence="7701123456"/></o:Drivers>'
        "</o:CalculateRequest></soap:Body></soap:Envelope>"
    ).encode()


def product(coefficients: dict[str, str]) -> Decimal:
    result = Decimal(1)
    for value in coefficients.values():
        result *= Decimal(value)
    return result.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def post_json(
    http: aiohttp.ClientSession, base: str, code: str, body: Any, key: str | None = None
) -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    async with http.post(f"{base}/json/{code}/v1/quotes", json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


# --------------------------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------------------------


async def test_insurers_listing_matches_the_catalogue(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    async with http.get(f"{sandbox_url}/sandbox/insurers") as response:
        assert response.status == 200
        insurers = await response.json()
    assert [(i["code"], i["name"], i["protocol"]) for i in insurers] == [
        (i.code, i.name, i.protocol) for i in CATALOGUE
    ]
    for insurer in insurers:
        assert insurer["behaviour"]["mode"] == "ok"
        low, high = insurer["behaviour"]["latency_ms"]
        assert 100 <= low <= high <= 1500
        assert insurer["refusal_rules"]


@pytest.mark.parametrize("mode", MODES)
async def test_every_mode_can_be_set_and_deleted(http: aiohttp.ClientSession, sandbox_url: str, mode: str) -> None:
    url = f"{sandbox_url}/sandbox/insurers/kama/behaviour"
    shown = await set_behaviour(http, sandbox_url, "kama", mode=mode, latency_ms=[10, 20])
    assert shown["mode"] == mode and shown["latency_ms"] == [10, 20]
    async with http.get(f"{sandbox_url}/sandbox/insurers") as response:
        kama = next(i for i in await response.json() if i["code"] == "kama")
    assert kama["behaviour"] == shown
    async with http.delete(url) as response:
        assert response.status == 204
    async with http.get(url) as response:
        assert (await response.json())["mode"] == "ok"
        assert (await response.json())["latency_ms"] == [400, 1500]


async def test_fail_rate_and_defaults_are_echoed(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    shown = await set_behaviour(http, sandbox_url, "sever", fail_rate=0.3, fault="reset")
    assert shown == {
        "mode": "ok",
        "latency_ms": [100, 600],
        "fail_rate": 0.3,
        "fault": "reset",
        "reason": None,
        "issue": {
            "mode": "ok",
            "latency_ms": [100, 600],
            "fail_rate": 0.0,
            "fault": None,
            "reason": None,
            "price_change": None,
        },
    }
    shown = await set_behaviour(http, sandbox_url, "sever", fail_rate=0.3)
    assert shown["fault"] == "error"  # a rate without a named fault is plain 5xx
    shown = await set_behaviour(http, sandbox_url, "sever", mode="slow")
    assert shown["latency_ms"] == [3000, 6000]


async def test_unknown_insurer_is_404(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    url = f"{sandbox_url}/sandbox/insurers/nope/behaviour"
    async with http.put(url, json={"mode": "ok"}) as response:
        assert response.status == 404
    async with http.delete(url) as response:
        assert response.status == 404
    status, _ = await post_json(http, sandbox_url, "nope", json_body())
    assert status == 404
    status, _ = await post_json(http, sandbox_url, "volga", json_body())  # a poll insurer
    assert status == 404


@pytest.mark.parametrize(
    "body",
    [
        b'{"mode": "explode"}',
        b'{"mode": "ok", "latency_ms": [500, 100]}',
        b'{"mode": "ok", "latency_ms": [1]}',
        b'{"mode": "ok", "latency_ms": [-1, 5]}',
        b'{"mode": "ok", "latency_ms": ["1", "2"]}',
        b'{"fail_rate": 1.5, "fault": "error"}',
        b'{"fail_rate": 0.1, "fault": "ok"}',
        b'{"mode": "ok", "colour": "red"}',
        b'{"mode": 1}',
        b"[]",
        b"not json",
    ],
)
async def test_bad_behaviour_body_is_422(http: aiohttp.ClientSession, sandbox_url: str, body: bytes) -> None:
    async with http.put(f"{sandbox_url}/sandbox/insurers/sever/behaviour", data=body) as response:
        assert response.status == 422
        error = (await response.json())["error"]
    assert error["fields"]
    async with http.get(f"{sandbox_url}/sandbox/insurers/sever/behaviour") as response:
        assert (await response.json())["mode"] == "ok"  # unchanged


async def test_kbm_register(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    url = f"{sandbox_url}/sandbox/kbm/77 01 123456"
    for kbm_class in ("M", "0", "7", "13"):
        async with http.put(url, json={"class": kbm_class}) as response:
            assert response.status == 200
            assert await response.json() == {"document": "7701123456", "class": kbm_class}
        async with http.get(f"{sandbox_url}/sandbox/kbm/7701123456") as response:
            assert await response.json() == {"document": "7701123456", "class": kbm_class, "registered": True}
    for bad in (
        {"class": "14"},
        {"class": "X"},
        {"class": ""},
        {"class": None},
        {"class": True},
        {},
        {"class": "3", "extra": 1},
        ["3"],
    ):
        async with http.put(url, json=bad) as response:
            assert response.status == 422, bad
    async with http.put(url, data=b"{broken") as response:
        assert response.status == 422
    async with http.delete(url) as response:
        assert response.status == 204
    async with http.get(url) as response:
        shown = await response.json()
    assert shown == {"document": "7701123456", "class": derived_class("7701123456"), "registered": False}


def test_derived_classes_are_deterministic_and_realistic() -> None:
    documents = [f"{series:04d}{number:06d}" for series in range(10, 30) for number in range(500)]
    classes = Counter(derived_class(doc) for doc in documents)
    assert all(derived_class(doc) == derived_class(doc) for doc in documents[:100])
    assert set(classes) <= set(CLASSES)
    share_3_to_13 = sum(classes[c] for c in CLASSES[4:]) / len(documents)
    assert share_3_to_13 > 0.9
    assert classes["13"] == max(classes.values())
    assert classes["M"] > 0  # the worst class exists, rarely


# --------------------------------------------------------------------------------------------
# Protocols: happy paths, refusals, faults
# --------------------------------------------------------------------------------------------


async def test_json_protocol_prices_with_a_consistent_breakdown(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)
    status, answer = await post_json(http, sandbox_url, "sever", json_body(), key="q-1")
    assert status == 200 and answer["status"] == "priced"
    quote = answer["quote"]
    assert quote["reference"].startswith("SEV-") and quote["currency"] == "RUB"
    assert list(quote["coefficients"]) == ["TB", "KT", "KBM", "KVS", "KO", "KM", "KS", "KN"]
    assert product(quote["coefficients"]) == Decimal(quote["premium"])
    assert quote["valid_until"].endswith("Z")
    # The same key again: same reference and price; another key: a new reference.
    _, again = await post_json(http, sandbox_url, "sever", json_body(), key="q-1")
    assert again["quote"] == quote
    _, other = await post_json(http, sandbox_url, "sever", json_body(), key="q-2")
    assert other["quote"]["reference"] != quote["reference"]


async def test_worked_example_premium(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    """domain/osago-tariff.md: Moscow, 35 years old, 10 years' experience, class 13, 150 hp."""
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)
    await set_kbm(http, sandbox_url, "9900000001", "13")
    start = start_date()
    year = int(start[:4])
    birth = f"{year - 36}-01-01"  # 35 or 36 at the start: both are in the 35–39 band
    since = f"{year - 11}-01-01"
    status, answer = await post_json(
        http, sandbox_url, "sever", json_body(birth=birth, since=since, licence="9900000001", power=150)
    )
    assert status == 200
    quote = answer["quote"]
    assert quote["coefficients"] == WORKED_EXAMPLE_COEFFICIENTS
    assert quote["premium"] == "9441.80"


async def test_json_refusal_rule_and_refuse_mode(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)
    status, answer = await post_json(http, sandbox_url, "sever", json_body(purpose="taxi"))
    assert status == 200 and answer["status"] == "refused"
    assert answer["refusal"]["code"] == "TAXI" and answer["refusal"]["message"]
    await set_behaviour(http, sandbox_url, "sever", mode="refuse", latency_ms=FAST, reason="Лимит исчерпан")
    _, answer = await post_json(http, sandbox_url, "sever", json_body())
    assert answer == {"status": "refused", "refusal": {"code": "DECLINED", "message": "Лимит исчерпан"}}


async def test_young_driver_with_class_m_is_refused(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)
    await set_kbm(http, sandbox_url, "5500111222", "M")
    start_year = int(start_date()[:4])
    _, answer = await post_json(
        http,
        sandbox_url,
        "sever",
        json_body(birth=f"{start_year - 20}-01-01", since=f"{start_year - 2}-01-01", licence="5500111222"),
    )
    assert answer["status"] == "refused" and answer["refusal"]["code"] == "YOUNG_DRIVER_KBM"


async def test_json_bad_request_is_400(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    body = json_body()
    body["vehicle"]["power_hp"] = "181"  # strict: a string is not a number
    status, answer = await post_json(http, sandbox_url, "sever", body)
    assert status == 400 and answer["error"]["code"] == "bad_request"
    async with http.post(f"{sandbox_url}/json/sever/v1/quotes", data=b"{") as response:
        assert response.status == 400


async def test_json_fault_modes(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "amur", mode="error", latency_ms=FAST)
    status, _ = await post_json(http, sandbox_url, "amur", json_body())
    assert status == 503
    await set_behaviour(http, sandbox_url, "amur", mode="malformed", latency_ms=FAST)
    async with http.post(f"{sandbox_url}/json/amur/v1/quotes", json=json_body()) as response:
        assert response.status == 200
        with pytest.raises(ValueError):
            json.loads(await response.read())
    await set_behaviour(http, sandbox_url, "amur", mode="reset", latency_ms=FAST)
    with pytest.raises(aiohttp.ClientError):
        await post_json(http, sandbox_url, "amur", json_body())
    await set_behaviour(http, sandbox_url, "amur", mode="slow", latency_ms=[300, 300])
    began = time.monotonic()
    status, answer = await post_json(http, sandbox_url, "amur", json_body())
    assert status == 200 and answer["status"] == "priced" and time.monotonic() - began >= 0.29


async def test_hang_never_answers_and_is_released(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "altai", mode="hang")
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.4):
            await post_json(http, sandbox_url, "altai", json_body())
    assert time.monotonic() - began < 1.0
    # The hung handler notices that its client left (it checks every 0.5 s) and lets go.
    for _ in range(30):
        async with http.get(f"{sandbox_url}/sandbox/stats") as response:
            stats = await response.json()
        if stats["hanging"] == 0:
            break
        await asyncio.sleep(0.05)
    assert stats["hanging"] == 0
    # The sandbox still serves others meanwhile.
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)
    status, _ = await post_json(http, sandbox_url, "sever", json_body())
    assert status == 200


async def test_fail_rate_mixes_faults_into_ok(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "baikal", latency_ms=FAST, fail_rate=1.0, fault="error")
    assert (await post_json(http, sandbox_url, "baikal", json_body()))[0] == 503
    await set_behaviour(http, sandbox_url, "baikal", latency_ms=FAST, fail_rate=0.5, fault="error")
    statuses = Counter([(await post_json(http, sandbox_url, "baikal", json_body()))[0] for _ in range(40)])
    assert set(statuses) == {200, 503}


async def poll_until_final(http: aiohttp.ClientSession, base: str, location: str) -> tuple[int, Any, int]:
    polls = 0
    while True:
        polls += 1
        async with http.get(base + location) as response:
            status, answer = response.status, await response.json(content_type=None)
        if status != 200 or answer["status"] != "PENDING":
            return status, answer, polls
        await asyncio.sleep(answer["retryAfterMs"] / 1000)


async def test_poll_protocol(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "volga", latency_ms=[200, 200])
    async with http.post(f"{sandbox_url}/poll/volga/calculations", json=poll_body("p-1")) as response:
        assert response.status == 202
        submitted = await response.json()
        location = response.headers["Location"]
    assert submitted["status"] == "PENDING" and location.endswith(submitted["operationId"])
    status, answer, polls = await poll_until_final(http, sandbox_url, location)
    assert status == 200 and answer["status"] == "DONE" and polls >= 1
    result = answer["result"]
    assert result["calculationId"].startswith("VLG-")
    factors = {f["code"]: f["value"] for f in result["factors"]}
    assert product(factors) * 100 == result["premiumKopecks"]
    assert result["validUntil"].endswith("+03:00")
    # Polling a finished operation again answers the same; a repeat submit keeps the reference.
    _, again, _ = await poll_until_final(http, sandbox_url, location)
    assert again == answer
    async with http.post(f"{sandbox_url}/poll/volga/calculations", json=poll_body("p-1")) as response:
        repeat_location = response.headers["Location"]
    _, repeat, _ = await poll_until_final(http, sandbox_url, repeat_location)
    assert repeat["result"] == result
    async with http.get(f"{sandbox_url}/poll/volga/calculations/unknown") as response:
        assert response.status == 404


async def test_poll_refusal_fault_and_bad_submit(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "neva", mode="refuse", latency_ms=FAST)
    async with http.post(f"{sandbox_url}/poll/neva/calculations", json=poll_body()) as response:
        location = response.headers["Location"]
    _, answer, _ = await poll_until_final(http, sandbox_url, location)
    assert answer["status"] == "REJECTED" and answer["rejection"]["message"]
    await set_behaviour(http, sandbox_url, "neva", mode="error", latency_ms=FAST)
    async with http.post(f"{sandbox_url}/poll/neva/calculations", json=poll_body()) as response:
        location = response.headers["Location"]
    status, _, _ = await poll_until_final(http, sandbox_url, location)
    assert status == 502
    body = poll_body()
    del body["car"]
    async with http.post(f"{sandbox_url}/poll/neva/calculations", json=body) as response:
        assert response.status == 400


async def test_xml_protocol(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "ural", latency_ms=FAST)
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    async with http.post(f"{sandbox_url}/xml/ural/soap", data=soap_body("x-1"), headers=headers) as response:
        assert response.status == 200 and response.content_type == "text/xml"
        envelope = trusted_fromstring(await response.read())
    calculation = envelope.find(f"{SOAP}Body/{CALC}CalculateResponse/{CALC}Calculation")
    assert calculation is not None and calculation.get("reference", "").startswith("URL-")
    factors = {f.get("code"): f.get("value") for f in calculation.iter(f"{CALC}Factor")}
    assert product(factors) == Decimal(calculation.findtext(f"{CALC}Premium") or "")
    # A 30-year-old car: Ural refuses cars older than 20 years, with a refusal element.
    async with http.post(f"{sandbox_url}/xml/ural/soap", data=soap_body("x-2", year=1995)) as response:
        envelope = trusted_fromstring(await response.read())
    refusal = envelope.find(f"{SOAP}Body/{CALC}CalculateResponse/{CALC}Refusal")
    assert refusal is not None and refusal.get("code") == "VEHICLE_AGE" and refusal.text
    # Errors are SOAP Faults: Client for a bad envelope, Server for the error mode.
    async with http.post(f"{sandbox_url}/xml/ural/soap", data=b"<not-soap/>") as response:
        assert response.status == 500
        assert b"soap:Client" in await response.read()
    await set_behaviour(http, sandbox_url, "ural", mode="error", latency_ms=FAST)
    async with http.post(f"{sandbox_url}/xml/ural/soap", data=soap_body()) as response:
        assert response.status == 500
        assert b"soap:Server" in await response.read()


async def test_xml_entities_are_refused(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    async with http.post(f"{sandbox_url}/xml/ural/soap", data=bomb) as response:
        assert response.status == 500
        assert b"soap:Client" in await response.read()


async def test_sample_application_gets_offers_from_every_json_insurer(
    http: aiohttp.ClientSession, sandbox_url: str
) -> None:
    """The API.md sample at default rules (all ten protocols: test_adapters.py)."""
    for insurer in CATALOGUE:
        await set_behaviour(http, sandbox_url, insurer.code, latency_ms=FAST)
    json_codes = [i.code for i in CATALOGUE if i.protocol == "json"]
    for code in json_codes:
        status, answer = await post_json(http, sandbox_url, code, json_body())
        assert status == 200 and answer["status"] == "priced", code


async def test_stats_count_how_often_one_quote_was_asked(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)

    async def stats() -> dict[str, int]:
        async with http.get(f"{sandbox_url}/sandbox/stats") as response:
            result: dict[str, int] = await response.json()
            return result

    assert (await stats())["most_times_one_quote_was_asked"] == 0
    await post_json(http, sandbox_url, "sever", json_body(), key="quote-a")
    await post_json(http, sandbox_url, "sever", json_body(), key="quote-b")
    assert (await stats())["most_times_one_quote_was_asked"] == 1
    await post_json(http, sandbox_url, "sever", json_body(), key="quote-a")  # asked again: a duplicate
    counted = await stats()
    assert counted["most_times_one_quote_was_asked"] == 2 and counted["quotes_asked"] == 2
    assert counted["quotes_asked_again"] == 1
