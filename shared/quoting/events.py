"""The events of API.md, built from stored rows so that a replay equals the live stream.

Event ids are derived from what they describe (one final event per quote, one
``complete`` per application), so a redelivered job or a re-published outbox row
produces the same id and clients drop the copy.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import aio_pika

from shared.models import FINAL_QUOTE_STATUSES, Application, Offer, Quote, QuoteStatus
from shared.platform.amqp import JSON_CONTENT_TYPE
from shared.platform.clock import iso_utc

_EVENT_NAMESPACE = uuid.UUID("5b0f7a8e-4d1c-4e55-9a57-2f4f0c1f6a10")


def quote_event_id(quote_id: uuid.UUID | str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"quote-final:{quote_id}"))


def complete_event_id(application_id: uuid.UUID | str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"complete:{application_id}"))


def format_kopecks(kopecks: int) -> str:
    return f"{Decimal(kopecks) / 100:.2f}"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event and the outbox flag it clears once the broker confirms it."""

    body: dict[str, Any]
    application_id: uuid.UUID
    quote_id: uuid.UUID | None = None  # the quote's final event; None: the application's `complete`


def offer_body(
    offer_id: uuid.UUID, premium_kopecks: int, coefficients: dict[str, str], valid_until: datetime, reference: str
) -> dict[str, Any]:
    return {
        "id": str(offer_id),
        "premium": format_kopecks(premium_kopecks),
        "currency": "RUB",
        "coefficients": coefficients,
        "valid_until": iso_utc(valid_until),
        "insurer_reference": reference,
    }


def stored_offer_body(offer: Offer) -> dict[str, Any]:
    return offer_body(offer.id, offer.premium_kopecks, offer.coefficients, offer.valid_until, offer.insurer_reference)


def final_event(
    quote_id: uuid.UUID,
    application_id: uuid.UUID,
    insurer: dict[str, str],
    status: QuoteStatus,
    reason: str | None,
    offer: dict[str, Any] | None,
) -> dict[str, Any]:
    """A quote's final event: ``offer`` with its body, or ``quote_status`` with the reason."""
    base = {"event_id": quote_event_id(quote_id), "application_id": str(application_id)}
    if status is QuoteStatus.OFFERED and offer is not None:
        return {"type": "offer", **base, "insurer": insurer, "offer": offer}
    return {"type": "quote_status", **base, "insurer": insurer, "status": status.value, "reason": reason}


def quote_final_event(quote: Quote, offer: Offer | None) -> dict[str, Any]:
    """The final event of a stored quote (replays and the outbox relay)."""
    insurer = {"code": quote.insurer_code, "name": quote.insurer_name}
    body = None if offer is None else stored_offer_body(offer)
    return final_event(quote.id, quote.application_id, insurer, quote.status, quote.reason, body)


def status_counts(statuses: list[QuoteStatus]) -> dict[str, int]:
    counted = Counter(statuses)
    return {status.value: counted.get(status, 0) for status in FINAL_QUOTE_STATUSES}


def complete_event(application_id: uuid.UUID | str, statuses: list[QuoteStatus]) -> dict[str, Any]:
    counts = status_counts(statuses)
    return {
        "type": "complete",
        "event_id": complete_event_id(application_id),
        "application_id": str(application_id),
        "offers": counts[QuoteStatus.OFFERED.value],
        "statuses": counts,
    }


def stored_events(application: Application, quotes: list[Quote], offers: list[Offer]) -> list[dict[str, Any]]:
    """Every event already stored for the application, in the order they happened."""
    offers_by_quote = {offer.quote_id: offer for offer in offers}
    final = sorted(
        (q for q in quotes if q.status is not QuoteStatus.PENDING and q.finished_at is not None),
        key=lambda q: (q.finished_at, q.insurer_code),
    )
    events = [quote_final_event(q, offers_by_quote.get(q.id)) for q in final]
    if application.status == "complete":
        events.append(complete_event(application.id, [q.status for q in quotes]))
    return events


def event_message(event: dict[str, Any]) -> aio_pika.Message:
    """An event for the offers fanout; routing metadata lets consumers route without parsing."""
    return aio_pika.Message(
        json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type=JSON_CONTENT_TYPE,
        # Events are hints backed by the database: a lost one is replayed from there.
        delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        message_id=event["event_id"],
        type=event["type"],
        headers={"application_id": event["application_id"]},
    )
