"""``--chaos-long`` on `make run-ha`'s data stores: 1,000 applications through the supervised
cluster's balancer (``python -m local_cluster run``: two core apps, two aggregators, two workers)
on the HA stores of tests/support/ha.py, while in turn a core app, a worker and an aggregator are
SIGKILLed (the supervisor restarts them), a RabbitMQ node is SIGKILLed and later restarted, the
replica is stopped and started, and the primary is stopped for 20 s then started.

Counted like the other chaos runs (tests/support/chaos.py): accepted, complete, lost, stuck,
late, duplicate offers stored, duplicate events shown. POSTs refused during the primary outage
(503 with Retry-After) are retried by the clients after Retry-After with the same
Idempotency-Key. Without ``--chaos-long`` the module starts nothing: the skip comes before the
stores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from local_cluster.layout import Layout
from tests.support.chaos import assert_nothing_lost, load, tally
from tests.support.ha import HaEnvironment, ha_environment
from tests.support.supervised import SupervisedCluster, free_offset

pytestmark = pytest.mark.usefixtures("nginx_installed")

# Outlasts a quorum leader election after a node's death; the primary's 20 s outage is longer,
# so applications posted just before it may time out some quotes (counted, never lost).
DEADLINE_S = 25.0
INSURERS = 10
APPLICATIONS = 1000
PER_SECOND = 5
PRIMARY_OUTAGE_S = 20.0


def layout(offset: int) -> Layout:
    return Layout(cores=2, aggregators=2, workers=2, port_offset=offset)


@pytest.fixture(scope="module")
async def ha_supervised(request: pytest.FixtureRequest) -> AsyncIterator[tuple[HaEnvironment, SupervisedCluster]]:
    if not request.config.getoption("chaos_long"):
        pytest.skip("the 1,000-application chaos run on the HA stores: pytest --chaos-long")
    async with ha_environment(DEADLINE_S) as ha:
        # Six services share one primary: a small pool each, as the plain chaos run has.
        infrastructure = dataclasses.replace(ha.infrastructure, pool_max=5)
        cluster = SupervisedCluster(infrastructure, layout(free_offset(layout)), **ha.service_env)
        async with aiohttp.ClientSession() as session:
            try:
                await cluster.start(session)
                yield ha, cluster
            finally:
                code = await cluster.stop()
        assert code == 0, cluster.log_tail()


@pytest.mark.timeout(900)
async def test_chaos_long_on_the_ha_stores_through_every_fault(
    ha_supervised: tuple[HaEnvironment, SupervisedCluster],
) -> None:
    ha, cluster = ha_supervised
    async with aiohttp.ClientSession() as http:
        await cluster.behave_all(http, mode="ok", latency_ms=[100, 900])
    history: list[str] = []
    started = time.monotonic()
    node = ha.stores.nodes[0]  # it leads the queues (declared there first): the harshest to lose

    async def kill_node() -> str:
        return f"SIGKILL RabbitMQ {node.name} (beam pid {node.kill()})"

    async def restart_node() -> str:
        await ha.run(ha.stores.restart_node, 0)
        return f"RabbitMQ {node.name} restarted"

    async def stop(what: str) -> str:
        await ha.run(getattr(ha.stores, what).stop)
        return f"{what} stopped"

    async def start(what: str) -> str:
        await ha.run(getattr(ha.stores, what).start)
        return f"{what} started"

    def program_kill(program: str) -> Callable[[], Awaitable[str]]:
        async def kill() -> str:
            old, new = await cluster.kill(program, timeout=60)
            return f"SIGKILL {program} (pid {old}), back as {new}"

        return kill

    # (seconds from the start, fault): spread over the ~200 s of arrivals, each recovered from
    # before the next begins.
    schedule: list[tuple[float, Callable[[], Awaitable[str]]]] = [
        (10, program_kill("core:core1")),
        (25, program_kill("worker:worker1")),
        (40, program_kill("aggregator:aggregator1")),
        (55, kill_node),
        (85, restart_node),
        (100, lambda: stop("replica")),
        (115, lambda: start("replica")),
        (130, lambda: stop("primary")),
        (130 + PRIMARY_OUTAGE_S, lambda: start("primary")),
    ]

    async def nemesis() -> None:
        for moment, fault in schedule:
            await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
            line = await fault()
            history.append(f"{time.monotonic() - started:6.1f}s {line}")

    try:
        records = await load(cluster, APPLICATIONS, PER_SECOND, "ha-chaos", nemesis, patience_s=240)
    finally:
        # Whole stores for the teardown, whatever failed.
        if not node.alive():
            await ha.run(ha.stores.restart_node, 0)
        for server in (ha.stores.primary, ha.stores.replica):
            if not await ha.run(server.running):
                await ha.run(server.start)
    elapsed = time.monotonic() - started
    counts = await tally(records)
    print(
        f"\nchaos on the HA stores (supervised cluster, 2 core apps, 2 aggregators, 2 workers, through the "
        f"balancer; primary + replica, 3 RabbitMQ nodes behind nginx): {APPLICATIONS} applications x "
        f"{INSURERS} insurers at {PER_SECOND}/s, deadline {DEADLINE_S:g} s, {elapsed:.1f} s in all\n"
        + "".join(f"  {line}\n" for line in history)
        + counts.lines()
    )
    assert len(history) == len(schedule), history
    # A programming error, never an outage: the relay's unnamed transaction with a replica configured.
    assert '"error": "ParamsError"' not in cluster.output.read_text(errors="replace")
    # Quotes may end `timed_out` while the primary is away (printed above); none may be lost,
    # stuck, late or duplicated, and every client's application must be accepted in the end.
    assert_nothing_lost(counts, records)
    assert counts.complete == APPLICATIONS, counts.lines()
