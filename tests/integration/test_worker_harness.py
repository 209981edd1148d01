"""The real worker (``quote_workers.__main__.run``) in this process, in burst mode.

Like arq's ``burst=True`` worker fixture: the worker's own entry point runs against this
module's private database and vhost and an in-process sandbox until N jobs are settled,
then returns how each was settled. Poison, unknown quotes, redelivered finished work and
a database outage are covered here in seconds; the SIGKILL tests in ``tests/faults`` stay
for crashes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest

from quote_workers.__main__ import run
from shared.intake.caller import Caller
from shared.intake.schema import parse_application
from shared.intake.store import store_application
from shared.models import Application, Quote, QuoteStatus
from shared.platform.clock import moscow_today, utc_now
from shared.platform.db import database
from shared.platform.settings import Settings
from shared.quoting import insurers as catalogue
from shared.quoting.jobs import QuoteJob
from shared.quoting.outcomes import StatusOutcome, finalize_quote
from shared.quoting.queue_upgrade import upgrade_job_queues
from shared.quoting.settlement import Answer
from shared.quoting.topology import (
    DEAD_JOBS_EXCHANGE,
    DEAD_JOBS_QUEUE,
    JOBS_EXCHANGE,
    TopologyMismatch,
    declare_job_queues,
    declare_jobs_exchange,
    job_queue_name,
)
from tests.integration.sandbox_fixtures import http, sandbox_url, set_behaviour
from tests.support.infrastructure import RunInfrastructure, private_infrastructure
from tests.support.samples import sample_application
from tests.support.tcp_proxy import TcpProxy

__all__ = ["http", "sandbox_url"]  # fixtures, imported explicitly (no shared conftest)

INSURERS = ("sever", "volga", "ural")  # one per protocol
BURST_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
async def own_infrastructure() -> AsyncIterator[RunInfrastructure]:
    """A database and vhost of this module alone: no other test's jobs reach this worker."""
    async with private_infrastructure(prefix="osago_harness") as (infrastructure, _):
        yield infrastructure


def worker_settings(infrastructure: RunInfrastructure, sandbox: str, **overrides: Any) -> Settings:
    return infrastructure.settings(**{"insurers": INSURERS, "sandbox_url": sandbox, **overrides})


async def run_burst(settings: Settings, jobs: int) -> Counter[Answer]:
    """The worker's entry point until ``jobs`` are settled; how each was."""
    return await asyncio.wait_for(run(settings, asyncio.Event(), burst=jobs), BURST_TIMEOUT_S)


async def new_application(settings: Settings) -> list[QuoteJob]:
    """A stored application with one pending quote per insurer, and its jobs (not published)."""
    async with database(settings):
        payload = parse_application(sample_application(), today=moscow_today()).to_payload()
        application_id = uuid.uuid4()
        quotes = [
            Quote(id=uuid.uuid4(), application_id=application_id, insurer_code=i.code, insurer_name=i.name)
            for i in catalogue.select(INSURERS)
        ]
        deadline = utc_now() + timedelta(seconds=settings.quote_deadline_s)
        await store_application(application_id, Caller("service", None), None, "f" * 64, payload, deadline, quotes)
    return [QuoteJob(str(q.id), str(application_id), q.insurer_code, deadline.timestamp()) for q in quotes]


async def publish(settings: Settings, *messages: tuple[str, bytes]) -> None:
    """Publish raw job bodies (routing key, body), declaring the topology first, with confirms."""
    async with await aio_pika.connect(settings.amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_job_queues(channel, INSURERS)
        exchange = await channel.get_exchange(JOBS_EXCHANGE)
        for routing_key, body in messages:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key=routing_key)


def job_body(job: QuoteJob) -> bytes:
    return job.to_message().body


