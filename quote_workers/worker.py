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
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from tortoise import Tortoise

from quote_workers.adapters.base import QuoteRequest
from quote_workers.resilience import CallResult, GuardedInsurer
from shared.models import QuoteStatus
from shared.platform.amqp import ConfirmingPublisher, close_within
from shared.platform.metrics import INSURER_CALL_SECONDS, QUOTES_FINISHED
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcome_writer import OutcomeWriter
from shared.quoting.outcomes import FinalizeRequest, StatusOutcome, status_of
from shared.quoting.publishing import EventMarks, publish_outcome
from shared.quoting.settlement import Answer, HandBack, PoisonJob, Settlement, read_job, settled
from shared.quoting.topology import declare_job_queues

log = logging.getLogger(__name__)

SERVICE = "worker"
PAYLOAD_CACHE_SIZE = 2048
# Raw SQL: the worker's one read per application, where building the ORM query cost more
# than running it.
QUOTE_AND_PAYLOAD = """
SELECT q.insurer_code, q.application_id, q.status, a.payload
FROM quote q JOIN application a ON a.id = q.application_id WHERE q.id = $1
"""
NOT_ASKED_IN_TIME = StatusOutcome(QuoteStatus.TIMED_OUT, "the insurer was not asked before the deadline")


class QuoteWorker:
    def __init__(
        self,
        insurers: Mapping[str, GuardedInsurer],
        publisher: ConfirmingPublisher,
        *,
        prefetch: int,
        failpoint: str = "",
        burst: int | None = None,
    ) -> None:
        self._insurers = dict(insurers)
        self._publisher = publisher
        self._prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failpoint = failpoint
        self._marks = EventMarks()
        self._outcomes = OutcomeWriter()
        # The jobs of one application arrive together: its payload is read once, not ten times.
        self._payloads: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._connection: AbstractRobustConnection | None = None
        self.processed = 0
        # How every job taken so far was settled; with ``burst``, ``burst_done`` is set once
        # that many are (arq's burst mode: a harness runs the real worker for N jobs).
        self.answers: Counter[Answer] = Counter()
        self._burst = burst
        self.burst_done = asyncio.Event()

    async def start(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        queues = await declare_job_queues(self._channel, self._insurers)
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
        settlement = Settlement()
        try:
            async with settled(message, SERVICE) as settlement:
                await self._process(message)
        finally:
            self._in_flight.discard(task)
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
        payload = await self._payload_if_pending(job, redelivered=bool(message.redelivered))
        if payload is None:
            return  # a redelivery of finished work
        answer = await self._ask(insurer, job, payload)
        request = FinalizeRequest(job.quote_uuid, answer.outcome, answer.attempts, answer.last_error)
        self._crash_if("after_insurer")
        try:
            finalized = await self._outcomes.finalize(request)
            self._crash_if("after_db")
            published = await publish_outcome(self._publisher, finalized, self._marks)
            self._crash_if("after_publish")
        except Exception as exc:
            raise HandBack("could not store or publish the outcome") from exc
        if finalized.recorded:
            QUOTES_FINISHED.labels(job.insurer_code, status_of(request.outcome).value).inc()
        if not published:
            log.warning("event left to the outbox relay", extra={"quote_id": job.quote_id})
        self.processed += 1

    async def _payload_if_pending(self, job: QuoteJob, *, redelivered: bool) -> dict[str, Any] | None:
        """The application to price, or None when the quote is final already.

        A redelivery may be finished work, so the database decides (idempotent consumer);
        a first delivery of an application seen a moment ago takes its cached payload.
        """
        cached = None if redelivered else self._payloads.get(job.application_id)
        if cached is not None:
            return cached
        try:
            _, rows = await Tortoise.get_connection("default").execute_query(QUOTE_AND_PAYLOAD, [job.quote_uuid])
        except Exception as exc:
            raise HandBack("database unavailable") from exc
        quote = rows[0] if rows else None
        if (
            quote is None
            or quote["insurer_code"] != job.insurer_code
            or str(quote["application_id"]) != job.application_id
        ):
            raise PoisonJob("unknown_quote")
        if quote["status"] != QuoteStatus.PENDING.value:
            return None
        return self._remember_payload(job.application_id, json.loads(quote["payload"]))

    async def _ask(self, insurer: GuardedInsurer, job: QuoteJob, payload: dict[str, Any]) -> CallResult:
        if job.remaining() <= 0:
            return CallResult(NOT_ASKED_IN_TIME, attempts=0)
        request = QuoteRequest(job.quote_id, job.application_id, job.insurer_code, payload)
        with INSURER_CALL_SECONDS.labels(job.insurer_code).time():
            return await insurer.quote(request, job.deadline_epoch)

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
