"""Sandbox insurers after the quote: final calculation (numbered draft) and issuance, in all three
protocols, over real loopback HTTP; the issuance behaviour and its validation."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import fromstring as trusted_fromstring  # our own test server's XML

import aiohttp
import pytest

from tests.integration.sandbox_fixtures import http, sandbox_url, set_behaviour
from tests.integration.test_sandbox import json_body, poll_body, poll_until_final, soap_body

__all__ = ["http", "sandbox_url"]

FAST = [0, 0]
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
CALC = "{urn:sandbox:osago:calc:1}"
NUMBER = re.compile(r"[0-9]{10}")


def changed(premium: str, percent: str) -> str:
    factor = Decimal(1) + Decimal(percent) / 100
    return format((Decimal(premium) * factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")


async def stats(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/sandbox/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


async def quick_quote(http: aiohttp.ClientSession, base: str, code: str) -> str:
    async with http.post(f"{base}/json/{code}/v1/quotes", json=json_body()) as response:
        premium: str = (await response.json())["quote"]["premium"]
        return premium


# ------------------------------------------------------------------------------------------
# Sync JSON
# ------------------------------------------------------------------------------------------


async def json_calculate(http: aiohttp.ClientSession, base: str, code: str, order_id: str) -> tuple[int, Any]:
    async with http.post(f"{base}/json/{code}/v1/calculations", json={**json_body(), "order_id": order_id}) as r:
        return r.status, await r.json(content_type=None)


async def json_issue(
    http: aiohttp.ClientSession, base: str, code: str, draft_id: str, order_id: str
) -> tuple[int, Any]:
    body = {"draft_id": draft_id, "order_id": order_id, "payment_reference": "pay_test"}
    async with http.post(f"{base}/json/{code}/v1/policies", json=body) as response:
        return response.status, await response.json(content_type=None)


def assert_policy_shape(policy: dict[str, Any], series: str, start: str | None = None) -> None:
    assert policy["series"] == series and NUMBER.fullmatch(policy["number"]), policy
    starts_on, ends_on = date.fromisoformat(policy["starts_on"]), date.fromisoformat(policy["ends_on"])
    if start is not None:
        assert policy["starts_on"] == start
    # Twelve months: the day before the same date next year.
    assert (ends_on - starts_on).days in (364, 365)
    assert policy["issued_at"].endswith("Z")


async def test_json_final_calculation_and_issuance(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "sever", latency_ms=FAST)
    quoted = await quick_quote(http, sandbox_url, "sever")
    status, answer = await json_calculate(http, sandbox_url, "sever", "order-1")
    assert status == 200 and answer["status"] == "calculated", answer
    draft = answer["draft"]
    assert draft["premium"] == draft["quoted_premium"] == quoted
    assert draft["order_id"] == "order-1" and draft["draft_id"].startswith("SEV-D-")
    # The same order id again: the same draft.
    _, again = await json_calculate(http, sandbox_url, "sever", "order-1")
    assert again["draft"] == draft
    status, issued = await json_issue(http, sandbox_url, "sever", draft["draft_id"], "order-1")
    assert status == 201 and issued["status"] == "issued", issued
    policy = issued["policy"]
    assert_policy_shape(policy, "ХХХ", start=json_body()["policy"]["start_date"])
    assert policy["premium"] == quoted and policy["payment_reference"] == "pay_test"
    # A second issuance (a client retrying after a lost answer): refused, with the same policy.
    status, second = await json_issue(http, sandbox_url, "sever", draft["draft_id"], "order-1")
    assert status == 409 and second["error"]["code"] == "already_issued"
    assert second["policy"] == policy
    counted = await stats(http, sandbox_url)
    assert counted["policies_issued"] == 1 and counted["second_issuance_refused"] == 1
    assert counted["most_policies_for_one_order"] == 1 and counted["most_issuance_requests_for_one_order"] == 2


@pytest.mark.parametrize("percent", ["+3%", "-2%"])
async def test_json_price_change(http: aiohttp.ClientSession, sandbox_url: str, percent: str) -> None:
    await set_behaviour(http, sandbox_url, "amur", latency_ms=FAST, issue={"latency_ms": FAST, "price_change": percent})
    quoted = await quick_quote(http, sandbox_url, "amur")
    _, answer = await json_calculate(http, sandbox_url, "amur", "order-pc")
    draft = answer["draft"]
    assert draft["quoted_premium"] == quoted and draft["premium"] == changed(quoted, percent.rstrip("%"))
    assert draft["premium"] != quoted
    # The issued policy costs the final price; the quick quote is unchanged by price_change.
    _, issued = await json_issue(http, sandbox_url, "amur", draft["draft_id"], "order-pc")
    assert issued["policy"]["premium"] == draft["premium"]
    assert await quick_quote(http, sandbox_url, "amur") == quoted


async def test_json_refuse_error_and_hang(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(
        http, sandbox_url, "baikal", issue={"mode": "refuse", "latency_ms": FAST, "reason": "Нет бланков"}
    )
    status, answer = await json_calculate(http, sandbox_url, "baikal", "o-r")
    assert status == 200 and answer == {"status": "refused", "refusal": {"code": "DECLINED", "message": "Нет бланков"}}
    await set_behaviour(http, sandbox_url, "baikal", issue={"mode": "error", "latency_ms": FAST})
    status, answer = await json_calculate(http, sandbox_url, "baikal", "o-r")
    assert status == 503 and answer["error"]["code"] == "unavailable"
    await set_behaviour(http, sandbox_url, "baikal", issue={"mode": "hang"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await json_calculate(http, sandbox_url, "baikal", "o-r")
    # Nothing was saved by the faults: back to ok, the order gets its first draft now.
    await set_behaviour(http, sandbox_url, "baikal", issue={"latency_ms": FAST})
    assert (await stats(http, sandbox_url))["drafts"] == 0
    _, answer = await json_calculate(http, sandbox_url, "baikal", "o-r")
    draft = answer["draft"]
    # Issuance faults issue nothing.
    for mode, expected in (("error", 503), ("refuse", 200)):
        await set_behaviour(http, sandbox_url, "baikal", issue={"mode": mode, "latency_ms": FAST})
        status, answer = await json_issue(http, sandbox_url, "baikal", draft["draft_id"], "o-r")
        assert status == expected and answer.get("status") != "issued"
    assert (await stats(http, sandbox_url))["policies_issued"] == 0


async def test_json_underwriting_refusal_unknown_and_mismatched_drafts(
    http: aiohttp.ClientSession, sandbox_url: str
) -> None:
    await set_behaviour(http, sandbox_url, "sever", issue={"latency_ms": FAST})
    async with http.post(
        f"{sandbox_url}/json/sever/v1/calculations", json={**json_body(purpose="taxi"), "order_id": "o-taxi"}
    ) as response:
        answer = await response.json()
    assert answer["status"] == "refused" and answer["refusal"]["code"] == "TAXI"
    status, _ = await json_issue(http, sandbox_url, "sever", "SEV-D-NOPE", "o-x")
    assert status == 404
    _, answer = await json_calculate(http, sandbox_url, "sever", "o-a")
    status, answer = await json_issue(http, sandbox_url, "sever", answer["draft"]["draft_id"], "o-b")
    assert status == 409 and answer["error"]["code"] == "draft_mismatch"
    for bad in ({**json_body()}, {**json_body(), "order_id": ""}, {**json_body(), "order_id": "с кириллицей"}):
        async with http.post(f"{sandbox_url}/json/sever/v1/calculations", json=bad) as response:
            assert response.status == 400, bad
    async with http.post(f"{sandbox_url}/json/sever/v1/policies", json={"draft_id": "x"}) as response:
        assert response.status == 400
    assert (await stats(http, sandbox_url))["policies_issued"] == 0


async def test_policy_numbers_are_unique_over_many(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    codes = ("sever", "baikal", "altai", "amur")  # json insurers; two share each series
    for code in codes:
        await set_behaviour(http, sandbox_url, code, issue={"latency_ms": FAST})
    policies = []
    for index in range(40):
        for code in codes:
            order_id = f"many-{code}-{index}"
            _, answer = await json_calculate(http, sandbox_url, code, order_id)
            _, issued = await json_issue(http, sandbox_url, code, answer["draft"]["draft_id"], order_id)
            policies.append((issued["policy"]["series"], issued["policy"]["number"]))
    assert len(set(policies)) == len(policies) == 160
    assert {series for series, _ in policies} == {"ХХХ", "ТТТ"}
    assert all(NUMBER.fullmatch(number) for _, number in policies)
    assert (await stats(http, sandbox_url))["most_policies_for_one_order"] == 1


# ------------------------------------------------------------------------------------------
# Submit and poll
# ------------------------------------------------------------------------------------------


async def poll_submit(http: aiohttp.ClientSession, base: str, path: str, body: Any) -> tuple[int, Any, str | None]:
    async with http.post(f"{base}{path}", json=body) as response:
        return response.status, await response.json(content_type=None), response.headers.get("Location")


async def test_poll_final_calculation_and_issuance(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(
        http, sandbox_url, "volga", latency_ms=FAST, issue={"latency_ms": [100, 100], "price_change": "+3%"}
    )
    async with http.post(f"{sandbox_url}/poll/volga/calculations", json=poll_body("q")) as response:
        location = response.headers["Location"]
    _, quote, _ = await poll_until_final(http, sandbox_url, location)
    quoted = quote["result"]["premiumKopecks"]
    status, submitted, location = await poll_submit(
        http, sandbox_url, "/poll/volga/final-calculations", {**poll_body(), "orderId": "p-1"}
    )
    assert status == 202 and location is not None and submitted["status"] == "PENDING"
    status, answer, _ = await poll_until_final(http, sandbox_url, location)
    assert status == 200 and answer["status"] == "DONE", answer
    result = answer["result"]
    assert result["quotedPremiumKopecks"] == quoted
    assert result["premiumKopecks"] == int((Decimal(quoted) * Decimal("1.03")).quantize(Decimal(1), ROUND_HALF_UP))
    assert result["orderId"] == "p-1" and result["draftId"].startswith("VLG-D-")
    # Idempotent by order id.
    _, _, again_location = await poll_submit(
        http, sandbox_url, "/poll/volga/final-calculations", {**poll_body(), "orderId": "p-1"}
    )
    assert again_location is not None
    _, again, _ = await poll_until_final(http, sandbox_url, again_location)
    assert again["result"] == result
    # A final calculation's operation is not a quote's.
    async with http.get(sandbox_url + location.replace("final-calculations", "calculations")) as response:
        assert response.status == 404
    issue_body = {"draftId": result["draftId"], "orderId": "p-1", "paymentReference": "pay_1"}
    status, _, location = await poll_submit(http, sandbox_url, "/poll/volga/issuances", issue_body)
    assert status == 202 and location is not None
    status, answer, _ = await poll_until_final(http, sandbox_url, location)
    assert status == 200 and answer["status"] == "DONE", answer
    policy = answer["policy"]
    assert policy["series"] == "ТТТ" and NUMBER.fullmatch(policy["number"])
    assert policy["premiumKopecks"] == result["premiumKopecks"] and policy["issuedAt"].endswith("+03:00")
    status, second, _ = await poll_submit(http, sandbox_url, "/poll/volga/issuances", issue_body)
    assert status == 409 and second["error"]["code"] == "already_issued" and second["policy"] == policy
    assert (await stats(http, sandbox_url))["most_policies_for_one_order"] == 1


async def test_poll_refuse_error_and_hang(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    body = {**poll_body(), "orderId": "p-f"}
    await set_behaviour(http, sandbox_url, "oka", issue={"mode": "refuse", "latency_ms": FAST})
    _, _, location = await poll_submit(http, sandbox_url, "/poll/oka/final-calculations", body)
    assert location is not None
    _, answer, _ = await poll_until_final(http, sandbox_url, location)
    assert answer["status"] == "REJECTED" and answer["rejection"]["code"] == "DECLINED"
    await set_behaviour(http, sandbox_url, "oka", issue={"mode": "error", "latency_ms": FAST})
    _, _, location = await poll_submit(http, sandbox_url, "/poll/oka/final-calculations", body)
    assert location is not None
    status, _, _ = await poll_until_final(http, sandbox_url, location)
    assert status == 502
    await set_behaviour(http, sandbox_url, "oka", issue={"mode": "hang", "latency_ms": FAST})
    _, _, location = await poll_submit(http, sandbox_url, "/poll/oka/final-calculations", body)
    assert location is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await poll_until_final(http, sandbox_url, location)
    status, answer, _ = await poll_submit(http, sandbox_url, "/poll/oka/issuances", {"draftId": "x"})
    assert status == 400 and answer["error"]["code"] == "VALIDATION"
    assert (await stats(http, sandbox_url))["drafts"] == 0


# ------------------------------------------------------------------------------------------
# XML
# ------------------------------------------------------------------------------------------


def envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:sandbox:osago:calc:1">'
        f"<soap:Body>{inner}</soap:Body></soap:Envelope>"
    ).encode()


def final_calculate_body(order_id: str) -> bytes:
    quote = soap_body().decode()
    inner = quote[
        quote.index("<o:CalculateRequest>") + len("<o:CalculateRequest>") : quote.index("</o:CalculateRequest>")
    ]
    return envelope(f'<o:FinalCalculateRequest orderId="{order_id}">{inner}</o:FinalCalculateRequest>')


def issue_body(draft_id: str, order_id: str) -> bytes:
    return envelope(f'<o:IssueRequest draftId="{draft_id}" orderId="{order_id}" paymentReference="pay_x"/>')


async def soap(http: aiohttp.ClientSession, base: str, code: str, body: bytes) -> tuple[int, Element]:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    async with http.post(f"{base}/xml/{code}/soap", data=body, headers=headers) as response:
        return response.status, trusted_fromstring(await response.read())


async def test_xml_final_calculation_and_issuance(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "ural", latency_ms=FAST, issue={"latency_ms": FAST, "price_change": "-2%"})
    status, answer = await soap(http, sandbox_url, "ural", soap_body())
    quoted = answer.findtext(f"{SOAP}Body/{CALC}CalculateResponse/{CALC}Calculation/{CALC}Premium") or ""
    status, answer = await soap(http, sandbox_url, "ural", final_calculate_body("x-1"))
    draft = answer.find(f"{SOAP}Body/{CALC}FinalCalculateResponse/{CALC}Draft")
    assert status == 200 and draft is not None
    assert draft.findtext(f"{CALC}QuotedPremium") == quoted
    assert draft.findtext(f"{CALC}Premium") == changed(quoted, "-2")
    draft_id = draft.get("id", "")
    assert draft_id.startswith("URL-D-") and draft.get("orderId") == "x-1"
    _, again = await soap(http, sandbox_url, "ural", final_calculate_body("x-1"))
    again_draft = again.find(f"{SOAP}Body/{CALC}FinalCalculateResponse/{CALC}Draft")
    assert again_draft is not None and again_draft.get("id") == draft_id
    status, answer = await soap(http, sandbox_url, "ural", issue_body(draft_id, "x-1"))
    policy = answer.find(f"{SOAP}Body/{CALC}IssueResponse/{CALC}Policy")
    assert status == 200 and policy is not None
    assert policy.get("series") == "ХХХ" and NUMBER.fullmatch(policy.get("number", ""))
    assert policy.findtext(f"{CALC}Premium") == changed(quoted, "-2")
    status, answer = await soap(http, sandbox_url, "ural", issue_body(draft_id, "x-1"))
    fault = answer.find(f"{SOAP}Body/{SOAP}Fault")
    assert status == 500 and fault is not None and fault.findtext("faultcode") == "soap:Client"
    assert fault.findtext("faultstring") == "already_issued"
    error = fault.find(f"detail/{CALC}Error")
    first = fault.find(f"detail/{CALC}Policy")
    assert error is not None and error.get("code") == "already_issued"
    assert first is not None and first.attrib == policy.attrib
    assert (await stats(http, sandbox_url))["policies_issued"] == 1


async def test_xml_refuse_error_hang_and_bad_requests(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "don", issue={"mode": "refuse", "latency_ms": FAST})
    _, answer = await soap(http, sandbox_url, "don", final_calculate_body("d-1"))
    refusal = answer.find(f"{SOAP}Body/{CALC}FinalCalculateResponse/{CALC}Refusal")
    assert refusal is not None and refusal.get("code") == "DECLINED" and refusal.text
    await set_behaviour(http, sandbox_url, "don", issue={"mode": "error", "latency_ms": FAST})
    status, answer = await soap(http, sandbox_url, "don", final_calculate_body("d-1"))
    assert status == 500 and answer.findtext(f"{SOAP}Body/{SOAP}Fault/faultcode") == "soap:Server"
    await set_behaviour(http, sandbox_url, "don", issue={"mode": "hang"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await soap(http, sandbox_url, "don", final_calculate_body("d-1"))
    await set_behaviour(http, sandbox_url, "don", issue={"latency_ms": FAST})
    for bad in (
        final_calculate_body(""),
        envelope('<o:IssueRequest orderId="d-1" paymentReference="p"/>'),
        envelope("<o:Unknown/>"),
    ):
        status, answer = await soap(http, sandbox_url, "don", bad)
        assert status == 500 and answer.findtext(f"{SOAP}Body/{SOAP}Fault/faultcode") == "soap:Client"
    status, answer = await soap(http, sandbox_url, "don", issue_body("DON-D-NOPE", "d-1"))
    assert answer.findtext(f"{SOAP}Body/{SOAP}Fault/faultstring") == "unknown_draft"
    assert (await stats(http, sandbox_url))["policies_issued"] == 0


# ------------------------------------------------------------------------------------------
# Behaviour
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"issue": {"mode": "slow"}}, "issue.mode"),
        ({"issue": {"mode": "malformed"}}, "issue.mode"),
        ({"issue": {"price_change": "3%"}}, "issue.price_change"),
        ({"issue": {"price_change": "+3"}}, "issue.price_change"),
        ({"issue": {"price_change": "+80%"}}, "issue.price_change"),
        ({"issue": {"price_change": 3}}, "issue.price_change"),
        ({"issue": {"latency_ms": [5, 1]}}, "issue"),
        ({"issue": {"fail_rate": 2}}, "issue.fail_rate"),
        ({"issue": {"fault": "reset"}}, "issue.fault"),
        ({"issue": {"colour": "red"}}, "issue.colour"),
        ({"issue": "refuse"}, "issue"),
    ],
)
async def test_bad_issue_behaviour_is_422_naming_the_field(
    http: aiohttp.ClientSession, sandbox_url: str, body: dict[str, Any], path: str
) -> None:
    url = f"{sandbox_url}/sandbox/insurers/sever/behaviour"
    async with http.put(url, json=body) as response:
        assert response.status == 422
        fields = (await response.json())["error"]["fields"]
    assert any(field["path"] == path for field in fields), fields
    async with http.get(url) as response:
        assert (await response.json())["issue"]["mode"] == "ok"  # unchanged


async def test_issue_and_quote_behaviours_switch_separately(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    url = f"{sandbox_url}/sandbox/insurers/kama/behaviour"
    quote = await set_behaviour(http, sandbox_url, "kama", mode="error", latency_ms=[5, 5])
    shown = await set_behaviour(http, sandbox_url, "kama", issue={"mode": "refuse", "price_change": "+3%"})
    assert {k: v for k, v in shown.items() if k != "issue"} == {k: v for k, v in quote.items() if k != "issue"}
    assert shown["issue"]["mode"] == "refuse" and shown["issue"]["price_change"] == "+3%"
    assert shown["issue"]["latency_ms"] == [400, 1500]  # the company's default
    shown = await set_behaviour(http, sandbox_url, "kama", mode="ok")
    assert shown["issue"]["mode"] == "refuse"  # a quote-only body keeps the issuance behaviour
    async with http.delete(url) as response:
        assert response.status == 204
    async with http.get(url) as response:
        reset = await response.json()
    assert reset["mode"] == "ok" and reset["issue"]["mode"] == "ok" and reset["issue"]["price_change"] is None
