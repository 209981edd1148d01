"""Adapter for insurers with a submit-then-poll API (the sandbox's ``/poll/{code}/calculations``).

Submit the application (our quote id as ``clientRequestId``), get ``202`` and an operation id,
then poll until the calculation is done, rejected or failed — all inside the one ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.quoting.insurers import InsurerInfo

from ._common import (
    KOPECK,
    ApplicationView,
    check_status,
    checked_offer,
    clean_reason,
    guarded,
    parse_timestamp,
    read_capped,
    view_application,
)
from .base import (
    InsurerAnswer,
    MalformedAnswerError,
    PermanentInsurerError,
    QuoteRequest,
    TransientInsurerError,
    declined,
)

# Our own pacing when the insurer gives no hint: start quick, back off gently.
FIRST_POLL_S = 0.05
POLL_GROWTH = 1.5
MAX_POLL_S = 0.5
# An insurer's Retry-After-style hint is honoured but bounded both ways (it is untrusted).
MIN_HINT_S = 0.02
MAX_HINT_S = 1.0
MAX_POLLS = 2_000  # a runaway loop guard; the timeout normally ends things far earlier

_OPERATION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_STRICT = ConfigDict(strict=True, extra="ignore")


class _Factor(BaseModel):
    model_config = _STRICT
    code: str = Field(max_length=8)
    value: str = Field(max_length=24)


class _Result(BaseModel):
    model_config = _STRICT
    calculationId: str = Field(max_length=64)
    premiumKopecks: int = Field(ge=1, le=10**9)
    currency: Literal["RUB"]
    factors: list[_Factor] = Field(max_length=16)
    validUntil: str = Field(max_length=40)


class _Rejection(BaseModel):
    model_config = _STRICT
    code: str | None = Field(default=None, max_length=64)
    message: str = Field(max_length=2000)


class _Status(BaseModel):
    model_config = _STRICT
    operationId: str | None = Field(default=None, max_length=128)
    status: Literal["PENDING", "DONE", "REJECTED", "FAILED"]
    retryAfterMs: int | None = Field(default=None, ge=0, le=3_600_000)
    result: _Result | None = None
    rejection: _Rejection | None = None


def request_body(app: ApplicationView, key: str) -> dict[str, Any]:
    return {
        "clientRequestId": key,
        "startDate": app.start_date,
        "termMonths": app.months,
        "car": {
            "category": app.category,
            "brand": app.make,
            "model": app.model,
            "manufactureYear": app.year,
            "enginePowerHp": app.power_hp,
            "usage": app.purpose.upper(),  # the insurer's enum; an unknown purpose is its 400
        },
        "insurant": {"regionCode": app.region_code, "city": app.city, "passport": app.owner_passport},
        "driversRestricted": not app.unlimited,
        "drivers": [
            {"birthDate": d.birth_date, "drivingSince": d.experience_since, "licenseNumber": d.licence}
            for d in app.drivers
        ],
    }


def parse_status(raw: bytes) -> _Status:
    try:
        return _Status.model_validate_json(raw)
    except ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors(include_input=False)):
            raise MalformedAnswerError("insurer answer is not valid JSON") from None
        raise PermanentInsurerError("insurer answer does not match the contract") from None


def outcome(status: _Status) -> InsurerAnswer | None:
    """The final outcome of a polled operation, or None while it is still pending."""
    if status.status == "PENDING":
        return None
    if status.status == "FAILED":
        raise TransientInsurerError("insurer calculation failed")
    if status.status == "REJECTED":
        if status.rejection is None:
            raise PermanentInsurerError("rejection without a reason object")
        return declined(clean_reason(status.rejection.message))
    result = status.result
    if result is None:
        raise PermanentInsurerError("finished operation without a result")
    factors: dict[str, str] = {}
    for factor in result.factors:
        if factor.code in factors:
            raise PermanentInsurerError("coefficient listed twice")
        factors[factor.code] = factor.value
    premium = (Decimal(result.premiumKopecks) * KOPECK).quantize(KOPECK)
    return checked_offer(premium, factors, result.calculationId, parse_timestamp(result.validUntil))


class PollApiAdapter:
    def __init__(self, insurer: InsurerInfo, session: aiohttp.ClientSession, base_url: str) -> None:
        self.insurer = insurer
        self._session = session
        self._url = f"{base_url.rstrip('/')}/poll/{insurer.code}/calculations"

    async def request_quote(self, request: QuoteRequest, *, timeout: float) -> InsurerAnswer:
        view = view_application(request.application)
        body = json.dumps(request_body(view, request.quote_id), ensure_ascii=False).encode()
        async with guarded(timeout):
            async with self._session.post(
                self._url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                status_code = response.status
                raw = await read_capped(response)
            check_status(status_code)
            submitted = parse_status(raw)
            if submitted.status != "PENDING":
                final = outcome(submitted)  # an insurer may answer at once
                assert final is not None
                return final
            if submitted.operationId is None or not _OPERATION_ID.fullmatch(submitted.operationId):
                raise PermanentInsurerError("submit answer has no usable operation id")
            return await self._poll(f"{self._url}/{submitted.operationId}", submitted.retryAfterMs)
        raise AssertionError("unreachable")  # guarded() re-raises; keeps type checkers content

    async def _poll(self, url: str, hint_ms: int | None) -> InsurerAnswer:
        own_delay = FIRST_POLL_S
        for _ in range(MAX_POLLS):
            if hint_ms is not None:
                wait = min(max(hint_ms / 1000.0, MIN_HINT_S), MAX_HINT_S)
            else:
                wait = own_delay
                own_delay = min(own_delay * POLL_GROWTH, MAX_POLL_S)
            await asyncio.sleep(wait)
            async with self._session.get(url) as response:
                status_code = response.status
                raw = await read_capped(response)
            if status_code == 404:
                # The insurer forgot the operation (restart or expiry): a fresh submit may work.
                raise TransientInsurerError("insurer lost the calculation")
            check_status(status_code)
            status = parse_status(raw)
            final = outcome(status)
            if final is not None:
                return final
            hint_ms = status.retryAfterMs
        raise TransientInsurerError("calculation never finished")
