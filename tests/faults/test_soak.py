"""A small soak: 50 applications while workers are SIGKILLed and restarted and every broker
connection is force-closed. Checked like a Jepsen history: nothing lost, nothing stuck,
nothing duplicated, everything complete by its deadline + 5 s."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from shared.models import Application, Offer, Quote, QuoteStatus
from tests.faults.conftest import FAULT_DEADLINE_S
from tests.support.cluster import Cluster
from tests.support.infrastructure import BrokerAdmin
from tests.support.processes import ServiceProcess
from tests.support.samples import sample_application

APPLICATIONS = 50
ARRIVALS_PER_SECOND = 10


async def test_soak_with_killed_workers_and_broken_connections(
    make_cluster: Callable[..., Cluster], fault_broker: BrokerAdmin
) -> None:
    cluster = make_cluster()
    cores = [cluster.core("soak-core1"), cluster.core("soak-core2")]
    workers = [cluster.worker("soak-worker1"), cluster.worker("soak-worker2")]
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(*workers, *cores)
    await cluster.behave_all(mode="ok", latency_ms=[100, 900], fail_rate=0.1, fault="error")

    async def client(n: int) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
        status, created = await cluster.create(sample_application(), via=cores[n % 2])
        assert status == 201, created
        events, close_code = await cluster.collect_events(cores[(n + 1) % 2], created, FAULT_DEADLINE_S + 15)
        return created, events, close_code

    async def restart(worker: ServiceProcess, after_s: float) -> None:
        worker.kill()
        await asyncio.sleep(after_s)
        await cluster.start(worker)

    async def nemesis() -> list[str]:
        history = []
        await asyncio.sleep(1.0)
        history.append("SIGKILL worker1")
        await restart(workers[0], 1.0)
        await asyncio.sleep(0.5)
        connections = await fault_broker.connections(cluster.infrastructure.vhost)
        for connection in connections:
            await fault_broker.close_connection(str(connection["name"]))
        history.append(f"force-closed {len(connections)} broker connections")
        await asyncio.sleep(1.0)
        history.append("SIGKILL worker2")
        await restart(workers[1], 1.0)
        return history

    started = time.monotonic()
    nemesis_task = asyncio.create_task(nemesis())
    clients = []
    for n in range(APPLICATIONS):
        clients.append(asyncio.create_task(client(n)))
        await asyncio.sleep(1 / ARRIVALS_PER_SECOND)
    results = await asyncio.gather(*clients)
    history = await nemesis_task
    elapsed = time.monotonic() - started

    ids = [created["id"] for created, _, _ in results]
    applications = await Application.filter(id__in=ids)
    quotes = await Quote.filter(application_id__in=ids)
    offers = await Offer.filter(application_id__in=ids)

    lost = APPLICATIONS - len(applications)
    stuck = [a for a in applications if a.status != "complete"]
    late = [a for a in applications if a.completed_at is None or (a.completed_at - a.deadline).total_seconds() > 5]
    pending = [q for q in quotes if q.status is QuoteStatus.PENDING]
    offers_per_quote = Counter(o.quote_id for o in offers)  # type: ignore[attr-defined]
    duplicates_shown = 0
    for created, events, close_code in results:
        assert close_code == 1000
        ids_seen = [e["event_id"] for e in events]
        duplicates_shown += len(ids_seen) - len(set(ids_seen))
        finals = Counter(e["insurer"]["code"] for e in events if e["type"] in ("offer", "quote_status"))
        assert finals == Counter({i["code"]: 1 for i in created["insurers"]}), created["id"]
        assert events[-1]["type"] == "complete"
    lateness = max((a.completed_at - a.deadline).total_seconds() for a in applications if a.completed_at)
    retried = sum(1 for q in quotes if q.attempts > 1)
    print(
        f"\nsoak: {APPLICATIONS} applications x {len(quotes) // APPLICATIONS} insurers in {elapsed:.1f}s; "
        f"faults: {'; '.join(history)}\n"
        f"  lost {lost}, stuck {len(stuck)}, pending quotes {len(pending)}, late (> deadline + 5 s) {len(late)}, "
        f"duplicate offers stored {sum(c - 1 for c in offers_per_quote.values())}, duplicate events shown {duplicates_shown}\n"
        f"  statuses {dict(Counter(q.status.value for q in quotes))}, quotes retried {retried}, "
        f"latest completion {lateness:+.2f}s relative to the deadline"
    )
    assert lost == 0 and not stuck and not pending and not late
    assert all(count == 1 for count in offers_per_quote.values())
    assert duplicates_shown == 0
