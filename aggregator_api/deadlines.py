"""The 60-second promise: expired jobs become `timed_out`, and a sweeper closes the rest.

Queue TTL dead-letters jobs nobody picked up; the consumer here records them. A job a
worker holds never expires in the broker, and a message can be lost, so the sweeper
closes every quote still pending shortly after its application's deadline.

The sweeper runs every second on every aggregator: it starts from the pending
applications past their deadline (``idx_application_pending_deadline``, a partial index of
the few pending ones) and takes their pending quotes by the quote key, so a tick reads
what is overdue and nothing else (``bench/periodic_queries.py``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from tortoise import Tortoise

from shared.models import QuoteStatus
from shared.platform.amqp import ConfirmingPublisher
from shared.platform.clock import utc_now
from shared.quoting.outcome_writer import OutcomeWriter
from shared.quoting.outcomes import FinalizeRequest, StatusOutcome, finalize_quotes
from shared.quoting.publishing import publish_outcome
from shared.quoting.settlement import HandBack, read_job, settled

log = logging.getLogger(__name__)

NOT_PICKED_UP = StatusOutcome(QuoteStatus.TIMED_OUT, "the request expired in the queue before the insurer was asked")
# The sweeper's reason differs from the worker's, so an operator can tell which net caught it.
NO_OUTCOME = StatusOutcome(QuoteStatus.TIMED_OUT, "no outcome was recorded before the deadline")
UNPROCESSABLE = StatusOutcome(QuoteStatus.FAILED, "the request could not be processed")
SWEEP_BATCH = 500

# Pending quotes of pending applications whose deadline is before $1, oldest deadline first.
# The predicate on application repeats idx_application_pending_deadline's.
OVERDUE_QUOTES = """
SELECT q.id
FROM application a JOIN quote q ON q.application_id = a.id
WHERE a.status = 'pending' AND a.deadline < $1 AND q.status = 'pending'
ORDER BY a.deadline
LIMIT $2
"""


def outcome_for_dead_job(message: AbstractIncomingMessage) -> StatusOutcome:
    reason = (message.headers or {}).get("x-first-death-reason")
    return NOT_PICKED_UP if reason == "expired" else UNPROCESSABLE


class DeadJobConsumer:
    """Records the outcome of jobs the broker dead-lettered (expired or poisoned)."""

    def __init__(self, publisher: ConfirmingPublisher) -> None:
        self._publisher = publisher
        self._outcomes = OutcomeWriter()

    async def start(self, queue: AbstractQueue) -> str:
        return await queue.consume(self.handle)

    async def close(self) -> None:
        await self._outcomes.close()

    async def handle(self, message: AbstractIncomingMessage) -> None:
        async with settled(message, "dead-jobs"):
            job = read_job(message)  # unreadable: rejected, and this queue has no dead-letter exchange
            try:
                result = await self._outcomes.finalize(FinalizeRequest(job.quote_uuid, outcome_for_dead_job(message)))
                await publish_outcome(self._publisher, result)
            except Exception as exc:
                raise HandBack("dead job not recorded yet (database unreachable?)") from exc


async def sweep_once(publisher: ConfirmingPublisher, grace_s: float) -> int:
    """Close every quote still pending after its deadline plus the grace period."""
    cutoff = utc_now() - timedelta(seconds=grace_s)
    rows = await Tortoise.get_connection("default").execute_query_dict(OVERDUE_QUOTES, [cutoff, SWEEP_BATCH])
    overdue = [uuid.UUID(str(row["id"])) for row in rows]
    # One statement for the whole batch (it completes the applications it empties).
    results = await finalize_quotes([FinalizeRequest(quote_id, NO_OUTCOME) for quote_id in overdue])
    recorded = [result for result in results if result.recorded]
    # Published together: one slow confirm must not hold back the rest of the batch.
    await asyncio.gather(*(publish_outcome(publisher, result) for result in recorded), return_exceptions=True)
    closed = len(recorded)
    if closed:
        log.warning("sweeper closed overdue quotes", extra={"closed": closed})
    return closed
