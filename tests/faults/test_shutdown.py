"""SIGTERM: stop taking work, finish what is in flight, close sockets with a close frame,
exit 0 — even with the broker out of reach."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import aiohttp

from shared.models import QuoteStatus
from tests.faults.conftest import through
from tests.support.cluster import Cluster, eventually, quotes_of
from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import sample_application
from tests.support.tcp_proxy import TcpProxy


async def wait_exit(process: object, within_s: float) -> int | None:
    assert await eventually(lambda: asyncio.sleep(0, process.poll() is not None), within_s)  # type: ignore[attr-defined]
    return process.returncode  # type: ignore[attr-defined]


async def test_worker_finishes_in_flight_jobs_on_sigterm(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    worker = cluster.worker("worker")
    await cluster.start(worker)
    await cluster.behave_all(mode="ok", latency_ms=[1500, 1800])
    status, created = await cluster.create(sample_application())
    assert status == 201
    await asyncio.sleep(0.5)  # every job is now waiting on its insurer

    worker.signal(signal.SIGTERM)
    assert await wait_exit(worker.process, 12) == 0
    quotes = await quotes_of(created["id"])
    assert {q.status for q in quotes} == {QuoteStatus.OFFERED}, "in-flight work was finished, not dropped"
    assert b"worker stopping" in worker.log_since_start()


async def test_core_app_closes_sockets_with_going_away_on_sigterm(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    core = cluster.core("core")
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(cluster.worker("worker"), core)
    await cluster.behave_all(mode="ok", latency_ms=[4000, 4000])
    status, created = await cluster.create(sample_application(), via=core)
    assert status == 201

    url = f"{core.url}{created['links']['offers']}?token={created['access_token']}"
    async with cluster.session.ws_connect(url) as ws:
        await asyncio.sleep(0.3)
        core.signal(signal.SIGTERM)
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    assert await wait_exit(core.process, 12) == 0


async def test_aggregator_exits_promptly_on_sigterm_with_the_broker_unreachable(
    make_cluster: Callable[..., Cluster],
    broker_proxy: TcpProxy,
    fault_infrastructure: RunInfrastructure,
) -> None:
    cluster = make_cluster()
    aggregator = cluster.aggregator(OSAGO_AMQP_URL=through(fault_infrastructure.amqp_url, broker_proxy))
    await cluster.start(aggregator)
    await broker_proxy.down()
    await asyncio.sleep(1)
    started = time.monotonic()
    aggregator.signal(signal.SIGTERM)
    assert await wait_exit(aggregator.process, 12) == 0
    # Nothing waits on the absent broker: no close handshakes, no publish confirms.
    assert time.monotonic() - started < 6
