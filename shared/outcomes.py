"""Recording a quote's final outcome: exactly once, whoever gets there first.

Workers, the expired-jobs consumer and the deadline sweeper all end quotes through
``finalize_quote``. The conditional update (``WHERE status = 'pending'``) makes every
later attempt a no-op, and the application's ``pending_quotes`` counter, decremented
under its row lock, tells exactly one of them that it finished the application.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from shared.amqp import ConfirmingPublisher
from shared.events import complete_event, quote_final_event
from shared.messages import event_message
from shared.models import Offer, Quote, QuoteStatus
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


# One statement, so one round trip and no transaction around it (the hot path of every
# worker; the ORM took six round trips): end the quote if still pending, store the offer,
# and count it off the application. The counter's UPDATE waits for the application row's
# lock and then reads its latest committed value, so of two quotes finishing at once
# exactly one sees the count reach zero and completes the application.
_FINALIZE = """
WITH ended AS (
    UPDATE quote
    SET status = $2::varchar, reason = $3, finished_at = $4,
        attempts = coalesce($5, attempts), last_error = coalesce($6, last_error)
    WHERE id = $1 AND status = 'pending'
    RETURNING application_id, insurer_code, insurer_name
), offer AS (
    INSERT INTO offer (id, quote_id, application_id, insurer_code, premium_kopecks, coefficients,
                       insurer_reference, valid_until, created_at)
    SELECT $7, $1, ended.application_id, ended.insurer_code, $8, $9::jsonb, $10, $11, $4
    FROM ended WHERE $2::varchar = 'offered'
), counted AS (
    UPDATE application a
    SET pending_quotes = a.pending_quotes - 1,
        status = CASE WHEN a.pending_quotes = 1 THEN 'complete' ELSE a.status END,
        completed_at = CASE WHEN a.pending_quotes = 1 THEN $4 ELSE a.completed_at END
    FROM ended WHERE a.id = ended.application_id
    RETURNING a.pending_quotes
)
SELECT ended.application_id, ended.insurer_code, ended.insurer_name,
       coalesce((SELECT pending_quotes = 0 FROM counted), false) AS completed
FROM ended
"""


async def finalize_quote(
    quote_id: uuid.UUID, outcome: Outcome, *, attempts: int | None = None, last_error: str | None = None
) -> FinalizeResult:
    status = QuoteStatus.OFFERED if isinstance(outcome, OfferOutcome) else outcome.status
    reason = None if isinstance(outcome, OfferOutcome) else outcome.reason
    now = utc_now()
    offer_id = uuid.uuid4()
    connection = Tortoise.get_connection("default")
    _, rows = await connection.execute_query(
        _FINALIZE,
        [
            quote_id,
            status.value,
            reason,
            now,
            attempts,
            None if last_error is None else last_error[:500],
            offer_id,
            to_kopecks(outcome.premium) if isinstance(outcome, OfferOutcome) else None,
            json.dumps(outcome.coefficients) if isinstance(outcome, OfferOutcome) else None,
            outcome.insurer_reference if isinstance(outcome, OfferOutcome) else None,
            outcome.valid_until if isinstance(outcome, OfferOutcome) else None,
        ],
    )
    if not rows:
        return FinalizeResult(recorded=False, quote_id=quote_id, application_id=None)
    row = rows[0]
    application_id: uuid.UUID = row["application_id"]
    quote = Quote(
        id=quote_id,
        application_id=application_id,
        insurer_code=row["insurer_code"],
        insurer_name=row["insurer_name"],
        status=status,
        reason=reason,
        finished_at=now,
    )
    offer = (
        Offer(
            id=offer_id,
            quote_id=quote_id,
            application_id=application_id,
            insurer_code=row["insurer_code"],
            premium_kopecks=to_kopecks(outcome.premium),
            coefficients=outcome.coefficients,
            insurer_reference=outcome.insurer_reference,
            valid_until=outcome.valid_until,
        )
        if isinstance(outcome, OfferOutcome)
        else None
    )
    result = FinalizeResult(
        recorded=True, quote_id=quote_id, application_id=application_id, events=[quote_final_event(quote, offer)]
    )
    if row["completed"]:
        # Whoever took the count to zero committed after every other quote: all are final now.
        result.completed = True
        result.events.append(complete_event(application_id, await quote_statuses(application_id)))
    return result


async def quote_statuses(application_id: uuid.UUID, conn: BaseDBAsyncClient | None = None) -> list[QuoteStatus]:
    rows = await Quote.filter(application_id=application_id).using_db(conn).values_list("status", flat=True)
    return [QuoteStatus(str(status)) for status in rows]


_MARK_PUBLISHED = """
WITH quote_marked AS (UPDATE quote SET event_published = true WHERE id = $1)
UPDATE application SET complete_event_published = true WHERE id = $2
"""


async def mark_events_published(result: FinalizeResult) -> None:
    """One round trip for the quote's event and, when it completed, the application's."""
    completed_application = result.application_id if result.completed else None
    await Tortoise.get_connection("default").execute_query(_MARK_PUBLISHED, [result.quote_id, completed_application])


class Marks(Protocol):
    def add(self, result: FinalizeResult) -> None: ...


async def publish_outcome(publisher: ConfirmingPublisher, result: FinalizeResult, marks: Marks | None = None) -> bool:
    """Publish the result's events; mark them only when every one was confirmed.

    Unconfirmed events stay unmarked for the outbox relay, so a failure here delays
    an event but never loses it. With ``marks`` the marking is batched (shared.event_marks).
    """
    if not result.events:
        return True
    confirmed = await publisher.publish_many(OFFERS_EXCHANGE, [(event_message(event), "") for event in result.events])
    if not all(confirmed):
        return False
    if marks is not None:
        marks.add(result)
    else:
        await mark_events_published(result)
    return True
