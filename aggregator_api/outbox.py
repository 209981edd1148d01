"""The outbox relay: publishes what was committed but never confirmed by the broker.

The request path publishes right after its commit; rows still unpublished a few
seconds later (broker down, process killed in between) are published here. Several
aggregator instances may relay at once: ``FOR UPDATE SKIP LOCKED`` hands each row to
one of them, and duplicates that slip through anyway are harmless (idempotent
workers, event ids).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tortoise.transactions import in_transaction

from shared.models import Application, Offer, Quote, QuoteStatus
from shared.platform.amqp import ConfirmingPublisher
from shared.platform.clock import utc_now
from shared.quoting.events import OutboxEvent, complete_event, quote_final_event
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcomes import statuses_by_application
from shared.quoting.publishing import mark_events_published, mark_jobs_published, publish_events, publish_jobs

log = logging.getLogger(__name__)

# Leave fresh rows to the request or worker that is about to publish them.
SETTLE = timedelta(seconds=2)
BATCH = 500


async def relay_jobs(publisher: ConfirmingPublisher) -> int:
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(
            """
            SELECT q.id, q.application_id, q.insurer_code, a.deadline
            FROM quote q JOIN application a ON a.id = q.application_id
            WHERE NOT q.job_published AND q.status = 'pending' AND q.created_at < $1 AND a.deadline > now()
            ORDER BY q.created_at
            LIMIT $2
            FOR UPDATE OF q SKIP LOCKED
            """,
            [utc_now() - SETTLE, BATCH],
        )
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


async def relay_quote_events(publisher: ConfirmingPublisher) -> int:
    async with in_transaction() as conn:
        quotes = (
            await Quote.filter(event_published=False, finished_at__lt=utc_now() - SETTLE)
            .exclude(status=QuoteStatus.PENDING)
            .order_by("finished_at")
            .limit(BATCH)
            .select_for_update(skip_locked=True)
            .using_db(conn)
        )
        if not quotes:
            return 0
        offers = {o.quote_id: o for o in await Offer.filter(quote_id__in=[q.id for q in quotes]).using_db(conn)}
        events = [OutboxEvent(quote_final_event(q, offers.get(q.id)), q.application_id, q.id) for q in quotes]
        published = await publish_events(publisher, events)
        if published:
            await mark_events_published(published, conn)
    log.info("outbox relayed quote events", extra={"published": len(published)})
    return len(published)


async def relay_complete_events(publisher: ConfirmingPublisher) -> int:
    async with in_transaction() as conn:
        applications = (
            await Application.filter(
                status="complete", complete_event_published=False, completed_at__lt=utc_now() - SETTLE
            )
            .limit(BATCH)
            .select_for_update(skip_locked=True)
            .using_db(conn)
        )
        if not applications:
            return 0
        statuses_of = await statuses_by_application([application.id for application in applications], conn)
        events = [OutboxEvent(complete_event(a.id, statuses_of[a.id]), a.id) for a in applications]
        published = await publish_events(publisher, events)
        if published:
            await mark_events_published(published, conn)
    log.info("outbox relayed complete events", extra={"published": len(published)})
    return len(published)


async def relay_once(publisher: ConfirmingPublisher) -> int:
    return await relay_jobs(publisher) + await relay_quote_events(publisher) + await relay_complete_events(publisher)
