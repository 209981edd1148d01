"""The payment provider's HTTP API (the system's side) and its payment page (people's side).

Create a payment (idempotent by order_id: a repeat with the same terms answers the same
payment with 200; other terms for the same order are 409 ``payment_exists``):

    POST /sandbox/payments
    {"order_id": "<the system's order id, 1..100 ASCII>",
     "amount": "9441.80"            (roubles, two places)  — or "amount_kopecks": 944180,
     "currency": "RUB",            (optional; only RUB)
     "description": "Полис ОСАГО, заказ 1234",  "insurer_name": "Северная страховая",
     "callback_url": "http://.../payments/callback", "return_url": "http://.../orders/...",
     "expires_at": "2026-12-01T12:30:00Z"}      (optional; in the future; then it cannot be paid)
    201 {"payment_id": "pay_<32 hex>", "payment_url": "<sandbox origin>/pay/pay_<32 hex>",
         "status": "pending", "order_id": "...", "amount": "9441.80", "amount_kopecks": 944180,
         "currency": "RUB", "created_at": "...Z", "expires_at": "...Z" | null,
         "finished_at": null, "event_id": null,
         "callback": {"attempts": 0, "delivered": false, "gave_up": false, "last_status": null}}
    422 {"error": {"code": "invalid_payment", "message": "...",
                   "fields": [{"path": "amount", "message": "..."}]}}

    GET /sandbox/payments/{payment_id}        200 the payment as above; 404 unknown
    POST /sandbox/payments/{payment_id}       {"outcome": "paid" | "failed"} (tests; as a click)
        200 the finished payment; 409 {"error": {"code": "payment_finished"}, "payment": {...}}
        when it was already finished with another outcome (the same outcome again is 200,
        and changes nothing); 409 {"error": {"code": "payment_expired"}, ...} past expires_at;
        422 naming "outcome"; 404 unknown

``status`` is pending, paid, failed, or expired (pending past ``expires_at``: the page says so
and takes no click; no callback is sent for it).

People open ``payment_url``: ``GET /pay/{payment_id}`` is an HTML page (Russian) with the
insurer, the description, the amount ("9 441,80 ₽") and two forms posting
``outcome=paid`` («Оплатить») or ``outcome=failed`` («Отказаться») to ``POST /pay/{id}``,
which answers 303 to the same page, now showing the result and a link to ``return_url``.
A click on a finished payment changes nothing.

When a payment finishes the provider POSTs to ``callback_url`` (Content-Type
application/json), the same body on every attempt:

    {"event_id": "<uuid, one per payment outcome>", "payment_id": "...", "order_id": "...",
     "amount": "9441.80", "currency": "RUB", "status": "paid" | "failed",
     "occurred_at": "...Z"}
    X-Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">

under ``OSAGO_PAYMENT_CALLBACK_SECRET``, signed afresh at each attempt (verify with
``shared.payments.signature.verify``; deduplicate by ``event_id``). Any 2xx ends the delivery;
anything else (or no answer within 10 s) is retried after 0.5, 1, 2, 4 … 30 s, 12 attempts
in all (``provider.RetryPolicy``). Redirects are not followed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.platform.clock import iso_utc

from ..behaviour import validation_messages
from .money import decimal_from_kopecks, kopecks_from_decimal
from .page import bad_request_page, not_found_page, payment_page
from .provider import Payment, PaymentExists, PaymentProvider, PaymentsFull

PAYMENTS_KEY = web.AppKey("payments", PaymentProvider)
MAX_URL_LENGTH = 2000
MAX_AMOUNT_KOPECKS = 100_000_000_00  # a hundred million roubles: far above any OSAGO premium


def _utc(value: str) -> datetime:
    if not value.endswith("Z"):
        raise ValueError('must be ISO-8601 UTC ending in "Z"')
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError('must be ISO-8601 UTC ending in "Z"') from None


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    return value


class CreatePayment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    order_id: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
    amount: str | None = Field(default=None, max_length=16)
    amount_kopecks: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_KOPECKS)
    currency: Literal["RUB"] = "RUB"
    description: str = Field(min_length=1, max_length=300)
    insurer_name: str = Field(min_length=1, max_length=200)
    callback_url: str = Field(max_length=MAX_URL_LENGTH)
    return_url: str = Field(max_length=MAX_URL_LENGTH)
    expires_at: str | None = Field(default=None, max_length=40)

    @field_validator("expires_at")
    @classmethod
    def _future_utc(cls, value: str | None) -> str | None:
        if value is not None:
            moment = _utc(value)
            if moment <= datetime.now(UTC):
                raise ValueError("expires_at must be in the future")
        return value

    @field_validator("callback_url", "return_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("amount")
    @classmethod
    def _decimal_amount(cls, value: str | None) -> str | None:
        if value is not None:
            kopecks = kopecks_from_decimal(value)
            if not 1 <= kopecks <= MAX_AMOUNT_KOPECKS:
                raise ValueError("amount must be positive and at most 100000000.00")
        return value

    @model_validator(mode="after")
    def _one_amount(self) -> CreatePayment:
        if (self.amount is None) == (self.amount_kopecks is None):
            raise ValueError("give exactly one of amount and amount_kopecks")
        return self

    def kopecks(self) -> int:
        if self.amount_kopecks is not None:
            return self.amount_kopecks
        assert self.amount is not None
        return kopecks_from_decimal(self.amount)


class OutcomeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    outcome: Literal["paid", "failed"]


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(), status=status, content_type="application/json"
    )


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return _json({"error": {"code": code, "message": message, **extra}}, status)


def describe(payment: Payment, origin: str) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "payment_url": f"{origin}/pay/{payment.payment_id}",
        "status": payment.shown_status(datetime.now(UTC)),
        "order_id": payment.order_id,
        "amount": decimal_from_kopecks(payment.amount_kopecks),
        "amount_kopecks": payment.amount_kopecks,
        "currency": payment.currency,
        "created_at": iso_utc(payment.created_at),
        "expires_at": iso_utc(payment.expires_at) if payment.expires_at else None,
        "finished_at": iso_utc(payment.finished_at) if payment.finished_at else None,
        "event_id": payment.event_id,
        "callback": {
            "attempts": payment.callback.attempts,
            "delivered": payment.callback.delivered,
            "gave_up": payment.callback.gave_up,
            "last_status": payment.callback.last_status,
        },
    }


def _origin(request: web.Request) -> str:
    """Where the caller reached the sandbox: the page's address is given on the same origin."""
    return str(request.url.origin())


