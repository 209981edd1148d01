"""The supervised cluster (`python -m local_cluster run`: two core apps, three aggregators, two
workers, the sandbox and nginx, on a port offset, a database and a vhost of its own) under load
while its programs fail.

- Three aggregators run the outbox relay, the sweeper and the dead-jobs consumer at once: every
  job is published once (the broker's count of messages into the jobs exchange, and the
  sandbox's asks per quote), every event once (the broker's count into the offers fanout, and a
  queue of the test's own on it, per event id), every quote finalized once (its one event
  carries the status and reason stored: a second writer would have published again or left
  another row). The sweeper and the dead-jobs consumer must do some of that work: one insurer
  hangs, and the workers are stopped for longer than a deadline while applications arrive.
- An aggregator SIGKILLed: POSTs through the balancer keep succeeding.
- A worker SIGKILLed: the supervisor restarts it, its jobs are redelivered, nothing is lost.
- ``--chaos-long``: 1,000 applications through the balancer while core apps, workers and
  aggregators are SIGKILLed over and over, with every count printed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aggregator_api.deadlines import NO_OUTCOME, NOT_PICKED_UP
from local_cluster.__main__ import supervisorctl
from local_cluster.layout import Layout
from shared.models import Application, Quote, QuoteStatus
from shared.platform.db import database
from shared.platform.settings import Settings
from shared.quoting.events import complete_event_id, quote_event_id
from shared.quoting.topology import JOBS_EXCHANGE, OFFERS_EXCHANGE
from tests.support.chaos import assert_nothing_lost, load, tally
from tests.support.infrastructure import BrokerAdmin, private_infrastructure
from tests.support.supervised import EventTap, SupervisedCluster, free_offset, until

pytestmark = pytest.mark.usefixtures("nginx_installed")

DEADLINE_S = 10.0
INSURERS = 10
WORKER_PREFETCH = Settings.from_env({}).worker_prefetch


def layout(offset: int) -> Layout:
    return Layout(cores=2, aggregators=3, workers=2, port_offset=offset)


@pytest.fixture(scope="module")
async def supervised() -> AsyncIterator[tuple[SupervisedCluster, BrokerAdmin, EventTap]]:
    async with private_infrastructure(DEADLINE_S, prefix="osago_test_degrade", pool_max=5) as (infrastructure, admin):
        # The sweeper closes a quote as soon as its deadline passes, racing the workers and the
        # dead-jobs consumers for it: the writes' "only while pending" is what keeps it to one.
        cluster = SupervisedCluster(infrastructure, layout(free_offset(layout)), OSAGO_SWEEPER_GRACE_S="0")
        tap = EventTap(infrastructure.amqp_url)
        await tap.start()  # bound before anything is published
        async with database(infrastructure.settings()), aiohttp.ClientSession() as session:
            try:
                await cluster.start(session)
                yield cluster, admin, tap
            finally:
                await tap.close()
                code = await cluster.stop()
        assert code == 0, cluster.log_tail()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def published_into(admin: BrokerAdmin, vhost: str, exchange: str) -> int:
    stats: Any = (await admin.exchange(vhost, exchange)).get("message_stats") or {}
    return int(stats.get("publish_in", 0))


async def test_three_aggregators_publish_every_job_and_event_once_and_close_every_quote_once(
    supervised: tuple[SupervisedCluster, BrokerAdmin, EventTap], http: aiohttp.ClientSession
) -> None:
    cluster, admin, tap = supervised
    codes = await cluster.insurer_codes(http)
    await cluster.behave_all(http, mode="ok", latency_ms=[50, 400])
    await cluster.behave(http, codes[0], mode="hang")  # ends at the deadline: worker or sweeper
    stopped_for_s = DEADLINE_S + 3

    async def stop_the_workers_for_a_while() -> None:
        await asyncio.sleep(6)
        # Jobs that arrive now expire in their queues: dead-lettered, or swept first.
        await asyncio.to_thread(supervisorctl, cluster.run_dir, "stop", "worker:*")
        await asyncio.sleep(stopped_for_s)
        await asyncio.to_thread(supervisorctl, cluster.run_dir, "start", "worker:*")

    records = await load(cluster, 200, 15, "once", stop_the_workers_for_a_while)
    counts = await tally(records)
    sandbox = await cluster.sandbox_stats(http)
    accepted = [r.created["id"] for r in records if r.created is not None]
    quotes = await Quote.filter(application_id__in=accepted)
    expected = {quote_event_id(q.id) for q in quotes} | {complete_event_id(a) for a in accepted}

    async def every_event_tapped() -> bool:
        return expected <= {event["event_id"] for event in tap.events}

    assert await until(every_event_tapped, 15)
    await asyncio.sleep(2)  # a second copy, if any, would come right behind
    mine = [event for event in tap.events if event["event_id"] in expected]
    per_event = Counter(event["event_id"] for event in mine)
    finals = {event["event_id"]: event for event in mine if event["type"] != "complete"}
    rewritten = [
        q.id
        for q in quotes
        if (event := finals[quote_event_id(q.id)]).get("status", QuoteStatus.OFFERED.value) != q.status.value
        or event.get("reason") != (None if event["type"] == "offer" else q.reason)
    ]
    reasons = Counter(event.get("reason") for event in finals.values())

    async def broker_counted(exchange: str, total: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await published_into(admin, cluster.infrastructure.vhost, exchange) >= total

        return check

    # The management API's counters lag by a few seconds; a count past the total fails below.
    await until(await broker_counted(JOBS_EXCHANGE, len(quotes)), 20, 1)
    await until(await broker_counted(OFFERS_EXCHANGE, len(expected)), 20, 1)
    await asyncio.sleep(6)  # one more statistics interval, for anything published twice
    jobs_published = await published_into(admin, cluster.infrastructure.vhost, JOBS_EXCHANGE)
    events_published = await published_into(admin, cluster.infrastructure.vhost, OFFERS_EXCHANGE)
    print(
        f"\nthree aggregators, 200 applications x {INSURERS} insurers at 15/s, workers stopped for "
        f"{stopped_for_s:g} s from 6 s, {codes[0]} hanging\n"
        + counts.lines()
        + f"  jobs published into {JOBS_EXCHANGE} {jobs_published} for {len(quotes)} quotes; events published "
        f"into {OFFERS_EXCHANGE} {events_published} for {len(expected)} events; tapped: most copies of one "
        f"event {max(per_event.values())}; quotes whose event differs from the row {len(rewritten)}\n"
        f"  closed by the sweeper {reasons[NO_OUTCOME.reason]}, by the dead-jobs consumers "
        f"{reasons[NOT_PICKED_UP.reason]}; sandbox: {sandbox['quotes_asked']} quotes asked, most times one "
        f"quote was asked {sandbox['most_times_one_quote_was_asked']}, asked again {sandbox['quotes_asked_again']}"
    )
    assert_nothing_lost(counts, records)
    assert set(per_event) == expected and set(per_event.values()) == {1}
    assert not rewritten
    assert jobs_published == len(quotes) and events_published == len(expected)
    assert sandbox["most_times_one_quote_was_asked"] == 1 and sandbox["quotes_asked_again"] == 0
    # The dead-jobs consumers always race the workers here (the jobs outlive the deadline while
    # the workers are stopped). Whether the sweeper closes any is the machine's timing: on a quiet
    # one the consumers take every job first (0 in one CI run), so its count is printed, not required.
    assert reasons[NOT_PICKED_UP.reason] > 0


async def test_posts_through_the_balancer_keep_succeeding_when_an_aggregator_is_killed(
    supervised: tuple[SupervisedCluster, BrokerAdmin, EventTap], http: aiohttp.ClientSession
) -> None:
    cluster = supervised[0]
    await cluster.behave_all(http, mode="ok", latency_ms=[50, 300])
    pids: list[tuple[int, int]] = []

    async def kill_an_aggregator() -> None:
        await asyncio.sleep(2)
        pids.append(await cluster.kill("aggregator:aggregator1"))

    records = await load(cluster, 60, 10, "aggregator-kill", kill_an_aggregator)
    counts = await tally(records)
    print(f"\nSIGKILL aggregator1 (pid {pids[0][0]} → {pids[0][1]}) during 60 POSTs at 10/s\n" + counts.lines())
    assert_nothing_lost(counts, records)
    assert counts.by_status == Counter({QuoteStatus.OFFERED.value: 60 * INSURERS})
    # Only POSTs in flight at the instant of the kill may fail (nginx does not resend a POST
    # it has sent); the clients retry those with their idempotency keys.
    assert counts.refusals <= 5, counts.lines()


async def test_a_killed_worker_is_restarted_and_its_jobs_are_redelivered(
    supervised: tuple[SupervisedCluster, BrokerAdmin, EventTap], http: aiohttp.ClientSession
) -> None:
    cluster = supervised[0]
    await cluster.behave_all(http, mode="ok", latency_ms=[300, 900])  # jobs in hand when it dies
    before = await cluster.sandbox_stats(http)
    pids: list[tuple[int, int]] = []

    async def kill_a_worker() -> None:
        await asyncio.sleep(3)
        pids.append(await cluster.kill("worker:worker1"))

    records = await load(cluster, 60, 10, "worker-kill", kill_a_worker)
    counts = await tally(records)
    after = await cluster.sandbox_stats(http)
    asked_again = after["quotes_asked_again"] - before["quotes_asked_again"]
    print(
        f"\nSIGKILL worker1 (pid {pids[0][0]} → {pids[0][1]}) during 60 applications at 10/s\n"
        + counts.lines()
        + f"  quotes asked again {asked_again}"
    )
    assert_nothing_lost(counts, records)
    assert counts.by_status == Counter({QuoteStatus.OFFERED.value: 60 * INSURERS})
    # The killed worker's answers in hand are asked for again (same idempotency key), no more.
    assert asked_again <= WORKER_PREFETCH


CHAOS_APPLICATIONS = 1000
CHAOS_PER_SECOND = 6


@pytest.mark.timeout(600)
async def test_chaos_long_through_every_program_kill(
    request: pytest.FixtureRequest,
    supervised: tuple[SupervisedCluster, BrokerAdmin, EventTap],
    http: aiohttp.ClientSession,
) -> None:
    if not request.config.getoption("chaos_long"):
        pytest.skip("the 1,000-application chaos run on the supervised cluster: pytest --chaos-long")
    cluster, _, tap = supervised
    await cluster.behave_all(http, mode="ok", latency_ms=[100, 900])
    before = await cluster.sandbox_stats(http)
    tapped_before = len(tap.events)
    history: list[str] = []
    started = time.monotonic()
    duration_s = CHAOS_APPLICATIONS / CHAOS_PER_SECOND
    victims = ["core:core1", "worker:worker1", "aggregator:aggregator1", "core:core2", "worker:worker2"]
    victims += ["aggregator:aggregator2", "aggregator:aggregator3"]

    async def nemesis() -> None:
        moment = 5.0
        while moment < duration_s - 5:
            for victim in victims:
                await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
                if moment >= duration_s - 5:
                    return
                old, new = await cluster.kill(victim)
                history.append(f"{moment:6.1f}s SIGKILL {victim} (pid {old}), back as {new}")
                moment += 7.0

    records = await load(cluster, CHAOS_APPLICATIONS, CHAOS_PER_SECOND, "chaos-long", nemesis, patience_s=150)
    elapsed = time.monotonic() - started
    counts = await tally(records)
    after = await cluster.sandbox_stats(http)
    accepted = [r.created["id"] for r in records if r.created is not None]
    completed = await Application.filter(id__in=accepted, status="complete").count()
    # Copies on the fanout itself (the relay publishes again what a killed process left
    # unmarked); clients drop them by event id, which "duplicate events shown" checks.
    copies = Counter(event["event_id"] for event in tap.events[tapped_before:])
    print(
        f"\nchaos (supervised cluster, 2 core apps, 3 aggregators, 2 workers, through the balancer): "
        f"{CHAOS_APPLICATIONS} applications x {INSURERS} insurers at {CHAOS_PER_SECOND}/s, {elapsed:.1f} s in all\n"
        + "".join(f"  {line}\n" for line in history)
        + counts.lines()
        + f"  events on the fanout {sum(copies.values())} for {len(copies)} event ids "
        f"({sum(n - 1 for n in copies.values())} extra copies, deduplicated by the clients)\n"
        + f"  completed in the database {completed}; quotes asked again "
        f"{after['quotes_asked_again'] - before['quotes_asked_again']}, most times one quote was asked "
        f"{after['most_times_one_quote_was_asked']}"
    )
    # Quotes may end `timed_out` when the two cores fall behind (printed above); none may be lost,
    # stuck, late or duplicated.
    assert_nothing_lost(counts, records)
