"""Rebuilding job queues made by an older release, without losing a job.

A queue's arguments cannot change in place, so a queue declared with other arguments than
``topology.job_queue_arguments`` (releases before 2026-12 carried the deadline as
``x-message-ttl``) is rebuilt: a holding queue takes the insurer's routing key (new jobs
wait there), the old queue's jobs move to it one by one (each acked only after the broker
confirmed its copy), the old queue is deleted and declared anew, and everything moves back.
Each moved job gets a fresh expiration equal to what is left until its application's
deadline. A crash at any step leaves every job in one of the two queues (at worst twice,
which workers and the outcome statement absorb); running it again finishes the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp.common import FieldTable

from shared.quoting.jobs import MalformedJob, QuoteJob
from shared.quoting.topology import (
    declare_dead_jobs_queue,
    declare_jobs_exchange,
    job_queue_arguments,
    job_queue_name,
    refused_as_inequivalent,
)

log = logging.getLogger(__name__)

HOLDING_QUEUE_ARGUMENTS: FieldTable = {"x-queue-type": "quorum"}


class QueueInUse(RuntimeError):
    """A queue to rebuild still has consumers."""


def holding_queue_name(insurer_code: str) -> str:
    return f"{job_queue_name(insurer_code)}.upgrade"


async def upgrade_job_queues(
    amqp_url: str, insurer_codes: Iterable[str], *, quorum_group_size: int = 0
) -> dict[str, int]:
    """Rebuild every job queue of ``insurer_codes`` that needs it; jobs moved per rebuilt queue."""
    arguments = job_queue_arguments(quorum_group_size)
    # A plain connection: a channel the broker closes (the probe) is an answer, not an outage.
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_jobs_exchange(channel)
        await declare_dead_jobs_queue(channel)
        rebuilt: dict[str, int] = {}
        for code in insurer_codes:
            name, holding_name = job_queue_name(code), holding_queue_name(code)
            if await _declares_as_current(connection, name, arguments):
                # A run that stopped after the rebuild may have left jobs in the holding queue.
                holding = await _existing_queue(connection, channel, holding_name)
                if holding is not None:
                    rebuilt[code] = await _move_back(channel, exchange, holding, name, code)
                continue
            old = await channel.declare_queue(name, passive=True)
            if old.declaration_result.consumer_count:
                # Their unacked jobs would come back to a queue about to be deleted.
                raise QueueInUse(f"queue {name} has consumers; stop every worker before `osago-admin migrate`")
            holding = await channel.declare_queue(holding_name, durable=True, arguments=HOLDING_QUEUE_ARGUMENTS)
            await holding.bind(exchange, routing_key=code)
            await old.unbind(exchange, routing_key=code)
            moved = await _move(channel, old, holding_name)
            await _delete_drained(channel, old)
            queue = await channel.declare_queue(name, durable=True, arguments=arguments)
            await queue.bind(exchange, routing_key=code)
            await _move_back(channel, exchange, holding, name, code)
            rebuilt[code] = moved
            log.warning("job queue rebuilt with this release's arguments", extra={"queue": name, "jobs_moved": moved})
    return rebuilt


async def _declares_as_current(connection: AbstractConnection, name: str, arguments: FieldTable) -> bool:
    probe = await connection.channel()
    try:
        await probe.declare_queue(name, durable=True, arguments=arguments)
    except (ChannelPreconditionFailed, asyncio.CancelledError) as exc:
        if not refused_as_inequivalent(exc):
            raise
        return False  # the broker closed the probe channel
    await probe.close()
    return True


async def _existing_queue(connection: AbstractConnection, channel: AbstractChannel, name: str) -> AbstractQueue | None:
    probe = await connection.channel()
    try:
        await probe.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return None
    await probe.close()
    return await channel.declare_queue(name, passive=True)


async def _move_back(
    channel: AbstractChannel, exchange: aio_pika.abc.AbstractExchange, holding: AbstractQueue, name: str, code: str
) -> int:
    await holding.unbind(exchange, routing_key=code)
    moved = await _move(channel, holding, name)
    await _delete_drained(channel, holding)
    return moved


async def _delete_drained(channel: AbstractChannel, queue: AbstractQueue) -> None:
    """Delete a queue just emptied; quorum queues refuse ``if_empty``, so the count is checked here
    (the queue is unbound and has no consumer: nothing can arrive in between)."""
    left = (await channel.declare_queue(queue.name, passive=True)).declaration_result.message_count
    if left:
        raise RuntimeError(f"queue {queue.name} still holds {left} messages; not deleted")
    await queue.delete(if_unused=False, if_empty=False)


async def _move(channel: AbstractChannel, source: AbstractQueue, target: str) -> int:
    moved = 0
    while (message := await source.get(no_ack=False, fail=False)) is not None:
        await channel.default_exchange.publish(_renewed(message), routing_key=target)  # confirmed
        await message.ack()
        moved += 1
    return moved


def _renewed(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The same job, expiring at its application's deadline; anything unreadable as it was."""
    try:
        return QuoteJob.from_body(message.body).to_message()
    except MalformedJob:
        return aio_pika.Message(
            message.body,
            headers=message.headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            expiration=message.expiration,
        )
