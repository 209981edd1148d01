"""One place that decides what happens to a consumed job: ack, reject, or hand it back.

A handler is straight-line steps that raise; ``settled(message)`` around it turns the
way it ended into the broker's answer, as aio-pika's ``message.process()`` does:

- it returned: ack;
- ``PoisonJob(reason)``: counted, logged, rejected without requeue (the queue's
  dead-letter exchange takes it; it never loops);
- ``HandBack(why)``: requeued after a pause, so an outage is not a hot redelivery loop;
- cancelled (shutdown): requeued at once, for another worker, and the cancellation goes on;
- anything else is a bug: logged with its traceback and handed back like ``HandBack``.

A channel the broker already closed cannot take the answer; the broker has requeued
the job itself, and every step is idempotent, so that is logged once and not raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

from aio_pika.abc import AbstractIncomingMessage

from shared.platform.amqp import CHANNEL_GONE
from shared.platform.metrics import POISON_MESSAGES
from shared.quoting.jobs import MalformedJob, QuoteJob

log = logging.getLogger(__name__)

HAND_BACK_DELAY_S = 1.0


class PoisonJob(Exception):
    """This job can never be processed here (unreadable, unknown insurer or quote)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandBack(Exception):
    """This job cannot be finished now (a dependency is down); another delivery may."""

    def __init__(self, why: str, delay_s: float = HAND_BACK_DELAY_S) -> None:
        super().__init__(why)
        self.why = why
        self.delay_s = delay_s


class Answer(StrEnum):
    """How a job was settled."""

    ACKED = "acked"
    POISON = "poison"
    HANDED_BACK = "handed_back"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Settlement:
    """Filled in when the ``settled`` block has been answered."""

    answer: Answer | None = None


def read_job(message: AbstractIncomingMessage) -> QuoteJob:
    try:
        return QuoteJob.from_body(message.body)
    except MalformedJob:
        raise PoisonJob("unreadable") from None


@asynccontextmanager
async def settled(message: AbstractIncomingMessage, consumer: str) -> AsyncIterator[Settlement]:
    """Answer the broker for ``message`` by how the block ended (see the module's docstring)."""
    settlement = Settlement()
    try:
        yield settlement
    except PoisonJob as exc:
        settlement.answer = Answer.POISON
        POISON_MESSAGES.labels(exc.reason).inc()
        log.warning(
            "rejecting a poison job",
            extra={"consumer": consumer, "reason": exc.reason, "message_id": message.message_id},
        )
        await _answer(message.reject(requeue=False), message)
    except HandBack as exc:
        settlement.answer = Answer.HANDED_BACK
        log.warning(
            "job handed back",
            extra={"consumer": consumer, "why": exc.why, "message_id": message.message_id},
            exc_info=exc.__cause__,
        )
        await asyncio.sleep(exc.delay_s)
        await _answer(message.reject(requeue=True), message)
    except asyncio.CancelledError:
        settlement.answer = Answer.CANCELLED
        await _answer(message.reject(requeue=True), message)
        raise
    except Exception:
        settlement.answer = Answer.HANDED_BACK
        log.exception("job failed unexpectedly; handing it back", extra={"consumer": consumer})
        await asyncio.sleep(HAND_BACK_DELAY_S)
        await _answer(message.reject(requeue=True), message)
    else:
        settlement.answer = Answer.ACKED
        await _answer(message.ack(), message)


async def _answer(answer: Awaitable[None], message: AbstractIncomingMessage) -> None:
    try:
        await answer
    except CHANNEL_GONE as exc:
        log.info(
            "could not settle a job; the broker will redeliver it",
            extra={"message_id": message.message_id, "error": type(exc).__name__},
        )
