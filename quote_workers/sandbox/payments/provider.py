"""Payments in memory and the delivery of their signed callbacks.

A payment is ``pending`` until its page (or the test API) finishes it as ``paid`` or
``failed``; it finishes once, and a later click changes nothing. A pending payment past its
``expires_at`` is ``expired``: it can no longer be finished, and no callback is sent (the
system that set the expiry knows it). Finishing starts one
background delivery: the callback body is fixed (one ``event_id``), each attempt is signed
afresh (``shared.payments.signature``), and attempts are retried with exponential backoff
until the receiver answers 2xx or the attempts run out. Deliveries stop at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import aiohttp

from shared.payments.signature import HEADER, sign
from shared.platform.clock import iso_utc
from shared.platform.tasks import BackgroundTasks

from .money import decimal_from_kopecks

log = logging.getLogger(__name__)

Status = Literal["pending", "paid", "failed"]
Shown = Literal["pending", "paid", "failed", "expired"]
Outcome = Literal["paid", "failed"]
MAX_PAYMENTS = 200_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n waits first_delay_s · 2^(n-1), at most max_delay_s: 0.5, 1, 2 … 30 s; with
    12 attempts the provider gives up about 3 minutes after the outcome."""

    max_attempts: int = 12
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    attempt_timeout_s: float = 10.0

    def delay_after(self, attempt: int) -> float:
        return float(min(self.first_delay_s * 2 ** (attempt - 1), self.max_delay_s))


@dataclass(slots=True)
class Callback:
    attempts: int = 0
    delivered: bool = False
    gave_up: bool = False
    last_status: int | None = None  # the receiver's last HTTP status; None before or on no answer


@dataclass(slots=True)
class Payment:
    payment_id: str
    order_id: str
    amount_kopecks: int
    currency: str
    description: str
    insurer_name: str
    callback_url: str
    return_url: str
    created_at: datetime
    expires_at: datetime | None = None
    status: Status = "pending"
    finished_at: datetime | None = None
    event_id: str | None = None
    callback: Callback = field(default_factory=Callback)

    def same_request(self, other: Payment) -> bool:
        """A repeated creation (the system retrying after a lost answer) asks for the same payment."""
        return (
            self.amount_kopecks,
            self.currency,
            self.description,
            self.insurer_name,
            self.callback_url,
            self.return_url,
            self.expires_at,
        ) == (
            other.amount_kopecks,
            other.currency,
            other.description,
            other.insurer_name,
            other.callback_url,
            other.return_url,
            other.expires_at,
        )

    def shown_status(self, now: datetime) -> Shown:
        if self.status == "pending" and self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return self.status

    def callback_body(self) -> bytes:
        assert self.event_id is not None and self.finished_at is not None  # finished payments only
        return json.dumps(
            {
                "event_id": self.event_id,
                "payment_id": self.payment_id,
                "order_id": self.order_id,
                "amount": decimal_from_kopecks(self.amount_kopecks),
                "currency": self.currency,
                "status": self.status,
                "occurred_at": iso_utc(self.finished_at),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()


class PaymentProvider:
    def __init__(self, secret: str, closing: asyncio.Event, retry: RetryPolicy | None = None) -> None:
        if not secret:
            raise ValueError("the callback secret must not be empty")
        self._secret = secret
        self._closing = closing
        self.retry = retry or RetryPolicy()
        self._payments: dict[str, Payment] = {}
        self._by_order: dict[str, str] = {}
        self._deliveries = BackgroundTasks("payment callbacks")
        self._session: aiohttp.ClientSession | None = None
        self.callbacks_delivered = 0
        self.callback_attempts = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self, grace_s: float = 1.0) -> None:
        """Deliveries still running after ``grace_s`` are cancelled (the closing event already
        woke the ones waiting between attempts)."""
        await self._deliveries.wait(grace_s)
        if self._session is not None:
            await self._session.close()

    def create(
        self,
        *,
        order_id: str,
        amount_kopecks: int,
        currency: str,
        description: str,
        insurer_name: str,
        callback_url: str,
        return_url: str,
        expires_at: datetime | None = None,
    ) -> tuple[Payment, bool]:
        """The payment and whether it is new; a repeat for an order returns the first one.

        Raises ``PaymentExists`` when the order already has a payment with other terms.
        """
        candidate = Payment(
            payment_id="pay_" + secrets.token_hex(16),
            order_id=order_id,
            amount_kopecks=amount_kopecks,
            currency=currency,
            description=description,
            insurer_name=insurer_name,
            callback_url=callback_url,
            return_url=return_url,
            created_at=datetime.now(UTC),
            expires_at=expires_at,
        )
        known_id = self._by_order.get(order_id)
        if known_id is not None:
            known = self._payments[known_id]
            if not known.same_request(candidate):
                raise PaymentExists(known)
            return known, False
        if len(self._payments) >= MAX_PAYMENTS:
            raise PaymentsFull()
        self._payments[candidate.payment_id] = candidate
        self._by_order[order_id] = candidate.payment_id
        return candidate, True

    def get(self, payment_id: str) -> Payment | None:
        return self._payments.get(payment_id)

    def finish(self, payment: Payment, outcome: Outcome) -> bool:
        """Finish a pending payment and start its callback; False (nothing changes) if finished
        or expired."""
        now = datetime.now(UTC)
        if payment.shown_status(now) != "pending":
            return False
        payment.status = outcome
        payment.finished_at = now
        payment.event_id = str(uuid.uuid4())
        self._deliveries.start(self._deliver(payment))
        return True

    async def _deliver(self, payment: Payment) -> None:
        assert self._session is not None, "start() before finishing payments"
        body = payment.callback_body()
        timeout = aiohttp.ClientTimeout(total=self.retry.attempt_timeout_s)
        for attempt in range(1, self.retry.max_attempts + 1):
            payment.callback.attempts = attempt
            self.callback_attempts += 1
            headers = {"Content-Type": "application/json", HEADER: sign(body, self._secret, int(time.time()))}
            try:
                async with self._session.post(
                    payment.callback_url, data=body, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    payment.callback.last_status = response.status
                    await response.read()
                    if 200 <= response.status < 300:
                        payment.callback.delivered = True
                        self.callbacks_delivered += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                payment.callback.last_status = None
            if attempt == self.retry.max_attempts or await self._closed_within(self.retry.delay_after(attempt)):
                break
        payment.callback.gave_up = not self._closing.is_set()
        log.warning(
            "payment callback given up" if payment.callback.gave_up else "payment callback stopped at shutdown",
            extra={"event_id": payment.event_id, "tries": payment.callback.attempts},
        )

    async def _closed_within(self, delay_s: float) -> bool:
        try:
            await asyncio.wait_for(self._closing.wait(), delay_s)
        except TimeoutError:
            return False
        return True

    def stats(self) -> dict[str, int]:
        return {
            "payments": len(self._payments),
            "payments_finished": sum(1 for p in self._payments.values() if p.status != "pending"),
            "callback_attempts": self.callback_attempts,
            "callbacks_delivered": self.callbacks_delivered,
            "callbacks_in_flight": len(self._deliveries),
        }


class PaymentExists(Exception):
    """The order already has a payment with other terms (amount, URLs, description)."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(payment.payment_id)
        self.payment = payment


class PaymentsFull(Exception):
    """The in-memory register is full (a runaway client); restart the sandbox."""
