"""Fans events from this instance's offers queue out to the sockets that want them.

Each instance consumes its own server-named exclusive queue bound to the offers
fanout exchange. Routing uses the message's ``application_id`` header, so events for
applications nobody here is watching are dropped without parsing the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from shared.platform.amqp import close_within
from shared.platform.metrics import OFFER_EVENTS_RECEIVED, OFFER_EVENTS_ROUTED
from shared.quoting.topology import declare_instance_offers_queue

log = logging.getLogger(__name__)

# A marker pushed to every subscriber once its events may have been lost (the connection
# came back, or the channel was reopened on the same connection: either way the consumer is
# back, and what was published in between is read back from the database).
RESYNC = ("", "resync", "")
# Deliveries are acked with ``multiple=True`` once this many are waiting or this long after
# the first: one frame per batch instead of one per event, and the prefetch window (512)
# still bounds what the broker sends ahead.
ACK_BATCH = 64
ACK_DELAY_S = 0.02


Event = tuple[str, str, str]  # event id, type, JSON text


class Subscription:
    """One socket's events, buffered until its sender takes them.

    No queue and no waiting task: an idle socket costs only this object. ``on_event`` is
    called (synchronously) after each delivery, so the owner starts a sender only when
    there is something to send.
    """

    __slots__ = ("application_id", "max_pending", "pending", "overflowed", "on_event")

    def __init__(self, application_id: str, max_pending: int = 1024) -> None:
        self.application_id = application_id
        self.max_pending = max_pending
        # A list, not a deque: an empty deque allocates a 64-slot block (760 bytes) per idle
        # socket, and a socket rarely holds more than the dozen events of one application.
        self.pending: list[Event] = []
        self.overflowed = False
        self.on_event: Callable[[], None] | None = None

    def deliver(self, event_id: str, event_type: str, text: str) -> None:
        if len(self.pending) >= self.max_pending:
            # A client this far behind is disconnected; it replays from the database on reconnect.
            self.overflowed = True
        else:
            self.pending.append((event_id, event_type, text))
        if self.on_event is not None:
            self.on_event()

    def resync(self) -> None:
        """Ask for a read of the database; one not yet acted on already covers this one."""
        if RESYNC not in self.pending:
            self.deliver(*RESYNC)


class OfferHub:
    def __init__(self) -> None:
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._connection: AbstractRobustConnection | None = None
        self._starting = asyncio.Lock()
        self._unacked: AbstractIncomingMessage | None = None
        self._unacked_count = 0
        self._ack_timer: asyncio.TimerHandle | None = None
        self._acks: set[asyncio.Task[None]] = set()
        self.resyncs = 0  # times every subscriber was told to read the database again

    @property
    def consuming(self) -> bool:
        return self._queue is not None

    def attach(self, connection: AbstractRobustConnection) -> None:
        """Know the connection; consume only from the first ``ensure_consuming()``."""
        self._connection = connection
        connection.reconnect_callbacks.add(self._on_reconnect)

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Attach and consume at once (an instance that serves sockets all the time)."""
        self.attach(connection)
        await self.ensure_consuming()

    async def ensure_consuming(self) -> None:
        """Declare this instance's queue and consume, once; later calls return at once."""
        if self._queue is not None:
            return
        async with self._starting:
            if self._queue is not None or self._connection is None:
                return
            try:
                channel = await self._connection.channel()
            except RuntimeError as exc:  # aio-pika's "connection closed" while it reconnects
                raise ConnectionError(f"the broker connection is down: {exc}") from exc
            # A channel closed by the broker (a channel error) is reopened on the same
            # connection, its queue declared and consumed again, with no reconnect callback;
            # its auto-delete queue went with the old channel, and the events in it.
            channel.reopen_callbacks.add(self._on_reconnect)
            await channel.set_qos(prefetch_count=512)
            queue = await declare_instance_offers_queue(channel)
            self._consumer_tag = await queue.consume(self._on_message)
            self._queue = queue

    async def stop(self) -> None:
        if self._queue is not None and self._consumer_tag is not None:
            queue, tag = self._queue, self._consumer_tag
            await close_within(lambda: queue.cancel(tag), "offers consumer", connection=self._connection)
        self._ack_now()
        if self._acks:
            await asyncio.wait(set(self._acks), timeout=1.0)
        self._queue = None

    def subscribe(self, application_id: str) -> Subscription:
        subscription = Subscription(application_id)
        self._subscriptions.setdefault(application_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscriptions.get(subscription.application_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[subscription.application_id]

    def subscriber_count(self, application_id: str | None = None) -> int:
        if application_id is not None:
            return len(self._subscriptions.get(application_id, ()))
        return sum(len(s) for s in self._subscriptions.values())

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Acked on receipt: delivery to sockets is in memory, and a socket that misses an
        # event replays it from the database. The ack keeps the prefetch window bounded.
        self._ack_soon(message)
        OFFER_EVENTS_RECEIVED.inc()
        headers = message.headers or {}
        application_id = headers.get("application_id")
        subscribers = self._subscriptions.get(str(application_id)) if application_id else None
        if not subscribers:
            return
        text = message.body.decode()
        for subscription in tuple(subscribers):
            subscription.deliver(message.message_id or "", message.type or "", text)
        OFFER_EVENTS_ROUTED.inc()

    def _ack_soon(self, message: AbstractIncomingMessage) -> None:
        self._unacked = message
        self._unacked_count += 1
        if self._unacked_count >= ACK_BATCH:
            self._ack_now()
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY_S, self._ack_now)

    def _ack_now(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        message, self._unacked, self._unacked_count = self._unacked, None, 0
        if message is not None:
            task = asyncio.ensure_future(self._ack_up_to(message))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    @staticmethod
    async def _ack_up_to(message: AbstractIncomingMessage) -> None:
        try:
            await message.ack(multiple=True)
        except (ChannelInvalidStateError, AMQPError) as exc:
            # The channel died with its queue (reconnect); the unacked events went with it.
            log.info("could not ack offer events", extra={"error": type(exc).__name__})

    def _on_reconnect(self, *_: object) -> None:
        """The connection came back, or the channel was reopened (a reconnect does both)."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self._unacked, self._unacked_count = None, 0  # their delivery tags died with the old channel
        self.resyncs += 1
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription.resync()
