"""Each protocol adapter against the real sandbox over loopback HTTP, for every outcome."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from quote_workers.adapters import json_api, poll_api, xml_api
from quote_workers.adapters._common import MAX_ANSWER_BYTES, checked_offer, clean_reason
from quote_workers.adapters.base import (
    InsurerAnswer,
    InsurerTimeout,
    PermanentInsurerError,
    QuoteRequest,
    TransientInsurerError,
    declined,
)
from quote_workers.adapters.registry import build_adapter
from shared.models import QuoteStatus
from shared.quoting.insurers import BY_CODE, CATALOGUE
from shared.quoting.outcomes import OfferOutcome, StatusOutcome
from tests.integration.sandbox_fixtures import http, sample_application, sandbox_url, set_behaviour, set_kbm
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS

__all__ = ["http", "sandbox_url"]  # fixtures, imported explicitly (no shared conftest)

# One insurer per protocol; each accepts the sample and refuses taxis or old cars by its rules.
PROTOCOL_INSURERS = ["sever", "volga", "ural"]
FAST = [0, 0]
HANG_TIMEOUT_S = 0.5


def quote_request(code: str, quote_id: str = "6f1c2c52-0000-4000-8000-000000000001", **changes: Any) -> QuoteRequest:
    return QuoteRequest(
        quote_id=quote_id, application_id="app-1", insurer_code=code, application=sample_application(**changes)
    )


async def ask(
    http: aiohttp.ClientSession, base: str, code: str, request: QuoteRequest | None = None, timeout: float = 5.0
) -> InsurerAnswer:
    adapter = build_adapter(BY_CODE[code], http, base)
    return await adapter.request_quote(request or quote_request(code), timeout=timeout)


def is_declined(answer: InsurerAnswer) -> bool:
    return isinstance(answer, StatusOutcome) and answer.status is QuoteStatus.DECLINED


def consistent(offer: OfferOutcome) -> bool:
    total = Decimal(1)
    for value in offer.coefficients.values():
        total *= Decimal(value)
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) == offer.premium


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_offer(http: aiohttp.ClientSession, sandbox_url: str, code: str) -> None:
    await set_behaviour(http, sandbox_url, code, latency_ms=FAST)
    offer = await ask(http, sandbox_url, code)
    assert isinstance(offer, OfferOutcome)
    assert list(offer.coefficients) == ["TB", "KT", "KBM", "KVS", "KO", "KM", "KS", "KN"]
    assert consistent(offer) and offer.premium == offer.premium.quantize(Decimal("0.01"))
    assert offer.valid_until.tzinfo is not None and offer.valid_until > datetime.now(UTC)
    assert offer.insurer_reference.startswith(code[:1].upper())


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_idempotent_repeat_keeps_reference_and_price(
    http: aiohttp.ClientSession, sandbox_url: str, code: str
) -> None:
    await set_behaviour(http, sandbox_url, code, latency_ms=FAST)
    first = await ask(http, sandbox_url, code, quote_request(code, "q-same"))
    again = await ask(http, sandbox_url, code, quote_request(code, "q-same"))
    other = await ask(http, sandbox_url, code, quote_request(code, "q-other"))
    assert isinstance(first, OfferOutcome) and isinstance(again, OfferOutcome) and isinstance(other, OfferOutcome)
    assert (again.insurer_reference, again.premium) == (first.insurer_reference, first.premium)
    assert other.insurer_reference != first.insurer_reference


@pytest.mark.parametrize(
    ("code", "changes", "reason_part"),
    [
        ("sever", {"vehicle__purpose": "taxi"}, "такси"),
        ("volga", {"vehicle__year": 1990}, "старше 25"),
        ("ural", {"vehicle__year": 2000}, "старше 20"),
    ],
)
async def test_declined_by_underwriting_rules(
    http: aiohttp.ClientSession, sandbox_url: str, code: str, changes: dict[str, Any], reason_part: str
) -> None:
    await set_behaviour(http, sandbox_url, code, latency_ms=FAST)
    outcome = await ask(http, sandbox_url, code, quote_request(code, **changes))
    assert is_declined(outcome) and reason_part in outcome.reason


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_declined_in_refuse_mode(http: aiohttp.ClientSession, sandbox_url: str, code: str) -> None:
    await set_behaviour(http, sandbox_url, code, mode="refuse", latency_ms=FAST, reason="Нет бланков\u202e\n")
    outcome = await ask(http, sandbox_url, code)
    assert outcome == declined("Нет бланков")  # control characters stripped


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
@pytest.mark.parametrize("mode", ["error", "malformed", "reset"])
async def test_faults_are_transient(http: aiohttp.ClientSession, sandbox_url: str, code: str, mode: str) -> None:
    await set_behaviour(http, sandbox_url, code, mode=mode, latency_ms=FAST)
    with pytest.raises(TransientInsurerError) as caught:
        await ask(http, sandbox_url, code)
    assert caught.value.reason
    assert not isinstance(caught.value, InsurerTimeout), "a fault is not our time bound running out"


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_hang_ends_as_transient_at_the_timeout(http: aiohttp.ClientSession, sandbox_url: str, code: str) -> None:
    await set_behaviour(http, sandbox_url, code, mode="hang", latency_ms=FAST)
    began = time.monotonic()
    with pytest.raises(InsurerTimeout, match="no answer within"):
        await ask(http, sandbox_url, code, timeout=HANG_TIMEOUT_S)
    assert HANG_TIMEOUT_S - 0.05 <= time.monotonic() - began < HANG_TIMEOUT_S + 0.3


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_slow_within_budget_is_an_offer_and_beyond_it_transient(
    http: aiohttp.ClientSession, sandbox_url: str, code: str
) -> None:
    await set_behaviour(http, sandbox_url, code, mode="slow", latency_ms=[300, 300])
    began = time.monotonic()
    assert isinstance(await ask(http, sandbox_url, code, timeout=2.0), OfferOutcome)
    assert time.monotonic() - began >= 0.29
    with pytest.raises(InsurerTimeout):
        await ask(http, sandbox_url, code, timeout=0.15)


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_request_the_insurer_rejects_is_permanent(
    http: aiohttp.ClientSession, sandbox_url: str, code: str
) -> None:
    """A contract break on our side (a purpose the insurer does not know) is not retried."""
    await set_behaviour(http, sandbox_url, code, latency_ms=FAST)
    with pytest.raises(PermanentInsurerError):
        await ask(http, sandbox_url, code, quote_request(code, vehicle__purpose="bus"))


async def test_connection_refused_is_transient(http: aiohttp.ClientSession) -> None:
    with pytest.raises(TransientInsurerError) as caught:
        await ask(http, "http://127.0.0.1:9", "sever", timeout=1.0)
    assert not isinstance(caught.value, InsurerTimeout)


async def test_every_insurer_quotes_the_sample_and_kbm_is_shared(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    for insurer in CATALOGUE:
        await set_behaviour(http, sandbox_url, insurer.code, latency_ms=FAST)
    await set_kbm(http, sandbox_url, "7701123456", "13")
    outcomes = await asyncio.gather(*(ask(http, sandbox_url, insurer.code) for insurer in CATALOGUE))
    offers = [o for o in outcomes if isinstance(o, OfferOutcome)]
    assert len(offers) == len(CATALOGUE)
    assert {o.coefficients["KBM"] for o in offers} == {"0.46"}  # one register for every insurer
    assert len({o.premium for o in offers}) >= 5  # base rates differ between companies


async def test_unlimited_drivers_use_the_owner_class(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    await set_behaviour(http, sandbox_url, "don", latency_ms=FAST)
    await set_kbm(http, sandbox_url, "4510123456", "M")
    outcome = await ask(http, sandbox_url, "don", quote_request("don", drivers=[], unlimited_drivers=True))
    assert is_declined(outcome)  # Don refuses unlimited drivers for a bad class
    await set_behaviour(http, sandbox_url, "ural", latency_ms=FAST)
    await set_kbm(http, sandbox_url, "4510123456", "7")
    offer = await ask(http, sandbox_url, "ural", quote_request("ural", drivers=[], unlimited_drivers=True))
    assert isinstance(offer, OfferOutcome)
    assert offer.coefficients["KBM"] == "0.78" and offer.coefficients["KVS"] == "1"


# --------------------------------------------------------------------------------------------
# Untrusted answers: a scripted "insurer" on loopback (a real HTTP server, not a mock)
# --------------------------------------------------------------------------------------------


@dataclass
class Hostile:
    """A loopback "insurer" that answers each JSON quote with whatever the test scripted."""

    url: str
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)


@pytest_asyncio.fixture
async def hostile() -> AsyncIterator[Hostile]:
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    scripted: dict[str, tuple[int, bytes]] = {}

    async def handler(request: web.Request) -> web.Response:
        status, body = scripted[request.match_info["code"]]
        return web.Response(status=status, body=body, content_type="application/json")

    app.router.add_post("/json/{code}/v1/quotes", handler)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Hostile(f"http://127.0.0.1:{runner.addresses[0][1]}", scripted)
    finally:
        await runner.cleanup()


def _priced(**quote: Any) -> bytes:
    valid = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base: dict[str, Any] = {
        "reference": "SEV-1",
        "premium": "9441.80",
        "currency": "RUB",
        "valid_until": valid,
        "coefficients": dict(WORKED_EXAMPLE_COEFFICIENTS),
    }
    base.update(quote)
    return json.dumps({"status": "priced", "quote": base}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, _priced(), None),
        (200, _priced(premium="9441.81"), PermanentInsurerError),  # ≠ product of coefficients
        (200, _priced(premium="-5.00"), PermanentInsurerError),
        (200, _priced(premium="2000000.00"), PermanentInsurerError),
        (200, _priced(coefficients={"TB": "8665"}), PermanentInsurerError),
        (200, _priced(valid_until="2001-01-01T00:00:00Z"), PermanentInsurerError),
        (200, _priced(valid_until="2030-01-01T00:00:00"), PermanentInsurerError),  # no time zone
        (200, _priced(premium=9441.8), PermanentInsurerError),  # a float, not a decimal string
        # Digits of other scripts: Decimal() reads them, so they used to be accepted and relayed.
        (200, _priced(coefficients={**WORKED_EXAMPLE_COEFFICIENTS, "TB": "٨٦٦٥"}), PermanentInsurerError),
        (200, _priced(premium="٩٤٤١.٨٠"), PermanentInsurerError),
        (200, _priced(premium="９４４１.８０"), PermanentInsurerError),  # fullwidth
        (200, b'{"error": {"message": "oops"}}', PermanentInsurerError),  # 200 with an error
        (200, b"<html>502 Bad Gateway</html>", TransientInsurerError),
        (200, b" " * (MAX_ANSWER_BYTES + 1), PermanentInsurerError),  # oversized
        (502, b"<html>Bad Gateway</html>", TransientInsurerError),
        (429, b"{}", TransientInsurerError),
        (404, b"{}", PermanentInsurerError),
        (200, b'{"status": "refused", "refusal": {"message": ""}}', None),
    ],
)
async def test_untrusted_json_answers(
    http: aiohttp.ClientSession, hostile: Hostile, status: int, body: bytes, expected: type[Exception] | None
) -> None:
    hostile.answers["sever"] = (status, body)
    if expected is None:
        assert isinstance(await ask(http, hostile.url, "sever"), InsurerAnswer)
    else:
        with pytest.raises(expected):
            await ask(http, hostile.url, "sever")


def test_poll_and_xml_interpretation_rejects_inconsistent_answers() -> None:
    done = (
        b'{"operationId": "x", "status": "DONE", "result": {"calculationId": "VLG-1", "premiumKopecks": 100,'
        b' "currency": "RUB", "factors": [{"code": "TB", "value": "1"}], "validUntil": "2099-01-01T00:00:00Z"}}'
    )
    with pytest.raises(PermanentInsurerError):
        poll_api.outcome(poll_api.parse_status(done))
    with pytest.raises(TransientInsurerError):
        poll_api.parse_status(b"<html>")
    with pytest.raises(TransientInsurerError):
        poll_api.outcome(poll_api.parse_status(b'{"status": "FAILED"}'))
    with pytest.raises(PermanentInsurerError):  # entity declarations are refused outright
        xml_api.interpret(200, b'<!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>')
    with pytest.raises(TransientInsurerError):
        xml_api.interpret(200, b"<soap:Envelope")
    with pytest.raises(PermanentInsurerError):
        xml_api.interpret(
            500,
            (
                b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
                b"<faultcode>soap:Client</faultcode><faultstring>bad</faultstring></soap:Fault></soap:Body>"
                b"</soap:Envelope>"
            ),
        )
    assert json_api.interpret(b'{"status": "refused", "refusal": {"message": "x"}}') == declined("x")


def test_offer_sanity_helpers() -> None:
    valid_until = datetime.now(UTC) + timedelta(days=1)
    coefficients = dict(WORKED_EXAMPLE_COEFFICIENTS)
    assert checked_offer("9441.80", coefficients, "SEV-2026-1", valid_until).premium == Decimal("9441.80")
    with pytest.raises(PermanentInsurerError):
        checked_offer("9441.80", {**coefficients, "KT": "1e3"}, "SEV-2026-1", valid_until)
    with pytest.raises(PermanentInsurerError):
        checked_offer("9441.80", coefficients, "bad ref with spaces", valid_until)
    assert clean_reason(None) and clean_reason("a\x00b\u200bc") == "a b c"
    assert len(clean_reason("я" * 5000)) == 300
