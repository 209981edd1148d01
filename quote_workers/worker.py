"""Consume quote jobs, ask the insurer, store the outcome, publish the event, then ack.

Ack comes last: a crash at any step before it leads to a redelivery, and every step
is idempotent (a final quote is skipped, the outcome is written once, event ids are
stable), so redeliveries converge on one stored outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from tortoise import Tortoise

from quote_workers.adapters.base import QuoteRequest
from quote_workers.resilience import GuardedInsurer
from shared.models import QuoteStatus
from shared.platform.amqp import ConfirmingPublisher, close_within
from shared.platform.metrics import INSURER_CALL_SECONDS, POISON_MESSAGES, QUOTES_FINISHED
from shared.quoting.jobs import MalformedJob, QuoteJob
from shared.quoting.outcome_writer import OutcomeWriter
from shared.quoting.outcomes import FinalizeRequest, Outcome, StatusOutcome, publish_outcome
from shared.quoting.publishing import PublishedMarks
from shared.quoting.topology import declare_job_queues

log = logging.getLogger(__name__)

# After a database or broker failure, wait this long before handing the job back,
# so an outage does not turn into a hot redelivery loop.
REQUEUE_DELAY_S = 1.0
PAYLOAD_CACHE_SIZE = 2048
# Raw SQL: the worker's one read per application, where building the ORM query cost more
# than running it.
QUOTE_AND_PAYLOAD = """
SELECT q.insurer_code, q.application_id, q.status, a.payload
FROM quote q JOIN application a ON a.id = q.application_id WHERE q.id = $1
"""
NOT_ASKED_IN_TIME = StatusOutcome(QuoteStatus.TIMED_OUT, "the insurer was not asked before the deadline")


async def settle(acknowledgement: Awaitable[None], message: AbstractIncomingMessage) -> None:
    """Ack or reject; on a channel the broker already closed, the broker requeues the job
    itself, and its redelivery finds the outcome already stored."""
    try:
        await acknowledgement
    except (ChannelInvalidStateError, AMQPError) as exc:
        log.info(
            "could not settle a job; the broker will redeliver it",
            extra={"message_id": message.message_id, "error": type(exc).__name__},
        )


class QuoteWorker:
    def __init__(
        self,
        insurers: Mapping[str, GuardedInsurer],
        publisher: ConfirmingPublisher,
        *,
        deadline_s: float,
        prefetch: int,
        failpoint: str = "",
    ) -> None:
        self._insurers = dict(insurers)
        self._publisher = publisher
        self._deadline_s = deadline_s
        self._prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failpoint = failpoint
        self._marks = PublishedMarks()
        self._outcomes = OutcomeWriter()
        # The jobs of one application arrive together: its payload is read once, not ten times.
        self._payloads: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._connection: AbstractRobustConnection | None = None
        self.processed = 0

    async def start(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        queues = await declare_job_queues(self._channel, self._insurers, self._deadline_s)
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
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._handle(message)
        except asyncio.CancelledError:
            # Shutdown: hand the job back to another worker instead of dead-lettering it.
            await settle(message.reject(requeue=True), message)
            raise
        finally:
            self._in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            job = QuoteJob.from_body(message.body)
            quote_id = uuid.UUID(job.quote_id)
        except (MalformedJob, ValueError):
            await self._reject_poison(message, "unreadable")
            return
        insurer = self._insurers.get(job.insurer_code)
        if insurer is None:
            await self._reject_poison(message, "unknown_insurer")
            return
        payload = None if message.redelivered else self._payloads.get(job.application_id)
        if payload is None:
            # A redelivery may be finished work: the database says so (idempotent consumer).
            try:
                _, rows = await Tortoise.get_connection("default").execute_query(QUOTE_AND_PAYLOAD, [quote_id])
            except Exception:
                await self._requeue_later(message, job, "database unavailable")
                return
            quote = rows[0] if rows else None
            if (
                quote is None
                or quote["insurer_code"] != job.insurer_code
                or str(quote["application_id"]) != job.application_id
            ):
                await self._reject_poison(message, "unknown_quote")
                return
            if quote["status"] != QuoteStatus.PENDING.value:
                await settle(message.ack(), message)  # a redelivery of finished work
                return
            payload = self._remember_payload(job.application_id, json.loads(quote["payload"]))

        outcome: Outcome
        if job.remaining() <= 0:
            outcome, attempts, last_error = NOT_ASKED_IN_TIME, 0, None
        else:
            request = QuoteRequest(job.quote_id, job.application_id, job.insurer_code, payload)
            with INSURER_CALL_SECONDS.labels(job.insurer_code).time():
                result = await insurer.quote(request, job.deadline_epoch)
            outcome, attempts, last_error = result.outcome, result.attempts, result.last_error
        self._crash_if("after_insurer")

        try:
            finalized = await self._outcomes.finalize(FinalizeRequest(quote_id, outcome, attempts, last_error))
            self._crash_if("after_db")
            published = await publish_outcome(self._publisher, finalized, self._marks)
            self._crash_if("after_publish")
        except Exception:
            await self._requeue_later(message, job, "could not store or publish the outcome")
            return
        if finalized.recorded:
            status = QuoteStatus.OFFERED.value if not isinstance(outcome, StatusOutcome) else outcome.status.value
            QUOTES_FINISHED.labels(job.insurer_code, status).inc()
        if not published:
            log.warning("event left to the outbox relay", extra={"quote_id": job.quote_id})
        self.processed += 1
        await settle(message.ack(), message)

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

    async def _reject_poison(self, message: AbstractIncomingMessage, reason: str) -> None:
        POISON_MESSAGES.labels(reason).inc()
        log.warning("rejecting a poison job", extra={"reason": reason, "message_id": message.message_id})
        await settle(message.reject(requeue=False), message)  # dead-lettered, never looped

    async def _requeue_later(self, message: AbstractIncomingMessage, job: QuoteJob, why: str) -> None:
        log.warning("job handed back", extra={"quote_id": job.quote_id, "why": why}, exc_info=True)
        await asyncio.sleep(REQUEUE_DELAY_S)
        await settle(message.reject(requeue=True), message)
