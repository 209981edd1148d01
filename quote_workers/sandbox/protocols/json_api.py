"""Synchronous JSON insurer API: one POST, the price (or refusal) in the answer.

POST /json/{code}/v1/quotes
Idempotency-Key: <client key>
{"policy": {"start_date": "2026-12-01", "months": 12, "unlimited_drivers": false},
 "vehicle": {"category": "B", "make": "Toyota", "model": "Camry", "year": 2019,
             "power_hp": 181, "purpose": "personal"},
 "owner": {"region_code": "77", "city": "Москва", "document": null},
 "drivers": [{"birth_date": "1985-03-14", "experience_since": "2005-06-01",
              "licence": "7701123456"}]}

200 {"status": "priced", "quote": {"reference": "SEV-2026-1234567", "premium": "9441.80",
     "currency": "RUB", "coefficients": {"TB": "8665", ...}, "valid_until": "...Z",
     "tariff": "7204-U (from 2025-12-09)"}}
200 {"status": "refused", "refusal": {"code": "TAXI", "message": "..."}}
400 {"error": {"code": "bad_request", "message": "..."}}
503 {"error": {"code": "unavailable", "message": "..."}}
"""

from __future__ import annotations

import json
from datetime import date
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..model import Applicant, BadRequest, DriverIn, Priced, check_applicant
from ..state import SANDBOX_KEY
from .common import misbehave, read_body, utc_z

_STRICT = ConfigDict(extra="ignore", strict=True)


class _Policy(BaseModel):
    model_config = _STRICT
    start_date: date
    months: int
    unlimited_drivers: bool


class _Vehicle(BaseModel):
    model_config = _STRICT
    category: str = Field(max_length=8)
    make: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)
    year: int
    power_hp: int
    purpose: Literal["personal", "taxi"]


class _Owner(BaseModel):
    model_config = _STRICT
    region_code: str = Field(max_length=3)
    city: str = Field(max_length=100)
    document: str | None = Field(default=None, max_length=32)


class _Driver(BaseModel):
    model_config = _STRICT
    birth_date: date
    experience_since: date
    licence: str = Field(max_length=32)


class QuoteBody(BaseModel):
    model_config = _STRICT
    policy: _Policy
    vehicle: _Vehicle
    owner: _Owner
    drivers: list[_Driver] = Field(default_factory=list, max_length=5)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(), status=status, content_type="application/json"
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


def parse(raw: bytes) -> Applicant:
    try:
        body = QuoteBody.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None
    return check_applicant(
        Applicant(
            start_date=body.policy.start_date,
            months=body.policy.months,
            category=body.vehicle.category,
            year=body.vehicle.year,
            power_hp=body.vehicle.power_hp,
            purpose=body.vehicle.purpose,
            region_code=body.owner.region_code,
            city=body.owner.city,
            unlimited=body.policy.unlimited_drivers,
            owner_document=body.owner.document,
            drivers=tuple(DriverIn(d.birth_date, d.experience_since, d.licence) for d in body.drivers),
        )
    )


# A truncated answer, as from a proxy that gave up mid-body.
MALFORMED = b'{"status": "priced", "quote": {"reference": "X", "premium": 94'


async def quote(request: web.Request) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "json")
    try:
        applicant = parse(await read_body(request))
    except BadRequest as error:
        return _error(400, "bad_request", str(error))
    action = sandbox.behaviours[company.code].roll()
    fault = await misbehave(sandbox, request, action, company.code)
    if fault is not None:
        return fault
    if action.kind == "error":
        return _error(503, "unavailable", "Сервис расчёта временно недоступен")
    if action.kind == "malformed":
        return web.Response(body=MALFORMED, content_type="application/json")
    if action.kind == "refuse":
        return _json({"status": "refused", "refusal": {"code": "DECLINED", "message": action.reason}})
    answer = sandbox.quoter.quote(company, applicant, request.headers.get("Idempotency-Key"))
    if not isinstance(answer, Priced):
        return _json({"status": "refused", "refusal": {"code": answer.code, "message": answer.reason}})
    return _json(
        {
            "status": "priced",
            "quote": {
                "reference": answer.reference,
                "premium": answer.premium,
                "currency": "RUB",
                "coefficients": answer.coefficients,
                "valid_until": utc_z(answer.valid_until),
                "tariff": answer.tables_version,
            },
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/json/{code}/v1/quotes", quote)
