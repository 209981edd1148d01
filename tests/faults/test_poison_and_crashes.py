"""Poison messages never loop; a worker SIGKILLed between any two steps converges on one outcome."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from shared.models import Offer, Quote, QuoteStatus
from tests.faults.conftest import FAULT_DEADLINE_S
from tests.support.cluster import Cluster, application_row, eventually, quotes_of
from tests.support.infrastructure import BrokerAdmin
from tests.support.samples import sample_application


async def test_poison_jobs_are_dead_lettered_once_counted_and_never_looped(
    make_cluster: Callable[..., Cluster], fault_broker: BrokerAdmin
) -> None:
    cluster = make_cluster()
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    worker = cluster.worker("worker", metrics_port=True)
    await cluster.start(worker)

    unknown_quote = {
        "v": 1,
        "quote_id": str(uuid.uuid4()),
        "application_id": str(uuid.uuid4()),
        "insurer": "sever",
        "deadline": 9e9,
    }
    wrong_insurer = {**unknown_quote, "insurer": "no-such-insurer"}
    await cluster.publish_raw_job("sever", b"\x00not json at all")
    await cluster.publish_raw_job("sever", json.dumps({"v": 99}).encode())
    await cluster.publish_raw_job("sever", json.dumps(wrong_insurer).encode())
    await cluster.publish_raw_job("sever", json.dumps(unknown_quote).encode())

    async def queues_drained() -> bool:
        queues = await fault_broker.queues(cluster.infrastructure.vhost)
        return all(q.get("messages", 0) == 0 for q in queues if str(q["name"]).startswith("osago.quote."))

    await asyncio.sleep(1)
    assert await eventually(queues_drained, 10)
    await asyncio.sleep(1.5)  # a looping message would be rejected again in this time

    rejections = [line for line in worker.log_since_start().splitlines() if b"rejecting a poison job" in line]
    reasons = Counter(json.loads(line)["reason"] for line in rejections)
    assert reasons == {"unreadable": 2, "unknown_insurer": 1, "unknown_quote": 1}

    async with cluster.session.get(f"{worker.url}/metrics") as response:
        metrics = await response.text()
    counted = {
        m[0]: float(m[1]) for m in re.findall(r'osago_poison_messages_total\{reason="(\w+)"\} ([\d.]+)', metrics)
    }
    assert counted == {"unreadable": 2.0, "unknown_insurer": 1.0, "unknown_quote": 1.0}


@pytest.mark.parametrize("failpoint", ["after_insurer", "after_db", "after_publish"])
async def test_worker_killed_mid_job_converges_on_one_outcome(
    make_cluster: Callable[..., Cluster], failpoint: str
) -> None:
    cluster = make_cluster()
    core = cluster.core("core")
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(core)
    await cluster.behave_all(mode="ok", latency_ms=[10, 30])
    doomed = cluster.worker("doomed", OSAGO_FAILPOINT=failpoint, OSAGO_WORKER_PREFETCH="4")
    await cluster.start(doomed)

    status, created = await cluster.create(sample_application(), via=core)
    assert status == 201
    listener = asyncio.create_task(cluster.collect_events(core, created, timeout=FAULT_DEADLINE_S + 10))

    assert doomed.process is not None
    assert await eventually(lambda: asyncio.sleep(0, doomed.process.poll() is not None), 10)  # type: ignore[union-attr]
    assert doomed.process.returncode == -9, "the failpoint SIGKILLed the worker"

    await cluster.start(cluster.worker("rescuer"))
    events, close_code = await listener
    assert close_code == 1000

    finals = [e for e in events if e["type"] in ("offer", "quote_status")]
    assert Counter(e["insurer"]["code"] for e in finals) == Counter({i["code"]: 1 for i in created["insurers"]})
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[-1]["type"] == "complete"

    quotes = await quotes_of(created["id"])
    assert all(q.status is QuoteStatus.OFFERED for q in quotes)
    offers = await Offer.filter(application_id=created["id"])
    assert Counter(o.quote_id for o in offers) == Counter({q.id: 1 for q in quotes})  # type: ignore[attr-defined]
    assert (await application_row(created["id"])).status == "complete"

    async def every_event_published() -> bool:  # the outbox relay catches what the crash left
        return await Quote.filter(application_id=created["id"], event_published=False).count() == 0

    assert await eventually(every_event_published, 5)
