"""The offers hub on the real broker: routing by application, acks in batches."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from shared.live.offer_hub import ACK_BATCH, OfferHub, Subscription
from shared.platform.amqp import ConfirmingPublisher, robust_connection
from shared.quoting.events import event_message
from shared.quoting.topology import OFFERS_EXCHANGE, declare_offers_exchange
from tests.support.cluster import eventually
from tests.support.infrastructure import RunInfrastructure

PREFETCH = 512  # OfferHub's window: with no acks at all, delivery would stall there


def offer_event(application_id: str, n: int) -> dict[str, object]:
    return {"event_id": f"{application_id}:{n}", "type": "quote_final", "application_id": application_id, "n": n}


def _counter(kind: str) -> float:
    return REGISTRY.get_sample_value(f"osago_offer_events_{kind}_total") or 0.0


def drain(subscription: Subscription) -> list[str]:
    ids = [event_id for event_id, _, _ in subscription.pending]
    subscription.pending.clear()
    return ids


async def test_hub_routes_by_application_and_keeps_consuming_past_the_prefetch_window(
    infrastructure: RunInfrastructure,
) -> None:
    watched, unwatched = str(uuid.uuid4()), str(uuid.uuid4())
    events = 3 * PREFETCH + ACK_BATCH // 2  # ends mid-batch: the timer acks the tail
    async with (
        robust_connection(infrastructure.amqp_url, "hub-test") as connection,
        robust_connection(infrastructure.amqp_url, "hub-test-publisher") as publisher_connection,
    ):
        hub = OfferHub()
        await hub.start(connection)
        subscription = hub.subscribe(watched)
        subscription.max_pending = events  # the test reads only at the end
        wakes = 0

        def count_wake() -> None:
            nonlocal wakes
            wakes += 1

        subscription.on_event = count_wake
        publisher = await ConfirmingPublisher.open(publisher_connection, 10.0)
        publisher.register(await declare_offers_exchange(publisher.channel))
        received_before, routed_before = _counter("received"), _counter("routed")
        for n in range(events):
            application = watched if n % 2 == 0 else unwatched
            assert await publisher.publish_many(OFFERS_EXCHANGE, [(event_message(offer_event(application, n)), "")])

        wanted = (events + 1) // 2
        assert await eventually(lambda: _at_least(subscription, wanted), 15), len(subscription.pending)
        received = drain(subscription)
        assert received == [f"{watched}:{n}" for n in range(0, events, 2)]  # in order, none from the other
        assert wakes == wanted  # the owner hears of every event it gets, and of no other
        await asyncio.sleep(0.2)  # would-be duplicates have time to arrive
        assert not subscription.pending
        # /metrics counts what the fanout brought here, watched or not (bench/scaling.py reads it).
        assert (_counter("received") - received_before, _counter("routed") - routed_before) == (events, wanted)
        await hub.stop()


async def _at_least(subscription: Subscription, count: int) -> bool:
    return len(subscription.pending) >= count
