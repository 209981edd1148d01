"""The chaos run: 300 applications × 10 insurers through two core apps, one aggregator and two
workers, while the database is cut for 20 s, the broker is cut for 20 s, a worker and a core
app are SIGKILLed and restarted. Clients behave as real ones do: a 503 is retried after its
Retry-After with the same Idempotency-Key, and a socket that drops is opened again.

Every figure is counted and printed, then checked like a Jepsen history: nothing accepted is
lost, stuck, late or duplicated, no insurer is asked twice for one quote, and every quote
ends `offered` (every sandbox insurer prices the sample and none is set to fail: whatever
else a quote ends as, the pipeline lost an answer). Only the SIGKILLed worker's answers in
hand, and jobs whose published-mark was lost in the database cut, may be asked for again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from shared.models import Application, Offer, Quote, QuoteStatus
from shared.platform.settings import Settings
from tests.faults.conftest import fault_environment, through
from tests.support.cluster import Cluster
from tests.support.infrastructure import BrokerAdmin, RunInfrastructure
from tests.support.processes import ServiceProcess
from tests.support.samples import sample_application
from tests.support.tcp_proxy import TcpProxy

DEADLINE_S = 40.0
APPLICATIONS = 300
ARRIVALS_PER_SECOND = 10
OUTAGE_S = 20.0
# A client gives up on one application after this long (then it counts as not accepted or stuck).
CLIENT_PATIENCE_S = 150.0
WORKER_PREFETCH = Settings.from_env({}).worker_prefetch


@pytest.fixture(scope="module")
async def fault_env() -> AsyncIterator[tuple[RunInfrastructure, BrokerAdmin]]:
    """This module's own database and vhost; a deadline that outlasts a 20 s outage."""
    async with fault_environment(DEADLINE_S) as env:
        yield env


@dataclass
class ClientRecord:
    created: dict[str, Any] | None = None
    refusals: int = 0  # 503s and connection errors before the 201
    connections: int = 0
    final_close: int | None = None
    event_ids: set[str] = field(default_factory=set)
    finals: Counter[str] = field(default_factory=Counter)  # insurer code -> final events seen (deduplicated)
    duplicates_shown: int = 0  # an event id sent twice on one socket
    saw_complete: bool = False


