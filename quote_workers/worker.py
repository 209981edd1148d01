"""Consume quote jobs, ask the insurer, store the outcome, publish the event, then ack.

Ack comes last: a crash at any step before it leads to a redelivery, and every step
is idempotent (a final quote is skipped, the outcome is written once, event ids are
stable), so redeliveries converge on one stored outcome.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from quote_workers.adapters.base import QuoteRequest
from quote_workers.resilience import CallResult, GuardedInsurer
from shared.models import QuoteStatus
from shared.platform.amqp import ConfirmingPublisher, close_within
from shared.platform.db import DATABASE_UNREACHABLE
from shared.platform.metrics import INSURER_CALL_SECONDS, OUTCOMES_ABANDONED, QUOTES_FINISHED
from shared.platform.retrying import retry_until
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcome_writer import OutcomeWriter
from shared.quoting.outcomes import FinalizeRequest, FinalizeResult, StatusOutcome, quote_state, status_of
from shared.quoting.publishing import EventMarks, publish_outcome
from shared.quoting.settlement import Answer, PoisonJob, Settlement, read_job, settled
from shared.quoting.topology import declare_job_queues

log = logging.getLogger(__name__)

SERVICE = "worker"
PAYLOAD_CACHE_SIZE = 2048
NOT_ASKED_IN_TIME = StatusOutcome(QuoteStatus.TIMED_OUT, "the insurer was not asked before the deadline")


def prefetch_per_queue(prefetch_per_worker: int, queues: int) -> int:
    """RabbitMQ counts prefetch per consumer (quorum queues have no channel-wide limit), and a
    worker has one consumer per insurer queue: each gets its share of the worker's bound."""
    return max(1, prefetch_per_worker // max(1, queues))


class QuoteWorker:
    def __init__(
        self,
        insurers: Mapping[str, GuardedInsurer],
        publisher: ConfirmingPublisher,
        *,
        prefetch: int,
        insurer_concurrency: int,
        write_grace_s: float,
        failpoint: str = "",
        burst: int | None = None,
        quorum_group_size: int = 0,
    ) -> None:
        self._insurers = dict(insurers)
        self._quorum_group_size = quorum_group_size
        self._publisher = publisher
        self._prefetch = prefetch
        # Calls in flight per insurer: what one process may ask of one insurer at once.
        self._call_slots = {code: asyncio.Semaphore(insurer_concurrency) for code in self._insurers}
        # An answer in hand is stored until its deadline plus the sweeper's grace, whatever
        # the database's outage; past that the sweeper has closed the quote.
        self._write_grace_s = write_grace_s
        # Quotes being handled here: a second delivery of one (the first one's channel died
        # and the broker handed it out again) waits for the first instead of asking again.
        self._working: dict[str, asyncio.Future[None]] = {}
        self._channel: AbstractChannel | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failpoint = failpoint
        self._marks = EventMarks()
        self._outcomes = OutcomeWriter()
        # The jobs of one application arrive together: its payload is read once, not ten times.
        self._payloads: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._connection: AbstractRobustConnection | None = None
        # How every job taken so far was settled; with ``burst``, ``burst_done`` is set once
        # that many are (arq's burst mode: a harness runs the real worker for N jobs).
        self.answers: Counter[Answer] = Counter()
        self._burst = burst
        self.burst_done = asyncio.Event()

    async def start(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=prefetch_per_queue(self._prefetch, len(self._insurers)))
        queues = await declare_job_queues(self._channel, self._insurers, quorum_group_size=self._quorum_group_size)
        for queue in queues.values():
            self._consumers.append((queue, await queue.consume(self.handle)))

    async def stop(self, grace_s: float) -> None:
        """Stop taking jobs, let in-flight ones finish for ``grace_s``, hand the rest back."""
        for queue, tag in self._consumers:
            await close_within(
                lambda queue=queue, tag=tag: queue.cancel(tag),  # type: ignore[misc]
                f"consumer of {queue.name}",
                connection=self._connection,
            )
        self._consumers.clear()
        if self._in_flight:
            _, still_running = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        await self._outcomes.close()
        await self._marks.close()
        if self._channel is not None and not self._channel.is_closed:
            await close_within(self._channel.close, "worker channel", connection=self._connection)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """aio-pika's consumer callback. The work runs in a task of its own: aio-pika cancels its
        callbacks when their channel closes (a broker cut), and an insurer's answer on its way
        must still be stored; its ack then fails, and the redelivery finds the quote final."""
        work = asyncio.create_task(self._settle(message))
        self._in_flight.add(work)
        work.add_done_callback(self._in_flight.discard)
        await asyncio.shield(work)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        settlement = Settlement()
        try:
            async with settled(message, SERVICE) as settlement:
                await self._process(message)
        finally:
            self._count(settlement.answer)

    def _count(self, answer: Answer | None) -> None:
        if answer is None:
            return
        self.answers[answer] += 1
        if self._burst is not None and self.answers.total() >= self._burst:
            self.burst_done.set()

    async def _process(self, message: AbstractIncomingMessage) -> None:
        job = read_job(message)
        insurer = self._insurers.get(job.insurer_code)
        if insurer is None:
            raise PoisonJob("unknown_insurer")
        earlier = self._working.get(job.quote_id)
        if earlier is not None:
            await asyncio.shield(earlier)
        done = asyncio.get_running_loop().create_future()
        self._working[job.quote_id] = done
        try:
            await self._price_and_store(job, insurer)
        finally:
            done.set_result(None)
            if self._working.get(job.quote_id) is done:
                del self._working[job.quote_id]

    async def _price_and_store(self, job: QuoteJob, insurer: GuardedInsurer) -> None:
        payload = await self._payload_if_pending(job)
        if payload is None:
            return  # finished work (a redelivery, or a duplicate job), or the database stayed away
        answer = await self._ask(insurer, job, payload)
        request = FinalizeRequest(job.quote_uuid, answer.outcome, answer.attempts, answer.last_error)
        self._crash_if("after_insurer")
        finalized = await self._store(job, request)
        if finalized is None:
            return
        self._crash_if("after_db")
        # Stored: whatever this publish does not get confirmed, the outbox relay publishes.
        try:
            published = await publish_outcome(self._publisher, finalized, self._marks)
        except Exception:
            published = False
            log.warning("event publish failed", extra={"quote_id": job.quote_id}, exc_info=True)
        self._crash_if("after_publish")
        if finalized.recorded:
            QUOTES_FINISHED.labels(job.insurer_code, status_of(request.outcome).value).inc()
        if not published:
            log.warning("event left to the outbox relay", extra={"quote_id": job.quote_id})

    async def _payload_if_pending(self, job: QuoteJob) -> dict[str, Any] | None:
        """The application to price, or None when the quote is final already.

        The quote's status is read before every insurer call (a job may be a duplicate,
        redelivered or not); the payload once per application (its jobs arrive together).
        While the database is away the job is held, not handed back: a redelivery would
        spend the queue's delivery limit, which is there for poison, not for outages.
        """
        cached = self._payloads.get(job.application_id)
        try:
            state = await retry_until(
                lambda: quote_state(job.quote_uuid, with_payload=cached is None),
                until_epoch=job.deadline_epoch,
                retry_on=DATABASE_UNREACHABLE,
                what="quote read",
            )
        except DATABASE_UNREACHABLE:
            log.warning(
                "database away until the deadline; the sweeper closes this quote", extra={"quote_id": job.quote_id}
            )
            return None
        if state is None or state.insurer_code != job.insurer_code or str(state.application_id) != job.application_id:
            raise PoisonJob("unknown_quote")
        if not state.pending:
            return None
        if cached is not None:
            return cached
        assert state.payload is not None
        return self._remember_payload(job.application_id, state.payload)

    async def _ask(self, insurer: GuardedInsurer, job: QuoteJob, payload: dict[str, Any]) -> CallResult:
        if job.remaining() <= 0:
            return CallResult(NOT_ASKED_IN_TIME, attempts=0)
        request = QuoteRequest(job.quote_id, job.application_id, job.insurer_code, payload)
        async with self._call_slots[job.insurer_code]:
            with INSURER_CALL_SECONDS.labels(job.insurer_code).time():
                return await insurer.quote(request, job.deadline_epoch)

    async def _store(self, job: QuoteJob, request: FinalizeRequest) -> FinalizeResult | None:
        """The outcome, written however long the database is away (within the deadline and
        the sweeper's grace): the insurer's answer is never thrown away and asked for again."""
        try:
            return await retry_until(
                lambda: self._outcomes.finalize(request),
                until_epoch=job.deadline_epoch + self._write_grace_s,
                retry_on=DATABASE_UNREACHABLE,
                what="outcome write",
            )
        except DATABASE_UNREACHABLE:
            OUTCOMES_ABANDONED.inc()
            log.error(
                "outcome not stored: the database stayed away past the deadline",
                extra={"quote_id": job.quote_id},
            )
            return None

    def _remember_payload(self, application_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._payloads[application_id] = payload
        if len(self._payloads) > PAYLOAD_CACHE_SIZE:
            self._payloads.popitem(last=False)
        return payload

    def _crash_if(self, step: str) -> None:
        """Fault injection for the exactly-once tests: die here, as a crash would, with no cleanup."""
        if self._failpoint == step:
            log.warning("failpoint reached; killing this worker", extra={"failpoint": step})
            os.kill(os.getpid(), signal.SIGKILL)
