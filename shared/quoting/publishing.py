"""Publishing what the outbox holds, and marking what the broker confirmed.

Two things carry an outbox flag: a quote's job (``quote.job_published``) and the events
of its outcome (``quote.event_published``, ``application.complete_event_published``).
Each has one publish-and-mark path here, used both right after the commit that made
it (request path, workers, dead-jobs consumer, sweeper) and by the outbox relay for
whatever stayed unmarked.

Marks may be batched (``JobMarks``, ``EventMarks``: one UPDATE per short interval). Losing
one is safe: it only makes the relay publish that job or event once more after its settle
time; workers skip a job whose quote is final, and clients drop an event copy by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from shared.platform.amqp import ConfirmingPublisher
from shared.quoting.events import OutboxEvent, event_message
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcomes import FinalizeResult
from shared.quoting.topology import JOBS_EXCHANGE, OFFERS_EXCHANGE

log = logging.getLogger(__name__)

_MARK_JOBS_PUBLISHED = "UPDATE quote SET job_published = true WHERE id = ANY($1::uuid[])"
_MARK_EVENTS_PUBLISHED = """
WITH quotes_marked AS (UPDATE quote SET event_published = true WHERE id = ANY($1::uuid[]))
UPDATE application SET complete_event_published = true WHERE id = ANY($2::uuid[])
"""


# --- jobs -------------------------------------------------------------------------------------


async def publish_jobs(publisher: ConfirmingPublisher, jobs: Sequence[QuoteJob]) -> list[uuid.UUID]:
    """Publish concurrently; the quote ids whose jobs the broker confirmed."""
    now = time.time()
    confirmed = await publisher.publish_many(JOBS_EXCHANGE, [(job.to_message(now), job.insurer_code) for job in jobs])
    return [job.quote_uuid for job, ok in zip(jobs, confirmed, strict=True) if ok]


async def mark_jobs_published(quote_ids: Sequence[uuid.UUID], connection: BaseDBAsyncClient | None = None) -> None:
    await (connection or Tortoise.get_connection("default")).execute_query(_MARK_JOBS_PUBLISHED, [list(quote_ids)])


# --- events -----------------------------------------------------------------------------------


async def publish_events(publisher: ConfirmingPublisher, events: Sequence[OutboxEvent]) -> list[OutboxEvent]:
    """Publish concurrently; the events the broker confirmed.

    Not mandatory: with no core app up (a rolling deploy, a crash) no queue is bound to the
    fanout, and a returned event would stay unmarked and be relayed again and again. Events
    are hints; a socket opened later reads them from the database.
    """
    messages = [(event_message(e.body), "") for e in events]
    confirmed = await publisher.publish_many(OFFERS_EXCHANGE, messages, mandatory=False)
    return [event for event, ok in zip(events, confirmed, strict=True) if ok]


def _event_flags(events: Sequence[OutboxEvent]) -> list[list[uuid.UUID]]:
    """The statement's two parameters: quotes whose final events, and applications whose
    ``complete`` events, are published."""
    quotes = [event.quote_id for event in events if event.quote_id is not None]
    applications = [event.application_id for event in events if event.quote_id is None]
    return [quotes, applications]


async def mark_events_published(events: Sequence[OutboxEvent], connection: BaseDBAsyncClient | None = None) -> None:
    await (connection or Tortoise.get_connection("default")).execute_query(_MARK_EVENTS_PUBLISHED, _event_flags(events))


async def publish_outcome(
    publisher: ConfirmingPublisher, result: FinalizeResult, marks: EventMarks | None = None
) -> bool:
    """Publish a recorded outcome's events; mark them only when every one was confirmed.

    Unconfirmed events stay unmarked for the outbox relay, so a failure here delays an
    event but never loses it. With ``marks`` the marking is batched.
    """
    if not result.events:
        return True
    confirmed = await publish_events(publisher, result.events)
    if len(confirmed) < len(result.events):
        return False
    if marks is not None:
        marks.add(confirmed)
    else:
        await mark_events_published(confirmed)
    return True


# --- batched marks ----------------------------------------------------------------------------


class _BatchedMarks:
    """Collects ids; one statement takes them all, each column as a ``uuid[]`` parameter."""

    def __init__(self, statement: str, columns: int, what: str, interval_s: float) -> None:
        self._statement = statement
        self._what = what
        self._interval_s = interval_s
        self._columns: list[list[uuid.UUID]] = [[] for _ in range(columns)]
        self._flusher: asyncio.Task[None] | None = None

    def _add_ids(self, ids_per_column: list[list[uuid.UUID]]) -> None:
        for column, ids in zip(self._columns, ids_per_column, strict=True):
            column.extend(ids)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_after_interval(), name=f"{self._what}-marks")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def flush(self) -> None:
        columns, self._columns = self._columns, [[] for _ in self._columns]
        if not any(columns):
            return
        try:
            await Tortoise.get_connection("default").execute_query(self._statement, columns)
        except Exception as exc:
            log.warning(
                "published marks lost; the outbox relay will publish again",
                extra={"what": self._what, "rows": sum(len(column) for column in columns), "error": type(exc).__name__},
            )

    async def _flush_after_interval(self) -> None:
        while any(self._columns):
            await asyncio.sleep(self._interval_s)
            await self.flush()


class EventMarks(_BatchedMarks):
    """Events the broker confirmed."""

    def __init__(self, interval_s: float = 0.05) -> None:
        super().__init__(_MARK_EVENTS_PUBLISHED, 2, "events", interval_s)

    def add(self, events: Sequence[OutboxEvent]) -> None:
        self._add_ids(_event_flags(events))


class JobMarks(_BatchedMarks):
    """Quote jobs the broker confirmed."""

    def __init__(self, interval_s: float = 0.05) -> None:
        super().__init__(_MARK_JOBS_PUBLISHED, 1, "jobs", interval_s)

    def add(self, quote_ids: Sequence[uuid.UUID]) -> None:
        self._add_ids([list(quote_ids)])