async def dead_jobs_waiting(settings: Settings) -> int:
    async with await aio_pika.connect(settings.amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(DEAD_JOBS_QUEUE, passive=True)
        count = queue.declaration_result.message_count
        return int(count or 0)


async def statuses(settings: Settings, jobs: list[QuoteJob]) -> dict[str, QuoteStatus]:
    """Read with a connection of its own: Tortoise is the worker's while a burst runs."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT insurer_code, status FROM quote WHERE id = ANY($1::uuid[])", [job.quote_uuid for job in jobs]
        )
    finally:
        await connection.close()
    return {row["insurer_code"]: QuoteStatus(row["status"]) for row in rows}


async def answer_at_once(http: aiohttp.ClientSession, sandbox: str) -> None:
    for code in INSURERS:
        await set_behaviour(http, sandbox, code, mode="ok", latency_ms=[0, 10])


async def insurer_calls(http: aiohttp.ClientSession, sandbox: str) -> int:
    """Quote ids the sandbox was asked about (it remembers each as an idempotency key)."""
    async with http.get(f"{sandbox}/sandbox/stats") as response:
        stats: dict[str, int] = await response.json()
        return stats["idempotency_keys"]


async def test_a_burst_prices_every_job_and_stores_each_outcome(
    own_infrastructure: RunInfrastructure, sandbox_url: str, http: aiohttp.ClientSession
) -> None:
    settings = worker_settings(own_infrastructure, sandbox_url)
    await answer_at_once(http, sandbox_url)
    jobs = await new_application(settings)
    await publish(settings, *((job.insurer_code, job_body(job)) for job in jobs))

    answers = await run_burst(settings, len(jobs))

    assert answers == Counter({Answer.ACKED: 3})
    assert await statuses(settings, jobs) == {code: QuoteStatus.OFFERED for code in INSURERS}
    # Nobody consumes the offers fanout in this vhost: the events still count as published
    # (confirmed, not returned), so the outbox relay does not publish them again and again.
    async with database(settings):
        assert await Quote.filter(id__in=[job.quote_id for job in jobs], event_published=False).count() == 0
        assert await Application.get(id=jobs[0].application_id).values_list("complete_event_published", flat=True)


async def test_poison_jobs_are_rejected_once_each_and_dead_lettered(
    own_infrastructure: RunInfrastructure, sandbox_url: str, http: aiohttp.ClientSession
) -> None:
    settings = worker_settings(own_infrastructure, sandbox_url)
    stranger = QuoteJob(str(uuid.uuid4()), str(uuid.uuid4()), "sever", utc_now().timestamp() + 30)
    wrong_insurer = {**json.loads(job_body(stranger)), "insurer": "no-such-insurer"}
    dead_before = await dead_jobs_waiting(settings)
    await publish(
        settings,
        ("sever", b"\xff not json"),
        ("volga", json.dumps({"v": 99, "quote_id": stranger.quote_id}).encode()),
        ("ural", json.dumps(wrong_insurer).encode()),  # the queue is ural's; the body names nobody we serve
        ("sever", job_body(stranger)),  # well-formed, but no such quote is stored
    )

    answers = await run_burst(settings, 4)

    assert answers == Counter({Answer.POISON: 4})
    assert await insurer_calls(http, sandbox_url) == 0
    for _ in range(50):  # a quorum queue counts a dead-lettered message once it is written
        if await dead_jobs_waiting(settings) - dead_before == 4:
            break
        await asyncio.sleep(0.1)
    assert await dead_jobs_waiting(settings) - dead_before == 4


async def test_a_job_whose_quote_is_final_is_acked_without_asking_the_insurer(
    own_infrastructure: RunInfrastructure, sandbox_url: str, http: aiohttp.ClientSession
) -> None:
    settings = worker_settings(own_infrastructure, sandbox_url)
    jobs = await new_application(settings)
    finished = StatusOutcome(QuoteStatus.DECLINED, "declined before this delivery")
    async with database(settings):
        for job in jobs:
            assert (await finalize_quote(job.quote_uuid, finished)).recorded
    await publish(settings, *((job.insurer_code, job_body(job)) for job in jobs))

    answers = await run_burst(settings, len(jobs))

    assert answers == Counter({Answer.ACKED: 3})
    assert await insurer_calls(http, sandbox_url) == 0
    assert await statuses(settings, jobs) == {code: QuoteStatus.DECLINED for code in INSURERS}


async def test_a_job_is_held_while_the_database_is_away_and_finished_when_it_returns(
    own_infrastructure: RunInfrastructure, sandbox_url: str, http: aiohttp.ClientSession
) -> None:
    """Not handed back: each hand-back would spend the queue's delivery limit, meant for poison."""
    settings = worker_settings(own_infrastructure, sandbox_url)
    await answer_at_once(http, sandbox_url)
    job = (await new_application(settings))[0]
    await publish(settings, (job.insurer_code, job_body(job)))
    host, port = "127.0.0.1", 5432
    proxy = TcpProxy(host, port)  # down from the start: the worker's database is unreachable
    through_proxy = settings.database_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    cut_off = worker_settings(own_infrastructure, sandbox_url, database_url=through_proxy)

    burst = asyncio.create_task(run_burst(cut_off, 1))
    await asyncio.sleep(2.0)
    assert not burst.done()
    assert (await statuses(settings, [job]))[job.insurer_code] is QuoteStatus.PENDING
    await proxy.up()
    try:
        answers = await burst
    finally:
        await proxy.down()
    assert answers == Counter({Answer.ACKED: 1})
    assert (await statuses(settings, [job]))[job.insurer_code] is QuoteStatus.OFFERED


async def test_queues_of_an_older_release_stop_services_cleanly_and_migrate_rebuilds_them_keeping_every_job(
    own_infrastructure: RunInfrastructure, sandbox_url: str, http: aiohttp.ClientSession
) -> None:
    """Releases before this one carried the deadline as the queues' x-message-ttl."""
    settings = worker_settings(own_infrastructure, sandbox_url)
    await answer_at_once(http, sandbox_url)
    code = "altai"  # a queue no other test of this module has declared yet
    old_style = {"x-queue-type": "quorum", "x-message-ttl": 10_000, "x-dead-letter-exchange": DEAD_JOBS_EXCHANGE}
    jobs = [job for _ in range(3) for job in await new_application(settings) if job.insurer_code == "sever"]
    async with await aio_pika.connect(settings.amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_jobs_exchange(channel)
        await channel.queue_delete(job_queue_name(code))  # migrate() made it as this release does
        old = await channel.declare_queue(
            job_queue_name(code), durable=True, arguments={**old_style, "x-delivery-limit": 5}
        )
        await old.bind(exchange, routing_key=code)
        for job in jobs:  # sever's jobs, parked in the old altai queue so that they are priced once moved
            await channel.default_exchange.publish(job.to_message(), routing_key=job_queue_name(code))
        await channel.default_exchange.publish(aio_pika.Message(b"garbage"), routing_key=job_queue_name(code))

    with pytest.raises(TopologyMismatch, match="osago-admin migrate"):
        await run_burst(worker_settings(own_infrastructure, sandbox_url, insurers=(code,)), 1)

    rebuilt = await upgrade_job_queues(settings.amqp_url, [code, "sever"])
    assert rebuilt == {code: len(jobs) + 1}  # sever's queue is current: left alone
    assert await upgrade_job_queues(settings.amqp_url, [code]) == {}  # nothing left to do

    # The rebuilt queue takes this release's arguments, and a deadline of another length
    # changes nothing in the broker any more.
    longer = worker_settings(own_infrastructure, sandbox_url, insurers=(code,), quote_deadline_s=37.0)
    async with await aio_pika.connect(longer.amqp_url) as connection:
        channel = await connection.channel()
        queue = (await declare_job_queues(channel, [code]))[code]
        assert queue.declaration_result.message_count == len(jobs) + 1
    # The moved jobs name sever, which this worker does not serve: poison, all of them, and the garbage.
    answers = await run_burst(longer, len(jobs) + 1)
    assert answers == Counter({Answer.POISON: len(jobs) + 1})


@pytest.mark.parametrize(
    ("prefetch", "concurrency", "most_at_once"),
    [(6, 20, 2), (30, 1, 1)],
    ids=["prefetch-per-worker", "calls-per-insurer"],
)
async def test_prefetch_bounds_the_whole_worker_and_calls_are_bounded_per_insurer(
    own_infrastructure: RunInfrastructure,
    sandbox_url: str,
    http: aiohttp.ClientSession,
    prefetch: int,
    concurrency: int,
    most_at_once: int,
) -> None:
    """RabbitMQ counts prefetch per consumer and a worker has one consumer per insurer queue:
    a prefetch of 6 over 3 queues lets 2 jobs of each insurer in at once (it let in 6 each)."""
    settings = worker_settings(
        own_infrastructure, sandbox_url, worker_prefetch=prefetch, insurer_concurrency=concurrency
    )
    for code in INSURERS:
        await set_behaviour(http, sandbox_url, code, mode="ok", latency_ms=[300, 300])
    jobs = [job for _ in range(4) for job in await new_application(settings)]  # 4 per insurer
    await publish(settings, *((job.insurer_code, job_body(job)) for job in jobs))

    assert await run_burst(settings, len(jobs)) == Counter({Answer.ACKED: len(jobs)})

    async with http.get(f"{sandbox_url}/sandbox/stats") as response:
        at_once = (await response.json())["most_calls_at_once"]
    # volga's protocol (submit, then poll) waits in its polls, which this does not count.
    assert at_once == {"sever": most_at_once, "ural": most_at_once}
