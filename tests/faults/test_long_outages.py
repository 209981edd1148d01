"""Outages longer than any retry loop, inside the deadline: nothing an insurer answered is lost.

The database or the broker is cut (a TCP proxy that resets connections and refuses new
ones) for 20 s, or for the deadline less 5 s, while every insurer takes 3 s to answer. Every
quote whose insurer answered must end `offered`, and no insurer may be asked twice for one
quote. A slow broker (every chunk delayed) must not make the outbox relay publish a job
twice either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shared.models import QuoteStatus
from tests.faults.conftest import fault_environment, through
from tests.support.cluster import Cluster, application_row, eventually, quotes_of
from tests.support.infrastructure import BrokerAdmin, RunInfrastructure
from tests.support.processes import ServiceProcess
from tests.support.samples import sample_application
from tests.support.tcp_proxy import TcpProxy

DEADLINE_S = 30.0
INSURER_LATENCY_MS = [3000, 3000]
APPLICATIONS = 5


@pytest.fixture(scope="module")
async def fault_env() -> AsyncIterator[tuple[RunInfrastructure, BrokerAdmin]]:
    """This module's own database and vhost, with a deadline long enough for 20 s outages."""
    async with fault_environment(DEADLINE_S) as env:
        yield env


async def sandbox_stats(cluster: Cluster) -> dict[str, int]:
    async with cluster.session.get(f"{cluster.sandbox_url}/sandbox/stats") as response:
        stats: dict[str, int] = await response.json()
        return stats


async def submit(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    created = []
    for _ in range(count):
        status, body = await cluster.create(sample_application())
        assert status == 201, body
        created.append(body)
    return created


async def all_complete(created: list[dict[str, Any]], within_s: float) -> bool:
    async def complete() -> bool:
        return all([(await application_row(c["id"])).status == "complete" for c in created])

    return await eventually(complete, within_s, interval=0.5)


async def statuses_of(created: list[dict[str, Any]]) -> dict[QuoteStatus, int]:
    counts: dict[QuoteStatus, int] = {}
    for application in created:
        for quote in await quotes_of(application["id"]):
            counts[quote.status] = counts.get(quote.status, 0) + 1
    return counts


async def cut(proxy: TcpProxy, seconds: float) -> None:
    await proxy.down()
    await asyncio.sleep(seconds)
    await proxy.up()


async def run_with_a_cut(cluster: Cluster, worker: ServiceProcess, proxy: TcpProxy, seconds: float) -> None:
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(worker)
    await cluster.behave_all(mode="ok", latency_ms=INSURER_LATENCY_MS)
    created = await submit(cluster, APPLICATIONS)
    await asyncio.sleep(1.0)  # every job taken and its quote read; every insurer is answering
    await cut(proxy, seconds)

    assert await all_complete(created, DEADLINE_S + 5), await statuses_of(created)
    counts = await statuses_of(created)
    print(f"\n{seconds:g} s cut: statuses { ({s.value: n for s, n in counts.items()}) }")
    assert counts == {QuoteStatus.OFFERED: APPLICATIONS * 10}
    stats = await sandbox_stats(cluster)
    assert stats["quotes_asked"] == APPLICATIONS * 10
    assert stats["most_times_one_quote_was_asked"] == 1
    assert b"job handed back" not in worker.log_since_start()


@pytest.mark.parametrize("seconds", [20.0, DEADLINE_S - 5], ids=["20s", "deadline-5s"])
async def test_a_long_database_cut_keeps_every_answer(
    make_cluster: Callable[..., Cluster],
    database_proxy: TcpProxy,
    fault_infrastructure: RunInfrastructure,
    seconds: float,
) -> None:
    cluster = make_cluster()
    worker = cluster.worker("worker", OSAGO_DATABASE_URL=through(fault_infrastructure.database_url, database_proxy))
    await run_with_a_cut(cluster, worker, database_proxy, seconds)
    assert b"waiting out an outage" in worker.log_since_start()


async def test_a_20_s_broker_cut_keeps_every_answer(
    make_cluster: Callable[..., Cluster], broker_proxy: TcpProxy, fault_infrastructure: RunInfrastructure
) -> None:
    cluster = make_cluster()
    worker = cluster.worker("worker", OSAGO_AMQP_URL=through(fault_infrastructure.amqp_url, broker_proxy))
    await run_with_a_cut(cluster, worker, broker_proxy, 20.0)


async def test_a_slow_broker_gets_no_job_published_twice(
    make_cluster: Callable[..., Cluster], fault_infrastructure: RunInfrastructure
) -> None:
    """Every chunk to and from the broker waits 1.5 s, so a confirm takes about 3 s: longer than
    the relay's old 2 s settle time, within the 5 s publish timeout."""
    slow = TcpProxy("127.0.0.1", 5672)
    await slow.up()
    try:
        cluster = make_cluster(OSAGO_PUBLISH_TIMEOUT_S="5")  # a confirm of about 3 s is no failure
        aggregator = cluster.aggregator(OSAGO_AMQP_URL=through(fault_infrastructure.amqp_url, slow))
        await cluster.start(cluster.sandbox(), aggregator)
        await cluster.start(cluster.worker("worker"))
        await cluster.behave_all(mode="ok", latency_ms=[10, 30])
        slow.latency_s = 1.5  # from now on: the aggregator started at full speed
        created = await submit(cluster, APPLICATIONS)
        assert await all_complete(created, DEADLINE_S), await statuses_of(created)
        await asyncio.sleep(8)  # past the relay's settle time: anything it would republish, it has
        stats = await sandbox_stats(cluster)
        assert stats["quotes_asked"] == APPLICATIONS * 10
        assert stats["most_times_one_quote_was_asked"] == 1
    finally:
        await slow.down()
