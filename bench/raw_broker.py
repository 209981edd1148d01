"""3a. The broker's own limit on this machine, with our message sizes and guarantees.

A quorum queue declared exactly like ours (``shared.quoting.topology``: TTL, dead-lettering,
delivery limit), job messages built by ``QuoteJob.to_message`` (persistent, with
per-message expiration), publisher confirms, manual acks. Measured with aio-pika,
the library the system uses, on one connection per side:

- publish: persistent + confirmed, as a tuned client does it: batches of BATCH publishes written
  without waiting for the socket to drain, each batch's confirms awaited together, DEPTH batches
  in flight (the broker then confirms with ``multiple`` and its write-ahead log syncs once for
  many). This is the limit every other figure is quoted against (``publish_limit``). The
  previous way, one awaited ``exchange.publish`` per task under a window of 256, is kept beside
  it (``publish_one_task_each_per_s``): it is how the services publish one message at a time;
- consume: manual ack, from a full queue;
- both at once: publisher and consumer running together (the steady state of a pipeline);
- events: our offer events (non-persistent, confirmed) to the fanout exchange with
  three bound instance queues (two core apps and the aggregator), each consumed and acked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any, cast

import aio_pika
import aiormq

from bench.infra import private_infrastructure
from bench.system import CpuMeter, own_pid
from shared.quoting.events import event_message
from shared.quoting.jobs import QuoteJob
from shared.quoting.topology import (
    JOBS_EXCHANGE,
    declare_instance_offers_queue,
    declare_job_queues,
    declare_offers_exchange,
)
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS

INSURER = "bench"
WINDOW = 256  # confirms in flight, one task each (the services' way)
BATCH = 2000  # a tuned client's batch: written together, confirms awaited together
DEPTH = 3  # batches in flight
PREFETCH = 256


def _job(deadline_epoch: float) -> aio_pika.Message:
    job = QuoteJob(str(uuid.uuid4()), str(uuid.uuid4()), INSURER, deadline_epoch)
    return job.to_message()


def _event() -> aio_pika.Message:
    # The size of a real offer event (API.md shape).
    return event_message(
        {
            "type": "offer",
            "event_id": str(uuid.uuid4()),
            "application_id": str(uuid.uuid4()),
            "insurer": {"code": "sever", "name": "Северная страховая"},
            "offer": {
                "id": str(uuid.uuid4()),
                "premium": "9441.80",
                "currency": "RUB",
                "coefficients": dict(WORKED_EXAMPLE_COEFFICIENTS),
                "valid_until": "2026-12-04T12:00:00Z",
                "insurer_reference": "SEV-2026-1234567",
            },
        }
    )


async def _publish(exchange: aio_pika.abc.AbstractExchange, make: Any, count: int, routing_key: str) -> float:
    window = asyncio.Semaphore(WINDOW)
    failures = 0

    async def one() -> None:
        nonlocal failures
        try:
            await exchange.publish(make(), routing_key=routing_key, mandatory=True)
        except Exception:
            failures += 1
        finally:
            window.release()

    tasks = []
    started = time.perf_counter()
    for _ in range(count):
        await window.acquire()
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} publishes were not confirmed")
    return elapsed


async def _publish_batched(
    channel: aio_pika.abc.AbstractChannel, exchange: str, make: Any, count: int, routing_key: str
) -> float:
    """aiormq's publish under aio-pika, ``wait=False`` (no drain per message), gathered per batch."""
    # The concrete channel: the abstract one does not declare ``wait``.
    underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
    in_flight: list[asyncio.Future[list[Any]]] = []
    started = time.perf_counter()
    sent = 0
    results: list[Any] = []
    while sent < count:
        messages = [make() for _ in range(min(BATCH, count - sent))]
        sent += len(messages)
        batch = asyncio.gather(
            *(
                underlay.basic_publish(
                    m.body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=m.properties,
                    mandatory=True,
                    wait=False,
                )
                for m in messages
            )
        )
        in_flight.append(batch)
        if len(in_flight) >= DEPTH:
            results += await in_flight.pop(0)
    for batch in in_flight:
        results += await batch
    elapsed = time.perf_counter() - started
    # A returned (unroutable) message comes back as a DeliveredMessage, a nack as Basic.Nack.
    unconfirmed = sum(1 for r in results if not isinstance(r, aiormq.spec.Basic.Ack))
    if unconfirmed:
        raise RuntimeError(f"{unconfirmed} publishes were not confirmed")
    return elapsed


