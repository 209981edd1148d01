"""Every exchange, queue and queue argument, declared in one place.

Any process may start first, so each declares what it uses; re-declaring with the
same arguments is a no-op for the broker. The arguments depend on no setting: the
deadline travels in each job (a per-message expiration equal to what is left until its
application's deadline), so changing ``OSAGO_QUOTE_DEADLINE_S`` needs nothing here.

Changing an argument of an existing queue is refused by the broker (406
PRECONDITION_FAILED). Queues made by an older release (which carried the deadline as
``x-message-ttl``) are rebuilt by ``upgrade_job_queues`` (run by ``osago-admin migrate``),
which moves their jobs aside and back without losing one; a service that meets such a
queue stops with an error that says so instead of a closed channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator

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


class TopologyMismatch(RuntimeError):
    """A queue exists with other arguments than this release declares."""


@contextlib.contextmanager
def exit_on_topology_mismatch(log: logging.Logger) -> Iterator[None]:
    """A service entry point meeting an older release's queue says what to run, and exits 2."""
    try:
        yield
    except TopologyMismatch as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(2) from None


def job_queue_name(insurer_code: str) -> str:
    return f"osago.quote.jobs.{insurer_code}"


# Quorum queue: replicated, counts deliveries, dead-letters expired messages promptly.
JOB_QUEUE_ARGUMENTS: FieldTable = {
    "x-queue-type": "quorum",
    "x-dead-letter-exchange": DEAD_JOBS_EXCHANGE,
    "x-delivery-limit": JOB_DELIVERY_LIMIT,
}


def job_queue_arguments(quorum_group_size: int = 0) -> FieldTable:
    """The job queues' arguments; a group size (``OSAGO_AMQP_QUORUM_GROUP_SIZE``) pins how many
    nodes hold each queue (3 on `make run-ha`'s cluster). 0 leaves it to the broker and out of
    the arguments, so a single node's queues stay as they were (the broker compares it on
    every declaration: a queue declared with another value is rebuilt by ``upgrade_job_queues``)."""
    if quorum_group_size <= 0:
        return JOB_QUEUE_ARGUMENTS
    return {**JOB_QUEUE_ARGUMENTS, "x-quorum-initial-group-size": quorum_group_size}


async def declare_jobs_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(JOBS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_job_queues(
    channel: AbstractChannel, insurer_codes: Iterable[str], *, quorum_group_size: int = 0
) -> dict[str, AbstractQueue]:
    """The jobs exchange, one durable queue per insurer, and the dead-letter path."""
    arguments = job_queue_arguments(quorum_group_size)
    jobs = await declare_jobs_exchange(channel)
    await declare_dead_jobs_queue(channel)
    queues: dict[str, AbstractQueue] = {}
    for code in insurer_codes:
        name = job_queue_name(code)
        try:
            queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        except (ChannelPreconditionFailed, asyncio.CancelledError) as exc:
            if not refused_as_inequivalent(exc):
                raise
            raise TopologyMismatch(
                f"queue {name} was made by an older release (other arguments); "
                "run `osago-admin migrate`, which rebuilds it and keeps its jobs"
            ) from None
        await queue.bind(jobs, routing_key=code)
        queues[code] = queue
    return queues


def refused_as_inequivalent(exc: BaseException) -> bool:
    """The broker refused a declaration's arguments. aio-pika raises that as
    ChannelPreconditionFailed, or, when the closing channel cancels the pending call, as a
    CancelledError carrying the broker's text: told apart from a real cancellation of
    this task by the task's own cancellation count."""
    if isinstance(exc, ChannelPreconditionFailed):
        return True
    task = asyncio.current_task()
    return task is not None and not task.cancelling() and "PRECONDITION_FAILED" in str(exc)


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
