"""The outbox relay: publishes what was committed but never confirmed by the broker.

The request path publishes right after its commit; rows still unpublished a few
seconds later (broker down, process killed in between) are published here. Several
aggregator instances may relay at once: ``FOR UPDATE SKIP LOCKED`` hands each row to
one of them, and duplicates that slip through anyway are harmless (idempotent
workers, event ids).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from tortoise.transactions import in_transaction

from shared.models import Application, Offer, Quote, QuoteStatus
from shared.platform.amqp import ConfirmingPublisher, PublishFailed
from shared.platform.clock import utc_now
from shared.quoting.events import complete_event, event_message, quote_final_event
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcomes import statuses_by_application
from shared.quoting.topology import JOBS_EXCHANGE, OFFERS_EXCHANGE

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
        now = time.time()
        jobs = [
            QuoteJob(str(r["id"]), str(r["application_id"]), r["insurer_code"], r["deadline"].timestamp()) for r in rows
        ]
        confirmed = await publisher.publish_many(JOBS_EXCHANGE, [(j.to_message(now), j.insurer_code) for j in jobs])
        done = [r["id"] for r, ok in zip(rows, confirmed, strict=True) if ok]
        if done:
            await Quote.filter(id__in=done).using_db(conn).update(job_published=True)
    log.info("outbox relayed jobs", extra={"published": len(done), "pending": len(rows) - len(done)})
    return len(done)


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
        events = [quote_final_event(q, offers.get(q.id)) for q in quotes]
        confirmed = await publisher.publish_many(OFFERS_EXCHANGE, [(event_message(e), "") for e in events])
        done = [q.id for q, ok in zip(quotes, confirmed, strict=True) if ok]
        if done:
            await Quote.filter(id__in=done).using_db(conn).update(event_published=True)
    log.info("outbox relayed quote events", extra={"published": len(done)})
    return len(done)


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
        done = []
        for application in applications:
            statuses = statuses_of[application.id]
            try:
                await publisher.publish(OFFERS_EXCHANGE, event_message(complete_event(application.id, statuses)))
            except PublishFailed:
                break
            done.append(application.id)
        if done:
            await Application.filter(id__in=done).using_db(conn).update(complete_event_published=True)
    log.info("outbox relayed complete events", extra={"published": len(done)})
    return len(done)


async def relay_once(publisher: ConfirmingPublisher) -> int:
    return await relay_jobs(publisher) + await relay_quote_events(publisher) + await relay_complete_events(publisher)
