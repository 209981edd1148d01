"""The 60-second promise with nobody to do the work: queue TTL + dead-lettering, and the sweeper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from shared.models import QuoteStatus
from tests.faults.conftest import FAULT_DEADLINE_S
from tests.support.cluster import Cluster, application_row, eventually, quotes_of
from tests.support.infrastructure import BrokerAdmin
from tests.support.samples import sample_application


async def wait_complete(application_id: str, within_s: float) -> float:
    started = time.monotonic()

    async def complete() -> bool:
        return (await application_row(application_id)).status == "complete"

    assert await eventually(complete, within_s), f"not complete within {within_s} s"
    return time.monotonic() - started


async def test_jobs_nobody_picked_up_expire_into_timed_out(
    make_cluster: Callable[..., Cluster], fault_broker: BrokerAdmin
) -> None:
    # No worker at all: the broker's TTL dead-letters every job, the aggregator records it.
    cluster = make_cluster(OSAGO_SWEEPER_GRACE_S="30")  # keep the sweeper out of this test
    await cluster.start(cluster.aggregator())
    status, created = await cluster.create(sample_application())
    assert status == 201

    await wait_complete(created["id"], FAULT_DEADLINE_S + 5)
    quotes = await quotes_of(created["id"])
    assert {q.status for q in quotes} == {QuoteStatus.TIMED_OUT}
    assert all(q.reason == "the request expired in the queue before the insurer was asked" for q in quotes), [
        (q.insurer_code, q.reason) for q in quotes
    ]
    row = await application_row(created["id"])
    assert row.completed_at is not None and (row.completed_at - row.deadline).total_seconds() < 5

    # The management API samples queue lengths every few seconds, and the last dead-lettered job is
    # acked just after its quote is stored: poll for drained queues instead of reading one sample.
    async def quote_queues_drained() -> bool:
        queues = await fault_broker.queues(cluster.infrastructure.vhost)
        return all(q.get("messages", 0) == 0 for q in queues if str(q["name"]).startswith("osago.quote."))

    assert await eventually(quote_queues_drained, 15, interval=0.5), await fault_broker.queues(
        cluster.infrastructure.vhost
    )


async def test_sweeper_closes_quotes_whose_jobs_were_lost(
    make_cluster: Callable[..., Cluster], fault_broker: BrokerAdmin
) -> None:
    cluster = make_cluster()
    await cluster.start(cluster.aggregator())
    status, created = await cluster.create(sample_application())
    assert status == 201

    # The 201 does not wait for the jobs' confirms: wait until every job is in its queue.
    async def every_job_published() -> bool:
        return all(q.job_published for q in await quotes_of(created["id"]))

    assert await eventually(every_job_published, 10)
    # Lose every job: purge the queues, so neither a worker nor the TTL will ever see them.
    for queue in await fault_broker.queues(cluster.infrastructure.vhost):
        if str(queue["name"]).startswith("osago.quote.jobs."):
            await fault_broker.purge_queue(cluster.infrastructure.vhost, str(queue["name"]))

    await wait_complete(created["id"], FAULT_DEADLINE_S + 5)
    quotes = await quotes_of(created["id"])
    assert {q.status for q in quotes} == {QuoteStatus.TIMED_OUT}
    assert all(q.reason == "no outcome was recorded before the deadline" for q in quotes)


async def test_late_worker_processes_no_stale_job(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    status, created = await cluster.create(sample_application())
    assert status == 201
    await wait_complete(created["id"], FAULT_DEADLINE_S + 5)

    worker = cluster.worker("late-worker")
    await cluster.start(worker)
    await asyncio.sleep(1)  # time for any stale job to be delivered, were there one
    quotes = await quotes_of(created["id"])
    # Nobody asked any insurer: every expired job left the queue before the worker came.
    assert all(q.status is QuoteStatus.TIMED_OUT and q.attempts == 0 for q in quotes)
    assert b"rejecting a poison job" not in worker.log_since_start()
