"""The worker's database path as it was before the hot-path rewrite (commit b419b59), kept
so that every benchmark run can measure before and after side by side on one machine.

``finalize_quote`` here is six ORM round trips under the application lock, and
``mark_events_published`` two more; ``shared.outcomes`` now does the same work in one
lock plus one statement, and one statement.
"""

from __future__ import annotations

import uuid
from typing import Any

from tortoise.transactions import in_transaction

from shared.events import complete_event, quote_final_event
from shared.models import Application, ApplicationStatus, Offer, Quote, QuoteStatus
from shared.outcomes import FinalizeResult, OfferOutcome, Outcome, quote_statuses, to_kopecks
from shared.timefmt import utc_now


async def finalize_quote(
    quote_id: uuid.UUID, outcome: Outcome, *, attempts: int | None = None, last_error: str | None = None
) -> FinalizeResult:
    async with in_transaction() as conn:
        quote = await Quote.filter(id=quote_id).using_db(conn).first()
        if quote is None:
            return FinalizeResult(recorded=False, quote_id=quote_id, application_id=None)
        application = await Application.filter(id=quote.application_id).select_for_update().using_db(conn).get()
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


async def mark_events_published(result: FinalizeResult) -> None:
    await Quote.filter(id=result.quote_id).update(event_published=True)
    if result.completed and result.application_id is not None:
        await Application.filter(id=result.application_id).update(complete_event_published=True)
