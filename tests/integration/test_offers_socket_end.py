"""An offers socket that never hears `complete` live still ends, on the real database and broker.

The core app runs in this process with its aggregator down (no outbox relay, no sweeper
here): quotes are ended directly in the database with ``finalize_quotes`` and nothing is
published, as if every event had been lost on its way. Their rows are then marked
published, so that no relay anywhere sends them after all. What ends the socket is its
own reads of the database: at its deadline timer, or when the hub's channel is reopened.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from core_app.app import create_app
from core_app.typedefs import AMQP, HUB
from shared.intake.access import TokenKeys, access_token_for
from shared.models import Application, Quote, QuoteStatus
from shared.platform.clock import utc_now
from shared.platform.settings import Settings
from shared.quoting.insurers import BY_CODE
from shared.quoting.outcomes import FinalizeRequest, OfferOutcome, StatusOutcome, finalize_quotes
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS
from tests.support.stored import store_bare_application

Client = TestClient[web.Request, web.Application]

SWEEPER_GRACE_S = 0.25
RELAY_INTERVAL_S = 0.25
# What the core app gives its sockets after the deadline: the grace, one sweeper round, the margin.
END_MARGIN_S = 2.0
END_AFTER_DEADLINE_S = SWEEPER_GRACE_S + RELAY_INTERVAL_S + END_MARGIN_S
SLACK_S = 3.0  # a loaded machine (two cores, other test runs) may be late by this much
SOCKETS = 50
INSURERS = ("sever", "volga", "ural")


@pytest.fixture(scope="module")
def settings(infrastructure: RunInfrastructure) -> Settings:
    return infrastructure.settings(
        aggregator_url=f"http://127.0.0.1:{free_port()}",
        browser_rps=1000.0,
        sweeper_grace_s=SWEEPER_GRACE_S,
        relay_interval_s=RELAY_INTERVAL_S,
        ws_max_sockets_per_application=SOCKETS + 10,
    )


@pytest.fixture(scope="module")
async def core(settings: Settings) -> AsyncIterator[Client]:
    async with in_process(create_app(settings)) as client:
        yield client


@dataclass
class Stored:
    id: str
    token: str
    deadline_monotonic: float  # the deadline on this process's monotonic clock
    quotes: dict[str, uuid.UUID]  # insurer code → quote id

    @property
    def path(self) -> str:
        return f"/api/v1/applications/{self.id}/offers?token={self.token}"


async def stored_application(settings: Settings, deadline_in_s: float, insurers: tuple[str, ...] = INSURERS) -> Stored:
    """A pending application with one pending quote per insurer whose jobs nobody will take."""
    deadline = utc_now() + timedelta(seconds=deadline_in_s)
    application_id = await store_bare_application(deadline, pending_quotes=len(insurers))
    deadline_monotonic = time.monotonic() + deadline_in_s
    quotes = {}
    for code in insurers:
        quote = await Quote.create(
            application_id=application_id, insurer_code=code, insurer_name=BY_CODE[code].name, job_published=True
        )
        quotes[code] = quote.id
    token = access_token_for(str(application_id), deadline, TokenKeys.of(settings))
    return Stored(str(application_id), token, deadline_monotonic, quotes)


def outcome_for(code: str) -> OfferOutcome | StatusOutcome:
    if code == "volga":
        return StatusOutcome(QuoteStatus.DECLINED, "test refusal")
    return OfferOutcome(Decimal("9441.80"), WORKED_EXAMPLE_COEFFICIENTS, f"ref-{code}", utc_now() + timedelta(days=30))


async def finish_silently(stored: Stored, codes: tuple[str, ...]) -> None:
    """End these quotes in the database and publish nothing: their events are lost."""
    results = await finalize_quotes([FinalizeRequest(stored.quotes[code], outcome_for(code)) for code in codes])
    assert all(result.recorded for result in results)
    # As if published and confirmed, then lost: no outbox relay may send them after all.
    await Quote.filter(id__in=[stored.quotes[code] for code in codes]).update(event_published=True)
    await Application.filter(id=uuid.UUID(stored.id)).update(complete_event_published=True)


@dataclass
class Ended:
    events: list[dict[str, Any]]
    code: int | None
    reason: str | None
    at_monotonic: float


async def read_until_closed(ws: aiohttp.ClientWebSocketResponse, within_s: float) -> Ended:
    """Every event until the server closes; fails if it is still open after ``within_s``."""
    events: list[dict[str, Any]] = []
    give_up = time.monotonic() + within_s
    while True:
        left = give_up - time.monotonic()
        try:
            message = await ws.receive(timeout=max(left, 0.01))
        except TimeoutError:
            pytest.fail(f"the socket is still open {within_s:.1f}s later, after {[e['type'] for e in events]}")
        if message.type is aiohttp.WSMsgType.TEXT:
            events.append(message.json())
            continue
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        return Ended(events, ws.close_code, message.extra, time.monotonic())


def assert_complete_stream(ended: Ended, stored: Stored) -> None:
    """One final event per insurer, `complete` last and right, then 1000."""
    finals = [e for e in ended.events if e["type"] in ("offer", "quote_status")]
    assert Counter(e["insurer"]["code"] for e in finals) == Counter(list(stored.quotes)), ended.events
    assert ended.events[-1]["type"] == "complete", ended.events
    assert ended.events[-1]["offers"] == sum(1 for e in finals if e["type"] == "offer")
    assert len({e["event_id"] for e in ended.events}) == len(ended.events)
    assert ended.code == aiohttp.WSCloseCode.OK, (ended.code, ended.reason)


def snapshot_reads() -> float:
    value = REGISTRY.get_sample_value("osago_snapshot_reads_total")
    assert value is not None, "no osago_snapshot_reads_total counter"
    return value


async def test_socket_that_never_hears_complete_gets_every_event_and_1000_after_the_deadline(
    core: Client, settings: Settings
) -> None:
    stored = await stored_application(settings, deadline_in_s=1.0)
    await finish_silently(stored, ("sever",))  # in the opening snapshot: proof that it has been read
    async with core.ws_connect(stored.path) as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "offer" and first["insurer"]["code"] == "sever"
        await finish_silently(stored, ("ural", "volga"))  # completes the application; nobody hears it
        ended = await read_until_closed(
            ws, stored.deadline_monotonic + END_AFTER_DEADLINE_S + SLACK_S - time.monotonic()
        )
    assert_complete_stream(Ended([first, *ended.events], ended.code, ended.reason, ended.at_monotonic), stored)
    # Not before the deadline timer: nothing else could have told it.
    assert ended.at_monotonic >= stored.deadline_monotonic + END_AFTER_DEADLINE_S - 0.5


async def test_sockets_of_one_application_reaching_their_deadline_together_share_one_read(
    core: Client, settings: Settings
) -> None:
    stored = await stored_application(settings, deadline_in_s=3.0)
    await finish_silently(stored, ("sever",))
    sockets = await asyncio.gather(*(core.ws_connect(stored.path) for _ in range(SOCKETS)))
    try:
        for ws in sockets:  # each has read its opening snapshot
            assert (await ws.receive_json(timeout=10))["insurer"]["code"] == "sever"
        await finish_silently(stored, ("ural", "volga"))
        assert time.monotonic() < stored.deadline_monotonic, "opening the sockets took longer than the deadline"
        reads_before = snapshot_reads()
        within = stored.deadline_monotonic + END_AFTER_DEADLINE_S + SLACK_S - time.monotonic()
        ended = await asyncio.gather(*(read_until_closed(ws, within) for ws in sockets))
        reads = snapshot_reads() - reads_before
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    for one in ended:
        finals = [e["insurer"]["code"] for e in one.events if e["type"] in ("offer", "quote_status")]
        assert sorted(finals) == ["ural", "volga"] and one.events[-1]["type"] == "complete", one.events
        assert one.code == aiohttp.WSCloseCode.OK
    # One read in flight per application, and at most one more for the sockets that asked meanwhile.
    assert reads <= 2, f"{SOCKETS} sockets made {reads:g} snapshot reads at their deadline"


async def test_socket_resyncs_when_the_hub_channel_is_reopened_on_the_same_connection(
    core: Client, settings: Settings
) -> None:
    stored = await stored_application(settings, deadline_in_s=3600.0)  # the deadline timer is far away
    await finish_silently(stored, ("sever",))
    hub, connection = core.app[HUB], core.app[AMQP]
    async with core.ws_connect(stored.path) as ws:
        first = await ws.receive_json(timeout=10)
        assert first["insurer"]["code"] == "sever"
        await finish_silently(stored, ("ural", "volga"))
        attempts = connection.connection_attempt  # type: ignore[attr-defined]  # aio-pika's RobustConnection
        queue = hub._queue
        assert queue is not None
        # A channel error: the broker closes the hub's channel (and its auto-delete queue goes
        # with its consumer); aio-pika reopens the channel on the same connection.
        underlay = await queue.channel.get_underlay_channel()
        with pytest.raises(ChannelNotFoundEntity):
            await underlay.queue_declare(f"osago.test.missing.{uuid.uuid4()}", passive=True)
        ended = await read_until_closed(ws, 15)
    assert_complete_stream(Ended([first, *ended.events], ended.code, ended.reason, ended.at_monotonic), stored)
    assert connection.connection_attempt == attempts, "the connection reconnected: not the case under test"  # type: ignore[attr-defined]
    assert hub.resyncs >= 1


async def test_socket_of_an_application_still_pending_after_its_deadline_ends_with_1013(
    core: Client, settings: Settings
) -> None:
    # No quote at all (no insurer enabled) and long past its deadline: it stays pending for
    # good, as when no sweeper is running. The socket still lives out a full end period, so
    # that a client reconnecting at once is not turned away in a loop.
    stored = await stored_application(settings, deadline_in_s=-3600.0, insurers=())
    opened = time.monotonic()
    async with core.ws_connect(stored.path) as ws:
        ended = await read_until_closed(ws, END_AFTER_DEADLINE_S + SLACK_S)
    assert ended.events == []
    assert ended.code == aiohttp.WSCloseCode.TRY_AGAIN_LATER  # 1013
    assert ended.reason == "still pending after the deadline; reconnect later"
    assert ended.at_monotonic - opened >= END_AFTER_DEADLINE_S - 0.5
