"""Outbox flags set in batches: one UPDATE per short interval instead of one per row.

Safe to lose: a mark that never reaches the database (crash, outage) only makes the
outbox relay publish that job or event once more after its settle time; workers skip
a job whose quote is already final, and clients drop an event copy by its ``event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from tortoise import Tortoise

from shared.quoting.outcomes import MARK_EVENTS_PUBLISHED, FinalizeResult, published_ids

log = logging.getLogger(__name__)

_MARK_JOBS = "UPDATE quote SET job_published = true WHERE id = ANY($1::uuid[])"


class BatchedMarks:
    """Collects ids; one statement takes them all, each column as a ``uuid[]`` parameter."""

    def __init__(self, statement: str, columns: int, what: str, interval_s: float = 0.05) -> None:
        self._statement = statement
        self._what = what
        self._interval_s = interval_s
        self._columns: list[list[uuid.UUID]] = [[] for _ in range(columns)]
        self._flusher: asyncio.Task[None] | None = None

    def add_ids(self, *ids_per_column: list[uuid.UUID]) -> None:
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
                extra={"what": self._what, "rows": len(columns[0]), "error": type(exc).__name__},
            )

    async def _flush_after_interval(self) -> None:
        while any(self._columns):
            await asyncio.sleep(self._interval_s)
            await self.flush()


class PublishedMarks(BatchedMarks):
    """Final events of quotes (and complete events of applications) the broker confirmed."""

    def __init__(self, interval_s: float = 0.05) -> None:
        super().__init__(MARK_EVENTS_PUBLISHED, 2, "events", interval_s)

    def add(self, result: FinalizeResult) -> None:
        self.add_ids(*published_ids([result]))


class PublishedJobMarks(BatchedMarks):
    """Quote jobs the broker confirmed."""

    def __init__(self, interval_s: float = 0.05) -> None:
        super().__init__(_MARK_JOBS, 1, "jobs", interval_s)

    def add(self, quote_ids: list[uuid.UUID]) -> None:
        self.add_ids(quote_ids)