async def publish_limit(amqp_url: str, count: int) -> dict[str, Any]:
    """The tuned confirmed publish of job messages into a fresh job queue, with its CPU cost."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = (await declare_job_queues(channel, [INSURER]))[INSURER]
        deadline = time.time() + 3600
        meter = CpuMeter({"client (aio-pika)": [own_pid()]})
        meter.start()
        seconds = await _publish_batched(channel, JOBS_EXCHANGE, lambda: _job(deadline), count, INSURER)
        cpu = meter.stop()
        await queue.purge()
    finally:
        await connection.close()
    per_s = count / seconds
    cores = cpu["cores_used"]
    return {
        "publish_persistent_confirmed_per_s": round(per_s),
        "messages": count,
        "batch": BATCH,
        "batches_in_flight": DEPTH,
        "broker_cpu_ms_per_message": round(1000 * cores.get("rabbitmq", 0.0) / per_s, 3),
        "client_cpu_ms_per_message": round(1000 * cores.get("client (aio-pika)", 0.0) / per_s, 3),
        "cpu": cpu,
    }


async def _consume(queue: aio_pika.abc.AbstractQueue, count: int) -> float:
    done = asyncio.Event()
    received = 0
    started = time.perf_counter()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received
        await message.ack()
        received += 1
        if received >= count:
            done.set()

    tag = await queue.consume(on_message)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    await queue.cancel(tag)
    return elapsed


async def run(count: int = 20_000) -> dict[str, Any]:
    async with private_infrastructure("broker", schema=False) as infra:
        publisher_conn = await aio_pika.connect(infra.amqp_url)
        consumer_conn = await aio_pika.connect(infra.amqp_url)
        try:
            pub = await publisher_conn.channel(publisher_confirms=True, on_return_raises=True)
            sub = await consumer_conn.channel()
            await sub.set_qos(prefetch_count=PREFETCH)
            queue = (await declare_job_queues(sub, [INSURER]))[INSURER]
            jobs = await pub.get_exchange(JOBS_EXCHANGE)
            deadline = time.time() + 3600
            job_size = len(_job(deadline).body)

            meter = CpuMeter({"client (aio-pika)": [own_pid()]})
            meter.start()
            publish_s = await _publish_batched(pub, JOBS_EXCHANGE, lambda: _job(deadline), count, INSURER)
            publish_cpu = meter.stop()
            meter.start()
            consume_s = await _consume(queue, count)
            consume_cpu = meter.stop()

            meter.start()
            one_each_s = await _publish(jobs, lambda: _job(deadline), count, INSURER)
            one_each_cpu = meter.stop()
            await queue.purge()

            consumer = asyncio.create_task(_consume(queue, count))
            both_s = await _publish_batched(pub, JOBS_EXCHANGE, lambda: _job(deadline), count, INSURER)
            both_s = max(both_s, await consumer)

            offers = await declare_offers_exchange(pub)
            instance_queues = [await declare_instance_offers_queue(sub) for _ in range(3)]
            event_size = len(_event().body)
            consumers = [asyncio.create_task(_consume(q, count // 2)) for q in instance_queues]
            events_s = await _publish_batched(pub, offers.name, _event, count // 2, "")
            events_s = max([events_s, *(await asyncio.gather(*consumers))])
        finally:
            await publisher_conn.close()
            await consumer_conn.close()
    return {
        "queue": "quorum, x-message-ttl, dead-lettering, x-delivery-limit (shared.quoting.topology)",
        "job_message_bytes": job_size,
        "event_message_bytes": event_size,
        "messages": count,
        "batch": BATCH,
        "batches_in_flight": DEPTH,
        "confirm_window_one_task_each": WINDOW,
        "prefetch": PREFETCH,
        "publish_persistent_confirmed_per_s": round(count / publish_s),
        "publish_one_task_each_per_s": round(count / one_each_s),
        "consume_acked_per_s": round(count / consume_s),
        "publish_and_consume_together_per_s": round(count / both_s),
        "event_fanout_3_queues_published_per_s": round((count // 2) / events_s),
        "event_fanout_3_queues_delivered_per_s": round(3 * (count // 2) / events_s),
        "cpu_publish": publish_cpu,
        "cpu_consume": consume_cpu,
        "cpu_publish_one_task_each": one_each_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.raw_broker", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages)), indent=2))


if __name__ == "__main__":
    main()
