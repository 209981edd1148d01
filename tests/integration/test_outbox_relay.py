"""The outbox relay and the deadline sweeper on the real database and broker (in-process aggregator).

The relay must never race a publish still waiting for its confirm: a row is relayed only once
the publish that made it has given up (``settings.publish_timeout_s``). What it relays must be
what the live path would have sent, read from the few columns it needs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from aiohttp.test_utils import TestClient

from aggregator_api.deadlines import NO_OUTCOME, sweep_once
from aggregator_api.outbox import relay_complete_events, relay_quote_events
from aggregator_api.typedefs import AMQP, PUBLISHER, SETTINGS
from shared.intake.schema import parse_application
from shared.models import Application, ApplicationStatus, Quote, QuoteStatus
from shared.platform.clock import moscow_today, utc_now
from shared.quoting import insurers as catalogue
from shared.quoting.outcomes import FinalizeRequest, OfferOutcome, StatusOutcome, finalize_quotes
from shared.quoting.topology import declare_offers_exchange
from tests.support.cluster import eventually
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS, sample_application

# The settle time the relay had before it was derived from the publish timeout.
OLD_SETTLE_S = 2.0
# The insurers of the fixture's aggregator (tests/integration/conftest.py), by code.
INSURERS = {i.code: i.name for i in catalogue.select(("sever", "volga", "ural"))}


async def new_application(
    *, deadline_in_s: float, insurers: list[str], age_s: float = 0.0
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """A pending application and its pending quotes with unpublished jobs, committed ``age_s`` ago."""
    payload = parse_application(sample_application(), today=moscow_today()).to_payload()
    application = await Application.create(
        id=uuid.uuid4(),
        client_scope="service",
        request_fingerprint="f" * 64,
        payload=payload,
        region_code="77",
        deadline=utc_now() + timedelta(seconds=deadline_in_s),
        pending_quotes=len(insurers),
    )
    quotes = {code: uuid.uuid4() for code in insurers}
    for code, quote_id in quotes.items():
        await Quote.create(id=quote_id, application_id=application.id, insurer_code=code, insurer_name=INSURERS[code])
    if age_s:
        committed = utc_now() - timedelta(seconds=age_s)
        await Application.filter(id=application.id).update(created_at=committed)
        await Quote.filter(application_id=application.id).update(created_at=committed)
    return application.id, quotes


async def job_published(quote_id: uuid.UUID) -> bool:
    return (await Quote.get(id=quote_id)).job_published


async def test_relay_leaves_a_job_to_its_publisher_until_that_publish_has_timed_out(aggregator: TestClient) -> None:
    settings = aggregator.app[SETTINGS]
    assert settings.publish_timeout_s > OLD_SETTLE_S + 1.5  # else this test cannot tell the two apart
    # Committed and not marked published yet, as while its publish waits for the broker's
    # confirm: older than the relay's old settle time, younger than the publish timeout.
    age_s = OLD_SETTLE_S + 0.5
    _, quotes = await new_application(deadline_in_s=30, insurers=["sever"], age_s=age_s)
    quote_id = quotes["sever"]
    started = asyncio.get_running_loop().time()

    # Relay ticks pass (one every relay_interval_s) while the publish could still be confirmed.
    watch_s = settings.publish_timeout_s - age_s - 0.5
    assert watch_s > settings.relay_interval_s  # at least one tick sees the row
    while asyncio.get_running_loop().time() - started < watch_s:
        assert not await job_published(quote_id), "the relay published a job whose publish had not timed out"
        await asyncio.sleep(0.1)

    # Once the publisher has given up, the relay publishes it.
    within_s = settings.publish_timeout_s + 2 * settings.relay_interval_s + 5
    assert await eventually(lambda: job_published(quote_id), within_s), "the relay never published the job"


@pytest.fixture
async def offers_queue(aggregator: TestClient) -> AsyncIterator[AbstractQueue]:
    """A queue bound to the offers fanout: every event published from now on."""
    channel = await aggregator.app[AMQP].channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(await declare_offers_exchange(channel))
    yield queue
    await channel.close()


async def events_of(queue: AbstractQueue, application_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10), queue.iterator(no_ack=True) as messages:
        async for message in messages:
            if (message.headers or {}).get("application_id") == str(application_id):
                events.append(json.loads(message.body))
                if len(events) == count:
                    break
    return events


async def test_relay_sends_the_events_the_live_path_would_have_sent_and_marks_them(
    aggregator: TestClient, offers_queue: AbstractQueue
) -> None:
    application_id, quotes = await new_application(deadline_in_s=30, insurers=sorted(INSURERS))
    await Quote.filter(application_id=application_id).update(job_published=True)
    offer = OfferOutcome(Decimal("9441.80"), WORKED_EXAMPLE_COEFFICIENTS, "REF-RELAY", utc_now() + timedelta(days=3))
    # Recorded, but their events never reached the broker (the worker died before publishing).
    results = await finalize_quotes(
        [
            FinalizeRequest(quotes["sever"], offer, attempts=1),
            FinalizeRequest(quotes["ural"], StatusOutcome(QuoteStatus.DECLINED, "too young")),
            FinalizeRequest(quotes["volga"], StatusOutcome(QuoteStatus.FAILED, "insurer error")),
        ]
    )
    live = [event.body for result in results for event in result.events]
    assert sorted(body["type"] for body in live) == ["complete", "offer", "quote_status", "quote_status"]

    # Younger than the app's own relay waits (settle_time), so only these calls relay them.
    publisher = aggregator.app[PUBLISHER]
    assert await relay_quote_events(publisher, timedelta(0)) >= 3
    assert await relay_complete_events(publisher, timedelta(0)) >= 1

    relayed = await events_of(offers_queue, application_id, 4)
    assert sorted(relayed, key=lambda e: e["event_id"]) == sorted(live, key=lambda e: e["event_id"])
    assert all(q.event_published for q in await Quote.filter(application_id=application_id))
    assert (await Application.get(id=application_id)).complete_event_published


async def test_sweeper_ends_the_pending_quotes_of_overdue_applications_only(aggregator: TestClient) -> None:
    overdue, overdue_quotes = await new_application(deadline_in_s=30, insurers=sorted(INSURERS), age_s=60)
    await finalize_quotes([FinalizeRequest(overdue_quotes["sever"], StatusOutcome(QuoteStatus.DECLINED, "no"))])
    await Application.filter(id=overdue).update(deadline=utc_now() - timedelta(seconds=30))
    still_open, open_quotes = await new_application(deadline_in_s=30, insurers=sorted(INSURERS))

    await sweep_once(aggregator.app[PUBLISHER], aggregator.app[SETTINGS].sweeper_grace_s)
    # The app's own sweeper may have got there first: the outcome is the same.
    swept = {q.insurer_code: q for q in await Quote.filter(application_id=overdue)}
    assert swept["sever"].status is QuoteStatus.DECLINED and swept["sever"].reason == "no"
    for code in ("ural", "volga"):
        assert swept[code].status is NO_OUTCOME.status and swept[code].reason == NO_OUTCOME.reason
    assert (await Application.get(id=overdue)).status is ApplicationStatus.COMPLETE

    assert {q.status for q in await Quote.filter(id__in=list(open_quotes.values()))} == {QuoteStatus.PENDING}
    assert (await Application.get(id=still_open)).status is ApplicationStatus.PENDING
