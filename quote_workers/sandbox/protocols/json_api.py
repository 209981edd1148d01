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

Final calculation (saves a numbered draft; idempotent by order_id: the same order id answers
the same draft, whatever the behaviour says since):

POST /json/{code}/v1/calculations
{<the quote body above>, "order_id": "<the system's order id, 1..100 ASCII>"}

200 {"status": "calculated", "draft": {"draft_id": "SEV-D-4F1A9C2B7E30", "order_id": "...",
     "premium": "9725.05", "quoted_premium": "9441.80", "currency": "RUB",
     "valid_until": "...Z"}}        premium differs from quoted_premium under price_change
200 {"status": "refused", "refusal": {"code": "DECLINED" | "TAXI" | ..., "message": "..."}}
400 bad body (as for quotes); 503 {"error": {"code": "unavailable", ...}}; hang: no answer.

Issuance (after payment):

POST /json/{code}/v1/policies
{"draft_id": "SEV-D-...", "order_id": "...", "payment_reference": "<provider's payment id>"}

201 {"status": "issued", "policy": {"series": "ХХХ", "number": "0123456789",
     "issued_at": "...Z", "starts_on": "2026-12-01", "ends_on": "2027-11-30",
     "premium": "9725.05", "draft_id": "...", "order_id": "...", "payment_reference": "..."}}
409 {"error": {"code": "already_issued", "message": "..."}, "policy": {<the first policy>}}
    a second issuance for the same order id, whatever its draft: nothing new is issued
404 {"error": {"code": "unknown_draft", ...}}      no such draft at this insurer
409 {"error": {"code": "draft_mismatch", ...}}     the draft belongs to another order
200 {"status": "refused", "refusal": {"code": "DECLINED", "message": "..."}}   refuse mode
400 bad body; 503 {"error": {"code": "unavailable", ...}}; hang: no answer.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..issuance import AlreadyIssued, Draft, DraftMismatch, Policy, UnknownDraft
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


_M = TypeVar("_M", bound=BaseModel)
_ORDER_ID = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")


class CalculationBody(QuoteBody):
    order_id: str = _ORDER_ID


class IssueBody(BaseModel):
    model_config = _STRICT
    draft_id: str = Field(min_length=1, max_length=100)
    order_id: str = _ORDER_ID
    payment_reference: str = Field(min_length=1, max_length=100)


def _validated(model: type[_M], raw: bytes) -> _M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None


def parse(raw: bytes) -> Applicant:
    return _applicant(_validated(QuoteBody, raw))


def _applicant(body: QuoteBody) -> Applicant:
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


def draft_json(draft: Draft) -> dict[str, str]:
    return {
        "draft_id": draft.draft_id,
        "order_id": draft.order_id,
        "premium": draft.premium,
        "quoted_premium": draft.quoted_premium,
        "currency": "RUB",
        "valid_until": utc_z(draft.valid_until),
    }


def policy_json(policy: Policy) -> dict[str, str]:
    return {
        "series": policy.series,
        "number": policy.number,
        "issued_at": utc_z(policy.issued_at),
        "starts_on": policy.starts_on.isoformat(),
        "ends_on": policy.ends_on.isoformat(),
        "premium": policy.premium,
        "draft_id": policy.draft_id,
        "order_id": policy.order_id,
        "payment_reference": policy.payment_reference,
    }


async def calculate(request: web.Request) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "json")
    try:
        body = _validated(CalculationBody, await read_body(request))
        applicant = _applicant(body)
    except BadRequest as error:
        return _error(400, "bad_request", str(error))
    behaviour = sandbox.behaviours[company.code].issue
    action = behaviour.roll()
    fault = await misbehave(sandbox, request, action, company.code)
    if fault is not None:
        return fault
    if action.kind == "error":
        return _error(503, "unavailable", "Сервис расчёта временно недоступен")
    if action.kind == "refuse":
        return _json({"status": "refused", "refusal": {"code": "DECLINED", "message": action.reason}})
    answer = sandbox.back_office.final_calculation(company, applicant, body.order_id, behaviour.price_factor())
    if not isinstance(answer, Draft):
        return _json({"status": "refused", "refusal": {"code": answer.code, "message": answer.reason}})
    return _json({"status": "calculated", "draft": draft_json(answer)})


async def issue(request: web.Request) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "json")
    try:
        body = _validated(IssueBody, await read_body(request))
    except BadRequest as error:
        return _error(400, "bad_request", str(error))
    action = sandbox.behaviours[company.code].issue.roll()
    fault = await misbehave(sandbox, request, action, company.code)
    if fault is not None:
        return fault
    if action.kind == "error":
        return _error(503, "unavailable", "Сервис выпуска полисов временно недоступен")
    if action.kind == "refuse":
        return _json({"status": "refused", "refusal": {"code": "DECLINED", "message": action.reason}})
    try:
        answer = sandbox.back_office.issue(company, body.draft_id, body.order_id, body.payment_reference)
    except UnknownDraft:
        return _error(404, "unknown_draft", "Черновик договора не найден")
    except DraftMismatch:
        return _error(409, "draft_mismatch", "Черновик оформлен на другой заказ")
    if isinstance(answer, AlreadyIssued):
        return _json(
            {
                "error": {"code": answer.code, "message": "По этому заказу полис уже выпущен"},
                "policy": policy_json(answer.policy),
            },
            409,
        )
    return _json({"status": "issued", "policy": policy_json(answer)}, 201)


def setup(app: web.Application) -> None:
    app.router.add_post("/json/{code}/v1/quotes", quote)
    app.router.add_post("/json/{code}/v1/calculations", calculate)
    app.router.add_post("/json/{code}/v1/policies", issue)
