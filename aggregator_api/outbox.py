"""The outbox relay: publishes what was committed but never confirmed by the broker.

The request path publishes right after its commit; rows still unpublished once that
publish has given up (broker down, process killed in between) are published here. Several
aggregator instances may relay at once: ``FOR UPDATE SKIP LOCKED`` hands each row to
one of them, and duplicates that slip through anyway are harmless (idempotent
workers, event ids).

Every tick of every instance runs these queries, so each reads only its own partial index
(``shared.models``: the unpublished rows, a few hundred out of millions) and the columns it
publishes, never the application's payload. Each repeats its index's predicate word for
word (``bench/periodic_queries.py`` shows the plans).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from tortoise.transactions import in_transaction

from shared.models import QuoteStatus
from shared.platform.amqp import ConfirmingPublisher
from shared.platform.clock import utc_now
from shared.platform.replica import PRIMARY
from shared.platform.settings import RELAY_SETTLE_MARGIN_S
from shared.quoting.events import OutboxEvent, complete_event, final_event, offer_body
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcomes import statuses_by_application
from shared.quoting.publishing import mark_events_published, mark_jobs_published, publish_events, publish_jobs

log = logging.getLogger(__name__)

# A row is left to the request or worker that made it until that publish has given up: it
# waits at most the publish timeout for its confirm, and then its mark (batched,
# shared.quoting.publishing) commits. Relaying sooner would publish a job a second time
# while its first publish may still be confirmed: a second insurer call.
BATCH = 500

# Unpublished jobs of pending quotes whose application is still open (later, the sweeper
# ends them): idx_quote_job_unpublished, then the application by its key.
JOBS_TO_RELAY = """
SELECT q.id, q.application_id, q.insurer_code, a.deadline
FROM quote q JOIN application a ON a.id = q.application_id
WHERE q.status = 'pending' AND NOT q.job_published AND q.created_at < $1 AND a.deadline > now()
ORDER BY q.created_at
LIMIT $2
FOR UPDATE OF q SKIP LOCKED
"""

# Final quotes whose event is unpublished, with what their event shows (the offer, if any):
# idx_quote_event_unpublished, then the offer by its quote.
QUOTE_EVENTS_TO_RELAY = """
SELECT q.id, q.application_id, q.insurer_code, q.insurer_name, q.status, q.reason,
       o.id AS offer_id, o.premium_kopecks, o.coefficients, o.valid_until, o.insurer_reference
FROM quote q LEFT JOIN offer o ON o.quote_id = q.id
WHERE q.status <> 'pending' AND NOT q.event_published AND q.finished_at < $1
ORDER BY q.finished_at
LIMIT $2
FOR UPDATE OF q SKIP LOCKED
"""

# Complete applications whose complete event is unpublished; their quotes' statuses are read
# next (statuses_by_application): idx_application_complete_unpublished, the id only.
COMPLETE_EVENTS_TO_RELAY = """
SELECT id
FROM application
WHERE status = 'complete' AND NOT complete_event_published AND completed_at < $1
ORDER BY completed_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


def settle_time(publish_timeout_s: float) -> timedelta:
    """How old an unpublished row must be before the relay takes it: longer than any publish
    waits for its confirm (``settings.publish_timeout_s``, the same for every service)."""
    return timedelta(seconds=publish_timeout_s + RELAY_SETTLE_MARGIN_S)


async def relay_jobs(publisher: ConfirmingPublisher, settle: timedelta) -> int:
    # Named: with a replica configured Tortoise holds two connections and refuses to guess (ParamsError).
    async with in_transaction(PRIMARY) as conn:
        rows = await conn.execute_query_dict(JOBS_TO_RELAY, [utc_now() - settle, BATCH])
        if not rows:
            return 0
        jobs = [
            QuoteJob(str(r["id"]), str(r["application_id"]), r["insurer_code"], r["deadline"].timestamp()) for r in rows
        ]
        published = await publish_jobs(publisher, jobs)
        if published:
            await mark_jobs_published(published, conn)
    log.info("outbox relayed jobs", extra={"published": len(published), "pending": len(rows) - len(published)})
    return len(published)


def _quote_event(row: dict[str, Any]) -> OutboxEvent:
    """The final event of a relayed row: the same body as ``events.quote_final_event``."""
    offer = None
    if row["offer_id"] is not None:
        coefficients = row["coefficients"]
        offer = offer_body(
            row["offer_id"],
            row["premium_kopecks"],
            json.loads(coefficients) if isinstance(coefficients, str) else coefficients,
            row["valid_until"],
            row["insurer_reference"],
        )
    insurer = {"code": row["insurer_code"], "name": row["insurer_name"]}
    body = final_event(row["id"], row["application_id"], insurer, QuoteStatus(row["status"]), row["reason"], offer)
    return OutboxEvent(body, row["application_id"], row["id"])


async def relay_quote_events(publisher: ConfirmingPublisher, settle: timedelta) -> int:
    async with in_transaction(PRIMARY) as conn:
        rows = await conn.execute_query_dict(QUOTE_EVENTS_TO_RELAY, [utc_now() - settle, BATCH])
        if not rows:
            return 0
        published = await publish_events(publisher, [_quote_event(row) for row in rows])
        if published:
            await mark_events_published(published, conn)
    log.info("outbox relayed quote events", extra={"published": len(published)})
    return len(published)


async def relay_complete_events(publisher: ConfirmingPublisher, settle: timedelta) -> int:
    async with in_transaction(PRIMARY) as conn:
        rows = await conn.execute_query_dict(COMPLETE_EVENTS_TO_RELAY, [utc_now() - settle, BATCH])
        if not rows:
            return 0
        application_ids = [row["id"] for row in rows]
        statuses_of = await statuses_by_application(application_ids, conn)
        events = [OutboxEvent(complete_event(a, statuses_of[a]), a) for a in application_ids]
        published = await publish_events(publisher, events)
        if published:
            await mark_events_published(published, conn)
    log.info("outbox relayed complete events", extra={"published": len(published)})
    return len(published)


async def relay_once(publisher: ConfirmingPublisher, settle: timedelta) -> int:
    """One tick: ``settle`` is ``settle_time(settings.publish_timeout_s)`` (aggregator_api.app)."""
    return (
        await relay_jobs(publisher, settle)
        + await relay_quote_events(publisher, settle)
        + await relay_complete_events(publisher, settle)
    )
