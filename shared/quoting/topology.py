"""Every exchange, queue and queue argument, declared in one place.

Any process may start first, so each declares what it uses; re-declaring with the
same arguments is a no-op for the broker. Changing an argument of an existing queue
is refused by the broker (406 PRECONDITION_FAILED), so a mismatch is turned into a
start-up error that names the setting instead of a closed channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.common import FieldTable

JOBS_EXCHANGE = "osago.quote.jobs"  # direct: routing key = insurer code
DEAD_JOBS_EXCHANGE = "osago.quote.dead"  # fanout: expired or rejected jobs
DEAD_JOBS_QUEUE = "osago.quote.dead"
OFFERS_EXCHANGE = "osago.offers"  # fanout: one copy of every event per consuming instance

# A poisoned job is dead-lettered after this many deliveries instead of looping.
JOB_DELIVERY_LIMIT = 5
# Dead jobs carry only ids; keep them a day for inspection, then let the broker drop them.
DEAD_JOBS_TTL_MS = 24 * 3600 * 1000


class JobQueueArguments(TypedDict):
    """Quorum queue: replicated, counts deliveries, dead-letters expired messages promptly."""

    x_queue_type: str
    x_message_ttl: int
    x_dead_letter_exchange: str
    x_delivery_limit: int


class TopologyMismatch(RuntimeError):
    """A queue exists with other arguments than this process would declare."""


def job_queue_name(insurer_code: str) -> str:
    return f"osago.quote.jobs.{insurer_code}"


def job_queue_arguments(deadline_s: float) -> FieldTable:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": int(deadline_s * 1000),
        "x-dead-letter-exchange": DEAD_JOBS_EXCHANGE,
        "x-delivery-limit": JOB_DELIVERY_LIMIT,
    }


async def declare_jobs_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(JOBS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_job_queues(
    channel: AbstractChannel, insurer_codes: Iterable[str], deadline_s: float
) -> dict[str, AbstractQueue]:
    """The jobs exchange, one durable queue per insurer, and the dead-letter path."""
    jobs = await declare_jobs_exchange(channel)
    await declare_dead_jobs_queue(channel)
    queues: dict[str, AbstractQueue] = {}
    for code in insurer_codes:
        name = job_queue_name(code)
        try:
            queue = await channel.declare_queue(name, durable=True, arguments=job_queue_arguments(deadline_s))
        except ChannelPreconditionFailed as exc:
            raise TopologyMismatch(
                f"queue {name} exists with other arguments than OSAGO_QUOTE_DEADLINE_S={deadline_s} gives; "
                "delete the queue or use the deadline it was made with"
            ) from exc
        await queue.bind(jobs, routing_key=code)
        queues[code] = queue
    return queues


async def declare_dead_jobs_queue(channel: AbstractChannel) -> AbstractQueue:
    dead = await channel.declare_exchange(DEAD_JOBS_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(
        DEAD_JOBS_QUEUE,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-message-ttl": DEAD_JOBS_TTL_MS},
    )
    await queue.bind(dead)
    return queue


async def declare_offers_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(OFFERS_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)


async def declare_instance_offers_queue(channel: AbstractChannel) -> AbstractQueue:
    """A server-named exclusive queue: a fixed name would hit RESOURCE_LOCKED on a quick reconnect."""
    exchange = await declare_offers_exchange(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    return queue
