"""Submit-then-poll insurer API: the calculation runs in the background; the client polls.

    POST /poll/{code}/calculations
    {"clientRequestId": "<idempotency key>", "startDate": "2026-12-01", "termMonths": 12,
     "car": {"category": "B", "brand": "Toyota", "model": "Camry", "manufactureYear": 2019,
             "enginePowerHp": 181, "usage": "PERSONAL"},
     "insurant": {"regionCode": "77", "city": "Москва", "passport": null},
     "driversRestricted": true,
     "drivers": [{"birthDate": "1985-03-14", "drivingSince": "2005-06-01",
                  "licenseNumber": "7701123456"}]}
    202 {"operationId": "...", "status": "PENDING", "retryAfterMs": 200}   Location: .../{id}

    GET /poll/{code}/calculations/{operationId}
    200 {"operationId": "...", "status": "PENDING", "retryAfterMs": 150}
    200 {"operationId": "...", "status": "DONE", "result": {"calculationId": "VLG-2026-1234567",
         "premiumKopecks": 944180, "currency": "RUB",
         "factors": [{"code": "TB", "value": "8665"}, ...],
         "validUntil": "2026-12-04T15:00:00+03:00"}}
    200 {"operationId": "...", "status": "REJECTED", "rejection": {"code": "...", "message": "..."}}
    404 unknown or expired operation; 400 bad submit; 502 calculation backend failed.

The behaviour is rolled at submit; the latency is the time until the operation is ready, and a
fault (error, hang, malformed, reset) happens on the first poll after that.

Final calculation (the issuance behaviour applies; idempotent by orderId: the same orderId
answers the same draft):

    POST /poll/{code}/final-calculations
    {<the calculation body above>, "orderId": "<the system's order id, 1..100 ASCII>"}
    202 {"operationId": "...", "status": "PENDING", "retryAfterMs": 200}   Location: .../{id}

    GET /poll/{code}/final-calculations/{operationId}
    200 PENDING as above
    200 {"operationId": "...", "status": "DONE", "result": {"draftId": "VLG-D-4F1A9C2B7E30",
         "orderId": "...", "premiumKopecks": 972505, "quotedPremiumKopecks": 944180,
         "currency": "RUB", "validUntil": "2026-12-02T15:00:00+03:00"}}
    200 {"operationId": "...", "status": "REJECTED", "rejection": {"code": "DECLINED", "message": "..."}}
    404 unknown or expired operation; 400 bad submit; 502 backend failed; hang: no answer.

Issuance:

    POST /poll/{code}/issuances
    {"draftId": "VLG-D-...", "orderId": "...", "paymentReference": "<provider's payment id>"}
    202 {"operationId": "...", "status": "PENDING", "retryAfterMs": 200}   Location: .../{id}
    409 {"error": {"code": "already_issued", "message": "..."}, "policy": {<the first policy>}}
        at once, for a second issuance of the same orderId: nothing new is issued
    404 {"error": {"code": "unknown_draft", ...}}; 409 {"error": {"code": "draft_mismatch", ...}}
    400 bad body

    GET /poll/{code}/issuances/{operationId}
    200 {"operationId": "...", "status": "DONE", "policy": {"series": "ТТТ",
         "number": "0123456789", "issuedAt": "2026-12-01T12:00:00+03:00",
         "startsOn": "2026-12-02", "endsOn": "2027-12-01", "premiumKopecks": 944180,
         "draftId": "...", "orderId": "...", "paymentReference": "..."}}
    200 REJECTED (refuse mode); 502 (error mode, nothing issued); hang: no answer.

With the ``ok`` mode the policy is issued at submit (a second submit is refused at once);
it is shown when the operation is ready. ``error``, ``hang`` and ``refuse`` issue nothing.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta, timezone
from decimal import Decimal
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..faults import hang, reset
from ..issuance import AlreadyIssued, Draft, DraftMismatch, Policy, UnknownDraft
from ..model import Applicant, BadRequest, DriverIn, Priced, Refused, check_applicant
from ..operations import Operation
from ..state import SANDBOX_KEY
from .common import read_body

# Insurers in Russia report Moscow time.
_MSK = timezone(timedelta(hours=3))
_STRICT = ConfigDict(extra="ignore", strict=True)


class _Car(BaseModel):
    model_config = _STRICT
    category: str = Field(max_length=8)
    brand: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)
    manufactureYear: int
    enginePowerHp: int
    usage: Literal["PERSONAL", "TAXI"]


class _Insurant(BaseModel):
    model_config = _STRICT
    regionCode: str = Field(max_length=3)
    city: str = Field(max_length=100)
    passport: str | None = Field(default=None, max_length=32)


class _Driver(BaseModel):
    model_config = _STRICT
    birthDate: date
    drivingSince: date
    licenseNumber: str = Field(max_length=32)


class SubmitBody(BaseModel):
    model_config = _STRICT
    clientRequestId: str | None = Field(default=None, max_length=100)
    startDate: date
    termMonths: int
    car: _Car
    insurant: _Insurant
    driversRestricted: bool
    drivers: list[_Driver] = Field(default_factory=list, max_length=5)


class FinalCalculationBody(SubmitBody):
    orderId: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")


class IssuanceBody(BaseModel):
    model_config = _STRICT
    draftId: str = Field(min_length=1, max_length=100)
    orderId: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
    paymentReference: str = Field(min_length=1, max_length=100)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


_M = TypeVar("_M", bound=BaseModel)


def _validated(model: type[_M], raw: bytes) -> _M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None


def parse(raw: bytes) -> tuple[Applicant, str | None]:
    body = _validated(SubmitBody, raw)
    return _applicant(body), body.clientRequestId


def _applicant(body: SubmitBody) -> Applicant:
    return check_applicant(
        Applicant(
            start_date=body.startDate,
            months=body.termMonths,
            category=body.car.category,
            year=body.car.manufactureYear,
            power_hp=body.car.enginePowerHp,
            purpose="taxi" if body.car.usage == "TAXI" else "personal",
            region_code=body.insurant.regionCode,
            city=body.insurant.city,
            unlimited=not body.driversRestricted,
            owner_document=body.insurant.passport,
            drivers=tuple(DriverIn(d.birthDate, d.drivingSince, d.licenseNumber) for d in body.drivers),
        )
    )


def _retry_after_ms(remaining_s: float) -> int:
    return int(min(max(remaining_s * 1000, 50), 1000))


async def submit(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "poll")
    try:
        applicant, key = parse(await read_body(request))
    except BadRequest as error:
        return _json({"error": {"code": "VALIDATION", "message": str(error)}}, 400)
    action = sandbox.behaviours[company.code].roll()
    answer: Priced | Refused | None = None
    if action.kind == "ok":
        answer = sandbox.quoter.quote(company, applicant, key)
    elif action.kind == "refuse":
        answer = Refused("DECLINED", action.reason)
    now = time.monotonic()
    op_id = sandbox.operations.add(Operation(company.code, now, now + action.delay_s, action, answer))
    location = f"/poll/{company.code}/calculations/{op_id}"
    return _json(
        {"operationId": op_id, "status": "PENDING", "retryAfterMs": _retry_after_ms(action.delay_s)},
        202,
        {"Location": location},
    )


# A gateway page where JSON was promised.
MALFORMED = b"<html><head><title>200 OK</title></head><body>calculation ready</body"


async def status(request: web.Request) -> web.StreamResponse:
    return await _status(request, "quote")


async def _status(request: web.Request, kind: str) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "poll")
    op_id = request.match_info["op_id"]
    now = time.monotonic()
    operation = sandbox.operations.get(op_id, now)
    if operation is None or operation.company != company.code or operation.kind != kind:
        return _json({"error": {"code": "NOT_FOUND", "message": "unknown or expired operation"}}, 404)
    if now < operation.ready_at:
        return _json(
            {"operationId": op_id, "status": "PENDING", "retryAfterMs": _retry_after_ms(operation.ready_at - now)}
        )
    kind = operation.action.kind
    if kind == "hang":
        return await hang(sandbox, request)
    if kind == "reset":
        return reset(request)
    if kind == "error":
        return _json({"error": {"code": "BACKEND", "message": "calculation backend failed"}}, 502)
    if kind == "malformed":
        return web.Response(body=MALFORMED, content_type="application/json")
    answer = operation.answer
    if isinstance(answer, Draft):
        return _json({"operationId": op_id, "status": "DONE", "result": _draft_json(answer)})
    if isinstance(answer, Policy):
        return _json({"operationId": op_id, "status": "DONE", "policy": _policy_json(answer)})
    if isinstance(answer, Priced):
        return _json(
            {
                "operationId": op_id,
                "status": "DONE",
                "result": {
                    "calculationId": answer.reference,
                    "premiumKopecks": int(Decimal(answer.premium) * 100),
                    "currency": "RUB",
                    "factors": [{"code": code, "value": value} for code, value in answer.coefficients.items()],
                    "validUntil": answer.valid_until.astimezone(_MSK).isoformat(),
                },
            }
        )
    assert answer is not None  # ok and refuse always carry an answer
    return _json(
        {"operationId": op_id, "status": "REJECTED", "rejection": {"code": answer.code, "message": answer.reason}}
    )


def _kopecks(roubles: str) -> int:
    return int(Decimal(roubles) * 100)


def _draft_json(draft: Draft) -> dict[str, object]:
    return {
        "draftId": draft.draft_id,
        "orderId": draft.order_id,
        "premiumKopecks": _kopecks(draft.premium),
        "quotedPremiumKopecks": _kopecks(draft.quoted_premium),
        "currency": "RUB",
        "validUntil": draft.valid_until.astimezone(_MSK).isoformat(),
    }


def _policy_json(policy: Policy) -> dict[str, object]:
    return {
        "series": policy.series,
        "number": policy.number,
        "issuedAt": policy.issued_at.astimezone(_MSK).isoformat(),
        "startsOn": policy.starts_on.isoformat(),
        "endsOn": policy.ends_on.isoformat(),
        "premiumKopecks": _kopecks(policy.premium),
        "draftId": policy.draft_id,
        "orderId": policy.order_id,
        "paymentReference": policy.payment_reference,
    }


def _accepted(sandbox_code: str, path: str, op_id: str, delay_s: float) -> web.Response:
    return _json(
        {"operationId": op_id, "status": "PENDING", "retryAfterMs": _retry_after_ms(delay_s)},
        202,
        {"Location": f"/poll/{sandbox_code}/{path}/{op_id}"},
    )


async def submit_final_calculation(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "poll")
    try:
        body = _validated(FinalCalculationBody, await read_body(request))
        applicant = _applicant(body)
    except BadRequest as error:
        return _json({"error": {"code": "VALIDATION", "message": str(error)}}, 400)
    behaviour = sandbox.behaviours[company.code].issue
    action = behaviour.roll()
    answer: Draft | Refused | None = None
    if action.kind == "ok":
        answer = sandbox.back_office.final_calculation(company, applicant, body.orderId, behaviour.price_factor())
    elif action.kind == "refuse":
        answer = Refused("DECLINED", action.reason)
    now = time.monotonic()
    operation = Operation(company.code, now, now + action.delay_s, action, answer, "final_calculation")
    return _accepted(company.code, "final-calculations", sandbox.operations.add(operation), action.delay_s)


async def submit_issuance(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "poll")
    try:
        body = _validated(IssuanceBody, await read_body(request))
    except BadRequest as error:
        return _json({"error": {"code": "VALIDATION", "message": str(error)}}, 400)
    action = sandbox.behaviours[company.code].issue.roll()
    answer: Policy | Refused | None = None
    if action.kind == "ok":
        try:
            issued = sandbox.back_office.issue(company, body.draftId, body.orderId, body.paymentReference)
        except UnknownDraft as error:
            return _json({"error": {"code": error.code, "message": "draft not found"}}, 404)
        except DraftMismatch as error:
            return _json({"error": {"code": error.code, "message": "draft belongs to another order"}}, 409)
        if isinstance(issued, AlreadyIssued):
            return _json(
                {
                    "error": {"code": issued.code, "message": "a policy is already issued for this order"},
                    "policy": _policy_json(issued.policy),
                },
                409,
            )
        answer = issued
    elif action.kind == "refuse":
        answer = Refused("DECLINED", action.reason)
    now = time.monotonic()
    operation = Operation(company.code, now, now + action.delay_s, action, answer, "issuance")
    return _accepted(company.code, "issuances", sandbox.operations.add(operation), action.delay_s)


async def final_calculation_status(request: web.Request) -> web.StreamResponse:
    return await _status(request, "final_calculation")


async def issuance_status(request: web.Request) -> web.StreamResponse:
    return await _status(request, "issuance")


def setup(app: web.Application) -> None:
    app.router.add_post("/poll/{code}/calculations", submit)
    app.router.add_get("/poll/{code}/calculations/{op_id}", status)
    app.router.add_post("/poll/{code}/final-calculations", submit_final_calculation)
    app.router.add_get("/poll/{code}/final-calculations/{op_id}", final_calculation_status)
    app.router.add_post("/poll/{code}/issuances", submit_issuance)
    app.router.add_get("/poll/{code}/issuances/{op_id}", issuance_status)