async def create(request: web.Request) -> web.Response:
    provider = request.app[PAYMENTS_KEY]
    try:
        body = CreatePayment.model_validate_json(await request.read())
    except ValidationError as error:
        return _error(422, "invalid_payment", "invalid payment", fields=validation_messages(error))
    try:
        payment, new = provider.create(
            order_id=body.order_id,
            amount_kopecks=body.kopecks(),
            currency=body.currency,
            description=body.description,
            insurer_name=body.insurer_name,
            callback_url=body.callback_url,
            return_url=body.return_url,
            expires_at=_utc(body.expires_at) if body.expires_at else None,
        )
    except PaymentExists as exists:
        return _error(
            409,
            "payment_exists",
            "this order already has a payment with other terms",
            payment_id=exists.payment.payment_id,
        )
    except PaymentsFull:
        return _error(503, "full", "too many payments in memory; restart the sandbox")
    return _json(describe(payment, _origin(request)), 201 if new else 200)


def _payment(request: web.Request) -> Payment | None:
    return request.app[PAYMENTS_KEY].get(request.match_info["payment_id"])


async def show(request: web.Request) -> web.Response:
    payment = _payment(request)
    if payment is None:
        return _error(404, "not_found", "unknown payment")
    return _json(describe(payment, _origin(request)))


async def set_outcome(request: web.Request) -> web.Response:
    payment = _payment(request)
    if payment is None:
        return _error(404, "not_found", "unknown payment")
    try:
        body = OutcomeBody.model_validate_json(await request.read())
    except ValidationError as error:
        return _error(
            422, "invalid_outcome", 'body must be {"outcome": "paid" | "failed"}', fields=validation_messages(error)
        )
    request.app[PAYMENTS_KEY].finish(payment, body.outcome)
    described = describe(payment, _origin(request))
    if described["status"] == "expired":
        return _error(409, "payment_expired", "the payment expired unpaid", payment=described)
    if payment.status != body.outcome:
        return _error(409, "payment_finished", f"the payment is already {payment.status}", payment=described)
    return _json(described)


async def page(request: web.Request) -> web.Response:
    payment = _payment(request)
    return not_found_page() if payment is None else payment_page(payment)


async def click(request: web.Request) -> web.Response:
    payment = _payment(request)
    if payment is None:
        return not_found_page()
    form = await request.post()
    outcome = form.get("outcome")
    if outcome not in ("paid", "failed"):
        return bad_request_page()
    request.app[PAYMENTS_KEY].finish(payment, "paid" if outcome == "paid" else "failed")  # no-op if finished
    # Post/redirect/get: a reload of the result page does not post the form again.
    raise web.HTTPSeeOther(f"/pay/{payment.payment_id}")


def setup(app: web.Application, provider: PaymentProvider) -> None:
    app[PAYMENTS_KEY] = provider

    async def start(_: web.Application) -> None:
        await provider.start()

    async def stop(_: web.Application) -> None:
        await provider.stop()

    app.on_startup.append(start)
    # on_shutdown runs after the sandbox's own hook has set the closing event (registered first).
    app.on_shutdown.append(stop)
    router = app.router
    router.add_post("/sandbox/payments", create)
    router.add_get("/sandbox/payments/{payment_id}", show)
    router.add_post("/sandbox/payments/{payment_id}", set_outcome)
    router.add_get("/pay/{payment_id}", page)
    router.add_post("/pay/{payment_id}", click)