async def run_client(
    n: int, session: aiohttp.ClientSession, cores: list[ServiceProcess], started: float
) -> ClientRecord:
    record = ClientRecord()
    give_up = started + CLIENT_PATIENCE_S
    headers = {"Idempotency-Key": f"chaos-{n}"}
    while record.created is None and time.monotonic() < give_up:
        core = cores[(n + record.refusals) % len(cores)]
        wait_s = 1.0
        try:
            async with session.post(
                f"{core.url}/api/v1/applications",
                json=sample_application(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                if response.status == 201:
                    record.created = await response.json()
                    break
                wait_s = float(response.headers.get("Retry-After", wait_s))
        except (aiohttp.ClientError, TimeoutError):
            pass
        record.refusals += 1
        await asyncio.sleep(wait_s)
    if record.created is None:
        return record

    created = record.created
    while time.monotonic() < give_up:
        core = cores[(n + record.connections + 1) % len(cores)]
        record.connections += 1
        url = f"{core.url}{created['links']['offers']}?token={created['access_token']}"
        try:
            async with session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                seen_here: set[str] = set()
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    event = json.loads(message.data)
                    if event["event_id"] in seen_here:
                        record.duplicates_shown += 1
                    seen_here.add(event["event_id"])
                    if event["event_id"] not in record.event_ids and event["type"] in ("offer", "quote_status"):
                        record.finals[event["insurer"]["code"]] += 1
                    record.event_ids.add(event["event_id"])
                    record.saw_complete |= event["type"] == "complete"
                record.final_close = ws.close_code
            if record.final_close == 1000:
                break
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5)
    return record


async def test_chaos_run_loses_nothing(
    make_cluster: Callable[..., Cluster],
    fault_infrastructure: RunInfrastructure,
    http: aiohttp.ClientSession,
    database_proxy: TcpProxy,
    broker_proxy: TcpProxy,
) -> None:
    cluster = make_cluster(
        OSAGO_DATABASE_URL=through(fault_infrastructure.database_url, database_proxy),
        OSAGO_AMQP_URL=through(fault_infrastructure.amqp_url, broker_proxy),
        OSAGO_DB_POOL_MAX="6",
    )
    cores = [cluster.core("chaos-core1"), cluster.core("chaos-core2")]
    workers = [cluster.worker("chaos-worker1"), cluster.worker("chaos-worker2")]
    try:
        await cluster.start(cluster.sandbox(), cluster.aggregator())
        await cluster.start(*workers, *cores)
        await cluster.behave_all(mode="ok", latency_ms=[100, 900])

        history: list[str] = []

        async def at(moment_s: float, what: str) -> None:
            await asyncio.sleep(max(0.0, started + moment_s - time.monotonic()))
            history.append(f"{time.monotonic() - started:5.1f}s {what}")

        async def nemesis() -> None:
            await at(3, f"database cut for {OUTAGE_S:g} s")
            await database_proxy.down()
            await at(10, "SIGKILL chaos-worker1")
            workers[0].kill()
            await at(12, "chaos-worker1 restarted")
            workers[0].start()
            await at(3 + OUTAGE_S, "database back")
            await database_proxy.up()
            await at(28, f"broker cut for {OUTAGE_S:g} s")
            await broker_proxy.down()
            await at(35, "SIGKILL chaos-core1")
            cores[0].kill()
            await at(37, "chaos-core1 restarted")
            cores[0].start()
            await at(28 + OUTAGE_S, "broker back")
            await broker_proxy.up()

        started = time.monotonic()
        nemesis_task = asyncio.create_task(nemesis())
        clients = []
        async with aiohttp.ClientSession() as session:
            for n in range(APPLICATIONS):
                clients.append(asyncio.create_task(run_client(n, session, cores, started)))
                await asyncio.sleep(1 / ARRIVALS_PER_SECOND)
            records = await asyncio.gather(*clients)
        await nemesis_task
        elapsed = time.monotonic() - started
        async with http.get(f"{cluster.sandbox_url}/sandbox/stats") as response:
            sandbox = await response.json()
    finally:
        await database_proxy.up()
        await broker_proxy.up()

    accepted = [r.created["id"] for r in records if r.created is not None]
    applications = await Application.filter(id__in=accepted)
    quotes = await Quote.filter(application_id__in=accepted)
    offers = await Offer.filter(application_id__in=accepted)
    by_status = Counter(q.status.value for q in quotes)
    lost = len(accepted) - len(applications)
    stuck = [a for a in applications if a.status != "complete"] + [q for q in quotes if q.status is QuoteStatus.PENDING]
    late = [a for a in applications if a.completed_at is None or (a.completed_at - a.deadline).total_seconds() > 5]
    offers_per_quote = Counter(o.quote_id for o in offers)  # type: ignore[attr-defined]
    duplicate_offers = sum(count - 1 for count in offers_per_quote.values())
    duplicates_shown = sum(r.duplicates_shown for r in records)
    streams_incomplete = [
        r for r in records if r.created is not None and not (r.saw_complete and r.final_close == 1000)
    ]
    finals_wrong = [r for r in records if r.created is not None and set(r.finals.values()) != {1}]
    latest = max(((a.completed_at - a.deadline).total_seconds() for a in applications if a.completed_at), default=0)
    print(
        f"\nchaos: {APPLICATIONS} applications x 10 insurers at {ARRIVALS_PER_SECOND}/s, {elapsed:.1f} s in all\n"
        + "".join(f"  {line}\n" for line in history)
        + f"  accepted {len(accepted)} (after {sum(r.refusals for r in records)} refusals retried), "
        f"complete {sum(1 for a in applications if a.status == 'complete')}\n"
        f"  quotes by status {dict(by_status)}\n"
        f"  lost {lost}, stuck {len(stuck)}, late (> deadline + 5 s) {len(late)}, "
        f"duplicate offers stored {duplicate_offers}, duplicate events shown {duplicates_shown}\n"
        f"  insurer calls per quote (max) {sandbox['most_times_one_quote_was_asked']}; "
        f"{sandbox['quotes_asked']} quotes asked, {sandbox['quotes_asked_again']} of them again; socket connections {sum(r.connections for r in records)}, "
        f"streams not ended by `complete` + 1000: {len(streams_incomplete)}; "
        f"latest completion {latest:+.1f} s from its deadline"
    )
    assert len(accepted) == APPLICATIONS
    assert lost == 0 and not stuck and not late
    assert by_status == Counter({QuoteStatus.OFFERED.value: APPLICATIONS * 10})
    assert duplicate_offers == 0 and duplicates_shown == 0
    # Asked again, always with the same idempotency key (the insurer answers the same): the
    # SIGKILLed worker's answers in hand, and a job whose published-mark the database cut lost,
    # relayed once more and priced by the other worker at the same moment. Bounded by what
    # one worker holds.
    assert sandbox["most_times_one_quote_was_asked"] <= 3
    assert sandbox["quotes_asked_again"] <= WORKER_PREFETCH
    assert not streams_incomplete and not finals_wrong
