"""Recording a quote's final outcome: exactly once, whoever gets there first.

Workers, the expired-jobs consumer and the deadline sweeper all end quotes through
``finalize_quote``. The application row is locked for the few milliseconds of the
transaction so that two quotes finishing at once cannot both miss that they were
the last, and the conditional update (``WHERE status = 'pending'``) makes every
later attempt a no-op.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from shared.amqp import ConfirmingPublisher
from shared.events import complete_event, quote_final_event
from shared.messages import event_message
from shared.models import Application, ApplicationStatus, Offer, Quote, QuoteStatus
from shared.timefmt import utc_now
from shared.topology import OFFERS_EXCHANGE


@dataclass(frozen=True, slots=True)
class OfferOutcome:
    premium: Decimal
    coefficients: dict[str, str]
    insurer_reference: str
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    status: QuoteStatus  # any final status but OFFERED
    reason: str

    def __post_init__(self) -> None:
        if self.status in (QuoteStatus.PENDING, QuoteStatus.OFFERED):
            raise ValueError(f"{self.status} is not a final non-offer status")
        if not self.reason:
            raise ValueError("a final status needs a reason")


Outcome = OfferOutcome | StatusOutcome


@dataclass(slots=True)
class FinalizeResult:
    """What the caller must publish (then mark published) after the commit."""

    recorded: bool  # False: the quote was already final (or unknown); nothing changed
    quote_id: uuid.UUID
    application_id: uuid.UUID | None
    events: list[dict[str, Any]] = field(default_factory=list)
    completed: bool = False


def to_kopecks(premium: Decimal) -> int:
    return int((premium * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def finalize_quote(
    quote_id: uuid.UUID, outcome: Outcome, *, attempts: int | None = None, last_error: str | None = None
) -> FinalizeResult:
    async with in_transaction() as conn:
        quote = await Quote.filter(id=quote_id).using_db(conn).first()
        if quote is None:
            return FinalizeResult(recorded=False, quote_id=quote_id, application_id=None)
        application = (
            await Application.filter(id=quote.application_id)
            .select_for_update()
            .using_db(conn)
            .get()
        )
        now = utc_now()
        status = QuoteStatus.OFFERED if isinstance(outcome, OfferOutcome) else outcome.status
        reason: str | None = None if isinstance(outcome, OfferOutcome) else outcome.reason
        updates: dict[str, Any] = {"status": status, "reason": reason, "finished_at": now}
        if attempts is not None:
            updates["attempts"] = attempts
        if last_error is not None:
            updates["last_error"] = last_error[:500]
        changed = await Quote.filter(id=quote_id, status=QuoteStatus.PENDING).using_db(conn).update(**updates)
        if not changed:
            return FinalizeResult(recorded=False, quote_id=quote_id, application_id=application.id)
        quote.status, quote.finished_at = status, now
        quote.reason = reason  # type: ignore[assignment]  # Tortoise types TextField(null=True) as str
        offer: Offer | None = None
        if isinstance(outcome, OfferOutcome):
            offer = await Offer.create(
                using_db=conn,
                id=uuid.uuid4(),
                quote_id=quote.id,
                application_id=application.id,
                insurer_code=quote.insurer_code,
                premium_kopecks=to_kopecks(outcome.premium),
                coefficients=outcome.coefficients,
                insurer_reference=outcome.insurer_reference,
                valid_until=outcome.valid_until,
            )
        result = FinalizeResult(
            recorded=True, quote_id=quote_id, application_id=application.id, events=[quote_final_event(quote, offer)]
        )
        statuses = await quote_statuses(application.id, conn)
        if QuoteStatus.PENDING not in statuses:
            await (
                Application.filter(id=application.id)
                .using_db(conn)
                .update(status=ApplicationStatus.COMPLETE, completed_at=now)
            )
            result.completed = True
            result.events.append(complete_event(application.id, statuses))
        return result


async def quote_statuses(application_id: uuid.UUID, conn: BaseDBAsyncClient | None = None) -> list[QuoteStatus]:
    rows = await Quote.filter(application_id=application_id).using_db(conn).values_list("status", flat=True)
    return [QuoteStatus(str(status)) for status in rows]


async def mark_events_published(result: FinalizeResult) -> None:
    await Quote.filter(id=result.quote_id).update(event_published=True)
    if result.completed and result.application_id is not None:
        await Application.filter(id=result.application_id).update(complete_event_published=True)


async def publish_outcome(publisher: ConfirmingPublisher, result: FinalizeResult) -> bool:
    """Publish the result's events; mark them only when every one was confirmed.

    Unconfirmed events stay unmarked for the outbox relay, so a failure here delays
    an event but never loses it.
    """
    if not result.events:
        return True
    confirmed = await publisher.publish_many(OFFERS_EXCHANGE, [(event_message(event), "") for event in result.events])
    if not all(confirmed):
        return False
    await mark_events_published(result)
    return True
