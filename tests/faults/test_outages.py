"""Broker and database outages: nothing accepted is lost, requests never hang, and every
process recovers by itself. Outages are real: a TCP proxy that resets connections and
refuses new ones stands between one service and PostgreSQL or RabbitMQ, and the broker's
management API force-closes live connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from shared.models import Quote, QuoteStatus
from tests.faults.conftest import FAULT_DEADLINE_S, through
from tests.support.cluster import Cluster, application_row, eventually, quotes_of
from tests.support.infrastructure import BrokerAdmin, RunInfrastructure
from tests.support.samples import sample_application
from tests.support.tcp_proxy import TcpProxy


async def complete_with_offers(application_id: str, within_s: float) -> list[Quote]:
    async def complete() -> bool:
        return (await application_row(application_id)).status == "complete"

    assert await eventually(complete, within_s), "not complete in time"
    return await quotes_of(application_id)


async def test_application_accepted_while_the_broker_is_down_is_published_when_it_returns(
    make_cluster: Callable[..., Cluster], broker_proxy: TcpProxy, fault_infrastructure: RunInfrastructure
) -> None:
    cluster = make_cluster()
    await cluster.start(
        cluster.sandbox(), cluster.aggregator(OSAGO_AMQP_URL=through(fault_infrastructure.amqp_url, broker_proxy))
    )
    await cluster.start(cluster.worker("worker"))
    await cluster.behave_all(mode="ok", latency_ms=[10, 30])

    await broker_proxy.down()
    started = time.monotonic()
    status, created = await cluster.create(sample_application())
    took = time.monotonic() - started
    assert status == 201, created
    assert took < 7, f"accepting must not wait on the broker for long ({took:.1f} s)"
    assert not any(q.job_published for q in await quotes_of(created["id"]))

    await broker_proxy.up()
    quotes = await complete_with_offers(created["id"], FAULT_DEADLINE_S + 5)
    assert all(q.job_published for q in quotes)
    assert {q.status for q in quotes} == {QuoteStatus.OFFERED}


async def test_database_outage_is_503_and_recovers_without_restart(
    make_cluster: Callable[..., Cluster], database_proxy: TcpProxy, fault_infrastructure: RunInfrastructure
) -> None:
    cluster = make_cluster()
    aggregator = cluster.aggregator(OSAGO_DATABASE_URL=through(fault_infrastructure.database_url, database_proxy))
    await cluster.start(cluster.sandbox(), aggregator)
    await cluster.start(cluster.worker("worker"))
    await cluster.behave_all(mode="ok", latency_ms=[10, 30])
    status, _ = await cluster.create(sample_application())
    assert status == 201

    await database_proxy.down()
    started = time.monotonic()
    status, body = await cluster.create(sample_application())
    assert status == 503 and body["error"]["code"] == "unavailable"
    assert time.monotonic() - started < 12, "a dead database must not hang the request"
    async with cluster.session.get(f"{aggregator.url}/readyz") as response:
        assert response.status == 503

    await database_proxy.up()

    async def accepted_again() -> bool:
        status, _ = await cluster.create(sample_application())
        return status == 201

    assert await eventually(accepted_again, 15, interval=0.5)
    assert aggregator.process is not None and aggregator.process.poll() is None, "recovered without a restart"


async def test_worker_database_blip_is_waited_out_and_the_outcome_is_stored_later(
    make_cluster: Callable[..., Cluster], database_proxy: TcpProxy, fault_infrastructure: RunInfrastructure
) -> None:
    cluster = make_cluster()
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    worker = cluster.worker("worker", OSAGO_DATABASE_URL=through(fault_infrastructure.database_url, database_proxy))
    await cluster.start(worker)
    await cluster.behave_all(mode="ok", latency_ms=[800, 900])

    status, created = await cluster.create(sample_application())
    assert status == 201
    await asyncio.sleep(0.4)  # the worker has the jobs and is waiting on the insurers
    await database_proxy.down()
    await asyncio.sleep(1.5)
    await database_proxy.up()

    quotes = await complete_with_offers(created["id"], FAULT_DEADLINE_S + 5)
    assert {q.status for q in quotes} == {QuoteStatus.OFFERED}
    # Held and retried in place, not handed back (that would spend the poison budget).
    log = worker.log_since_start()
    assert b"waiting out an outage" in log and b"job handed back" not in log


async def test_force_closed_broker_connections_reconnect_and_consume_again(
    make_cluster: Callable[..., Cluster], fault_broker: BrokerAdmin
) -> None:
    cluster = make_cluster()
    core = cluster.core("core")
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(cluster.worker("worker"), core)
    await cluster.behave_all(mode="ok", latency_ms=[10, 30])
    vhost = cluster.infrastructure.vhost

    async def consumers_per_job_queue() -> dict[str, int]:
        return {
            str(q["name"]): int(q.get("consumers", 0))
            for q in await fault_broker.queues(vhost)
            if str(q["name"]).startswith("osago.quote.jobs.")
        }

    assert await eventually(lambda: _all_consumed(consumers_per_job_queue), 10)

    async def every_service_connected() -> bool:  # the management API lists connections with a lag
        return len(await fault_broker.connections(vhost)) >= 3

    assert await eventually(every_service_connected, 15, interval=0.5)
    connections = await fault_broker.connections(vhost)
    for connection in connections:
        await fault_broker.close_connection(str(connection["name"]))

    assert await eventually(lambda: _all_consumed(consumers_per_job_queue), 20, interval=0.5)
    status, created = await cluster.create(sample_application(), via=core)
    assert status == 201
    events, close_code = await cluster.collect_events(core, created, timeout=FAULT_DEADLINE_S + 10)
    assert close_code == 1000 and events[-1]["type"] == "complete"
    assert events[-1]["statuses"]["offered"] == len(created["insurers"])


async def _all_consumed(counts: Callable[[], object]) -> bool:
    values = await counts()  # type: ignore[misc]
    return bool(values) and all(count >= 1 for count in values.values())
