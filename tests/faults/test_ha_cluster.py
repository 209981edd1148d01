"""Graceful degradation on `make run-ha`'s data stores (tests/support/ha.py, started once for this
module on ports, node names, database and vhost of its own): one RabbitMQ node SIGKILLed during a
run of applications, the replica stopped, the primary stopped for 20 s.

Each run is counted and printed like the chaos run (tests/faults/test_chaos.py, whose client it
reuses: a 503 retried after its Retry-After with the same Idempotency-Key, a dropped socket opened
again): accepted, complete, lost, stuck, late, duplicate offers stored, duplicate events shown.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from aggregator_api.admin import insert_partner
from shared.models import Application, QuoteStatus
from tests.support.chaos import ClientRecord, Tally, run_client, tally
from tests.support.cluster import Cluster, eventually
from tests.support.ha import HaEnvironment, ha_environment
from tests.support.processes import ServiceProcess
from tests.support.samples import sample_application

# Outlasts a quorum leader election after a node's death and a 20 s primary outage.
DEADLINE_S = 30.0
APPLICATIONS = 60
ARRIVALS_PER_SECOND = 10
PRIMARY_OUTAGE_S = 20.0
# A client gives up on one application after this long (then it counts as not accepted or stuck).
CLIENT_PATIENCE_S = 120.0


@pytest.fixture(scope="module")
async def ha() -> AsyncIterator[HaEnvironment]:
    async with ha_environment(DEADLINE_S) as env:
        yield env


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def ha_cluster(ha: HaEnvironment, http: aiohttp.ClientSession) -> AsyncIterator[Cluster]:
    """Two core apps, an aggregator, two workers and the sandbox on the HA stores; the stores are
    whole again afterwards (a killed node restarted, the replica and primary started)."""
    cluster = Cluster(ha.infrastructure, http, **ha.service_env)
    cores = [cluster.core("ha-core1"), cluster.core("ha-core2")]
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(cluster.worker("ha-worker1"), cluster.worker("ha-worker2"), *cores)
    await cluster.behave_all(mode="ok", latency_ms=[100, 600])
    try:
        yield cluster
    finally:
        await cluster.stop()
        for i, node in enumerate(ha.stores.nodes):
            if not node.alive():
                await ha.run(ha.stores.restart_node, i)
        for server in (ha.stores.primary, ha.stores.replica):
            if not await ha.run(server.running):
                await ha.run(server.start)


def cores_of(cluster: Cluster) -> list[ServiceProcess]:
    return [p for p in cluster.processes if p.name.startswith("ha-core")]


async def run_applications(cluster: Cluster, count: int) -> list[ClientRecord]:
    urls = [core.url for core in cores_of(cluster)]
    give_up = time.monotonic() + CLIENT_PATIENCE_S
    prefix = f"ha-{uuid.uuid4().hex[:8]}"  # every run's Idempotency-Keys its own
    clients = []
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            clients.append(asyncio.create_task(run_client(n, session, urls, give_up, key_prefix=prefix)))
            await asyncio.sleep(1 / ARRIVALS_PER_SECOND)
        return list(await asyncio.gather(*clients))


async def count_and_print(title: str, records: list[ClientRecord], history: list[str]) -> Tally:
    counts = await tally(records)
    print(f"\n{title}\n" + "".join(f"  {line}\n" for line in history) + counts.lines())
    return counts


def assert_nothing_lost(counts: Tally, expected: int) -> None:
    assert counts.accepted == counts.complete == expected
    assert counts.lost == counts.stuck == counts.late == 0
    assert counts.duplicate_offers == counts.duplicates_shown == 0
    assert counts.streams_incomplete == counts.finals_wrong == 0
    assert counts.by_status == Counter({QuoteStatus.OFFERED.value: expected * 10})


async def test_a_rabbitmq_node_sigkilled_during_a_run_loses_and_duplicates_nothing(
    ha: HaEnvironment, ha_cluster: Cluster
) -> None:
    # The first node leads the queues (they were declared there first): the harshest one to lose.
    victim = ha.stores.nodes[0]
    history: list[str] = []
    started = time.monotonic()

    async def nemesis() -> None:
        await asyncio.sleep(2.0)
        pid = victim.kill()
        history.append(f"{time.monotonic() - started:5.1f}s SIGKILL {victim.name} (beam pid {pid})")

    nemesis_task = asyncio.create_task(nemesis())
    records = await run_applications(ha_cluster, APPLICATIONS)
    await nemesis_task
    assert not victim.alive()
    counts = await count_and_print(
        f"HA: {APPLICATIONS} applications x 10 insurers at {ARRIVALS_PER_SECOND}/s, one RabbitMQ node SIGKILLed",
        records,
        history,
    )
    assert_nothing_lost(counts, APPLICATIONS)


async def test_reads_answer_with_the_replica_stopped(ha: HaEnvironment, ha_cluster: Cluster) -> None:
    partner, api_key = await insert_partner("ha-partner", 1000)
    core = cores_of(ha_cluster)[0]
    key = {"X-API-Key": api_key}
    ids = []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(f"{core.url}/api/v1/applications", json=sample_application(), headers=key) as r:
                assert r.status == 201, await r.text()
                ids.append((await r.json())["id"])

        async def all_complete() -> bool:
            return await Application.filter(id__in=ids, status="complete").count() == len(ids)

        assert await eventually(all_complete, timeout=DEADLINE_S + 10)

        async def read_all() -> tuple[list[int], list[str]]:
            statuses, listed = [], []
            for application_id in ids:
                async with session.get(f"{core.url}/api/v1/applications/{application_id}", headers=key) as r:
                    statuses.append(r.status)
                    assert r.status != 200 or (await r.json())["status"] == "complete"
            async with session.get(f"{core.url}/api/v1/applications?limit=10", headers=key) as r:
                statuses.append(r.status)
                if r.status == 200:
                    listed = [item["id"] for item in (await r.json())["items"]]
            return statuses, listed

        # While it runs, the replica serves these reads: the services' connections to it (a pool
        # made on the first replica read) last ran our applications' queries.
        replica = await asyncpg.connect(ha.replica_url)
        try:
            assert await replica.fetchval("SELECT pg_is_in_recovery()")

            async def replica_has_them() -> bool:
                statuses, listed = await read_all()  # the rows may lag a moment behind the primary
                return statuses == [200] * 4 and sorted(listed) == sorted(ids)

            assert await eventually(replica_has_them, timeout=10, interval=0.5)
            served_here = await replica.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND (query LIKE '%FROM \"application\"%' OR query LIKE '%LEFT JOIN quote%')"
            )
        finally:
            await replica.close()
        print(f"\nHA replica: {served_here} service connections on the replica last ran our reads")
        assert served_here >= 1

        await ha.run(ha.stores.replica.stop)
        stopped = time.monotonic()
        statuses, listed = await read_all()
        first_answer_s = time.monotonic() - stopped
        statuses_later, listed_later = await read_all()
        print(f"HA replica stopped: first reads answered {statuses} in {first_answer_s:.2f} s, then {statuses_later}")
        assert statuses == statuses_later == [200] * 4
        assert sorted(listed) == sorted(listed_later) == sorted(ids)
    assert partner.id is not None


async def test_the_primary_stopped_for_20_s_is_503_then_recovers_without_a_restart(
    ha: HaEnvironment, ha_cluster: Cluster
) -> None:
    core = cores_of(ha_cluster)[0]
    history: list[str] = []
    started = time.monotonic()
    refusals: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        before = await run_applications(ha_cluster, 5)
        await ha.run(ha.stores.primary.stop)
        history.append(f"{time.monotonic() - started:5.1f}s primary stopped for {PRIMARY_OUTAGE_S:g} s")
        back_at = time.monotonic() + PRIMARY_OUTAGE_S

        async def refused_with_retry_after() -> bool:
            async with session.post(f"{core.url}/api/v1/applications", json=sample_application()) as r:
                refusals[f"{r.status} Retry-After={r.headers.get('Retry-After')}"] += 1
                return r.status == 503 and r.headers.get("Retry-After") is not None

        assert await eventually(refused_with_retry_after, timeout=PRIMARY_OUTAGE_S / 2, interval=0.5)
        history.append(f"{time.monotonic() - started:5.1f}s new applications refused: {dict(refusals)}")
        await asyncio.sleep(max(0.0, back_at - time.monotonic()))
        await ha.run(ha.stores.primary.start)
        history.append(f"{time.monotonic() - started:5.1f}s primary started again (no service restarted)")
        after = await run_applications(ha_cluster, 5)
    counts = await count_and_print("HA: the primary stopped for 20 s", [*before, *after], history)
    assert_nothing_lost(counts, 10)
    # Nothing was restarted: the processes that served before the outage served after it.
    exited = [p.name for p in ha_cluster.processes if p.process is None or p.process.poll() is not None]
    assert exited == []
