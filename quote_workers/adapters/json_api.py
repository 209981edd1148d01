"""Adapter for insurers with a synchronous JSON API (the sandbox's ``/json/{code}/v1/quotes``).

One POST carries the application and the idempotency key (our quote id); the answer is either
a priced quote with its coefficient breakdown or a refusal with a reason.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.quoting.insurers import InsurerInfo

from ._common import (
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
    declined,
)

_STRICT = ConfigDict(strict=True, extra="ignore")


class _Quote(BaseModel):
    model_config = _STRICT
    reference: str = Field(max_length=64)
    premium: str = Field(max_length=16)
    currency: Literal["RUB"]
    coefficients: dict[str, str] = Field(max_length=16)
    valid_until: str = Field(max_length=40)


class _Refusal(BaseModel):
    model_config = _STRICT
    code: str | None = Field(default=None, max_length=64)
    message: str = Field(max_length=2000)


class _Answer(BaseModel):
    model_config = _STRICT
    status: Literal["priced", "refused"]
    quote: _Quote | None = None
    refusal: _Refusal | None = None


def request_body(app: ApplicationView) -> dict[str, Any]:
    return {
        "policy": {"start_date": app.start_date, "months": app.months, "unlimited_drivers": app.unlimited},
        "vehicle": {
            "category": app.category,
            "make": app.make,
            "model": app.model,
            "year": app.year,
            "power_hp": app.power_hp,
            "purpose": app.purpose,
        },
        "owner": {"region_code": app.region_code, "city": app.city, "document": app.owner_passport},
        "drivers": [
            {"birth_date": d.birth_date, "experience_since": d.experience_since, "licence": d.licence}
            for d in app.drivers
        ],
    }


def interpret(raw: bytes) -> InsurerAnswer:
    """A 2xx body → outcome; unparseable is Transient, a wrong shape is a contract break."""
    try:
        answer = _Answer.model_validate_json(raw)
    except ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors(include_input=False)):
            raise MalformedAnswerError("insurer answer is not valid JSON") from None
        raise PermanentInsurerError("insurer answer does not match the contract") from None
    if answer.status == "refused":
        if answer.refusal is None:
            raise PermanentInsurerError("refusal without a reason object")
        return declined(clean_reason(answer.refusal.message))
    quote = answer.quote
    if quote is None:
        raise PermanentInsurerError("priced answer without a quote")
    return checked_offer(quote.premium, quote.coefficients, quote.reference, parse_timestamp(quote.valid_until))


class JsonApiAdapter:
    def __init__(self, insurer: InsurerInfo, session: aiohttp.ClientSession, base_url: str) -> None:
        self.insurer = insurer
        self._session = session
        self._url = f"{base_url.rstrip('/')}/json/{insurer.code}/v1/quotes"

    async def request_quote(self, request: QuoteRequest, *, timeout: float) -> InsurerAnswer:
        body = json.dumps(request_body(view_application(request.application)), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": request.quote_id}
        async with guarded(timeout):
            async with self._session.post(self._url, data=body, headers=headers) as response:
                status = response.status
                raw = await read_capped(response)
        check_status(status)
        return interpret(raw)
