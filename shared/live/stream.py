"""The offers WebSocket: replay what is stored, then live events, with no gap and no duplicate.

Order matters: subscribe to live events first (they queue up), then read the
snapshot from the database and send it, then send the queued and later events
skipping every event id the snapshot already held.

Live events are hints: one can be lost (a channel reopened, an auto-delete queue gone
with its consumer, a publish that never happened). So the database is read again on a
resync marker, on `complete`, and once more shortly after the application's deadline,
when every quote is final (the sweeper's doing) and the socket is closed either way.

A client that does not read: aiohttp's send and close wait for the transport to drain, with
no bound of their own, and a client that keeps sending frames is never pinged (received data
postpones aiohttp's heartbeat) nor idle. So every send and close here is bounded
(``SEND_TIMEOUT_S``); past it the connection is aborted, dropping what its buffer holds. What
one socket is owed meanwhile is bounded by its subscription (``Subscription.max_pending``) and
the transport's buffer (aiohttp drains past its writer limit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from asyncio import BaseTransport
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiormq.exceptions import AMQPError

from shared.live.offer_hub import OfferHub, Subscription
from shared.live.snapshot_reads import SNAPSHOTS, SnapshotReads
from shared.platform.clock import utc_now
from shared.platform.http_api import ApiError, service_unavailable

log = logging.getLogger(__name__)

FINAL_EVENT_TYPES = frozenset({"offer", "quote_status"})

CLIENT_MESSAGE_LIMIT = 4096  # clients have nothing to say but pings
# Seconds a client refused for too many sockets should wait: long enough for a tab to close.
TOO_MANY_STREAMS_RETRY_S = 5
HUB_START_TIMEOUT_S = 5.0
# After its deadline plus the sweeper's grace, a quote still pending is closed (and its events
# published) on the sweeper's next round; a socket that has heard no `complete` by then plus
# this margin reads the database itself and ends (see ``stream_offers``).
END_MARGIN_S = 2.0
DEFAULT_END_AFTER_DEADLINE_S = 5.0  # with the default settings: grace 2 s + a round every 1 s + the margin
# The close of a socket whose application is still pending at its end (the sweeper is not
# running?): what there is has been sent; the client may come back later.
STILL_PENDING = (WSCloseCode.TRY_AGAIN_LATER, b"still pending after the deadline; reconnect later")
# How long one send (or close) may wait for a client to take its bytes; past it the client is not
# reading and its connection is aborted (it replays what it missed from the database on reconnect).
SEND_TIMEOUT_S = 10.0


async def bounded_close(ws: web.WebSocketResponse, transport: BaseTransport | None, code: int, message: bytes) -> None:
    """Close with a close frame if the client takes it within SEND_TIMEOUT_S; abort otherwise."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await ws.close(code=code, message=message)
    except TimeoutError:
        abort(transport)


def abort(transport: BaseTransport | None) -> None:
    """Drop the connection and what its buffer holds (close() would wait for the buffer to flush)."""
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()


class LiveSockets:
    """Every open offers socket of this process, so shutdown can close them with a close frame."""

    def __init__(self) -> None:
        # Each socket with its connection's transport, to abort one that does not take its close frame.
        self._sockets: dict[web.WebSocketResponse, BaseTransport | None] = {}

    def add(self, ws: web.WebSocketResponse, transport: BaseTransport | None = None) -> None:
        self._sockets[ws] = transport

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.pop(ws, None)

    def __len__(self) -> int:
        return len(self._sockets)

    async def close_all(self) -> None:
        await asyncio.gather(
            *(
                bounded_close(ws, transport, WSCloseCode.GOING_AWAY, b"server shutdown")
                for ws, transport in list(self._sockets.items())
            ),
            return_exceptions=True,
        )


async def stream_offers(
    request: web.Request,
    hub: OfferHub,
    sockets: LiveSockets,
    application_id: uuid.UUID,
    *,
    heartbeat: float,
    max_message_bytes: int = CLIENT_MESSAGE_LIMIT,
    idle_timeout: float | None = None,
    max_per_application: int | None = None,
    end_after_deadline: float = DEFAULT_END_AFTER_DEADLINE_S,
    snapshots: SnapshotReads = SNAPSHOTS,
) -> web.WebSocketResponse:
    """Stream one application's events; refuses before the upgrade when the per-application cap is reached.

    ``heartbeat`` 0 sends no pings. ``idle_timeout`` closes a socket whose client sent no
    frame at all (a pong counts) for that long, with 1008; a frame over
    ``max_message_bytes`` closes it with 1009.

    A socket that has not ended ``end_after_deadline`` seconds after the application's
    deadline (or that long after it opened, if that was after the deadline) reads the snapshot again,
    sends what it has not sent and closes: with 1000 after `complete`, or with 1013 (try
    again later) if the application is somehow still pending. Snapshot reads go through
    ``snapshots``, shared by every socket of an application.

    The handler's own task reads the client; a sender task exists only while there is
    something to send, so an idle socket holds one task, not two plus a queue.
    """
    key = str(application_id)
    try:
        async with asyncio.timeout(HUB_START_TIMEOUT_S):
            await hub.ensure_consuming()
    except (AMQPError, ConnectionError, TimeoutError) as exc:
        log.warning("offers stream without a broker", extra={"error": type(exc).__name__})
        raise service_unavailable("the event stream") from None
    # No await between this check and subscribe(): the count cannot change in between.
    if max_per_application is not None and hub.subscriber_count(key) >= max_per_application:
        raise ApiError(
            429,
            "too_many_streams",
            f"at most {max_per_application} live streams of one application may be open here; close one first",
            headers={"Retry-After": str(TOO_MANY_STREAMS_RETRY_S)},
        )
    ws = web.WebSocketResponse(
        heartbeat=heartbeat or None,
        max_msg_size=max_message_bytes,
        receive_timeout=idle_timeout or None,
        # Browsers always offer permessage-deflate; accepted, every socket that is sent an event
        # keeps zlib state (about 55 KB, measured with bench.websockets) and fan-out costs twice
        # the CPU, for events of under a kilobyte.
        compress=False,
    )
    subscription = hub.subscribe(key)
    transport = request.transport
    sender = _Sender(ws, transport, subscription, application_id, snapshots, end_after_deadline)
    try:
        await ws.prepare(request)
        sockets.add(ws, transport)
        sender.wake()  # the snapshot first; events arriving meanwhile wait in the subscription
        subscription.on_event = sender.wake
        await _drain_client(ws, transport)
        await sender.stop()
        if not ws.closed:
            await bounded_close(ws, transport, WSCloseCode.INTERNAL_ERROR, b"stream ended")
        return ws
    finally:
        subscription.on_event = None
        hub.unsubscribe(subscription)
        sockets.discard(ws)
        await sender.stop()


async def _drain_client(ws: web.WebSocketResponse, transport: BaseTransport | None) -> None:
    """Read (and ignore) what the client sends, so pongs, closes and limits are noticed."""
    try:
        async for message in ws:
            # An oversized frame arrives as ERROR after aiohttp has closed the socket with 1009.
            if message.type is WSMsgType.ERROR:
                return
    except TimeoutError:
        # receive_timeout elapsed without a single frame (pong included): the client is gone or idle.
        await bounded_close(ws, transport, WSCloseCode.POLICY_VIOLATION, b"idle timeout")


class _Sender:
    """Sends one socket's events: the stored ones first, then live ones, none twice."""

    __slots__ = (
        "_ws",
        "_transport",
        "_subscription",
        "_application_id",
        "_task",
        "_snapshot_sent",
        "_seen",
        "_finals_sent",
        "_quotes",
        "_snapshots",
        "_end_after",
        "_end_timer",
        "_ending",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: BaseTransport | None,
        subscription: Subscription,
        application_id: uuid.UUID,
        snapshots: SnapshotReads,
        end_after_deadline: float,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._subscription = subscription
        self._application_id = application_id
        self._task: asyncio.Task[None] | None = None
        self._snapshot_sent = False
        self._seen: set[str] = set()
        self._finals_sent = 0
        self._quotes: int | None = None  # how many final events there will be, known from the first snapshot
        self._snapshots = snapshots
        self._end_after = end_after_deadline
        # A timer handle, not a task: an idle socket holds no coroutine for its end.
        self._end_timer: asyncio.TimerHandle | None = None
        self._ending = False

    def wake(self) -> None:
        # A task that returned is done at once (no await after its last check of `pending`),
        # so an event delivered after that check always finds no running sender and starts one.
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._end_timer is not None:
            self._end_timer.cancel()
            self._end_timer = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            await self._send_everything_pending()
        except ConnectionResetError:
            pass  # the client left; the reader sees it too
        except Exception:
            log.warning("offers socket ended with an error", exc_info=True)
            await self._close(WSCloseCode.INTERNAL_ERROR, b"stream ended")
        finally:
            # A finished task keeps its coroutine object: an idle socket should hold neither.
            if self._task is asyncio.current_task():
                self._task = None

    async def _send_everything_pending(self) -> bool:
        """True when the stream is over (and the socket closed)."""
        ws, subscription = self._ws, self._subscription
        if not self._snapshot_sent:
            self._snapshot_sent = True
            if await self._send_snapshot():
                return True
        while not ws.closed:
            if not subscription.pending:
                if not self._ending:
                    break  # no await after this check: see wake()
                await self._end()
                return True
            if subscription.overflowed:
                await self._close(WSCloseCode.TRY_AGAIN_LATER, b"client too slow; reconnect")
                return True
            event_id, event_type, text = subscription.pending.pop(0)
            if event_type == "complete" and self._has_every_final():
                if await self._send(text):
                    await self._close(WSCloseCode.OK)
                return True
            if event_type in ("resync", "complete"):
                # A quote event lost on its way (broker hiccup) must not be skipped by a
                # `complete` that overtook it: the database has every final event by now.
                if await self._send_snapshot():
                    return True
                continue
            if event_id in self._seen:
                continue
            self._seen.add(event_id)
            if event_type in FINAL_EVENT_TYPES:
                self._finals_sent += 1
            if not await self._send(text):
                return True
        return ws.closed

    async def _send(self, text: str) -> bool:
        """Send one event within SEND_TIMEOUT_S; False when the client did not take it (and was dropped)."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await self._ws.send_str(text)
        except TimeoutError:
            log.warning(
                "offers socket dropped: the client does not read",
                extra={"application_id": str(self._application_id)},
            )
            abort(self._transport)
            return False
        return True

    async def _close(self, code: int, message: bytes = b"") -> None:
        await bounded_close(self._ws, self._transport, code, message)

    def _arm_end_timer(self, deadline_in_s: float) -> None:
        delay = max(deadline_in_s, 0.0) + self._end_after
        self._end_timer = asyncio.get_running_loop().call_later(delay, self._end_due)

    def _end_due(self) -> None:
        self._end_timer = None
        self._ending = True
        self.wake()

    async def _end(self) -> None:
        """The deadline is well past: send what the database holds and close, complete or not."""
        if not await self._send_snapshot():
            log.warning(
                "offers socket ended with its application still pending",
                extra={"application_id": str(self._application_id)},
            )
            await self._close(STILL_PENDING[0], STILL_PENDING[1])

    def _has_every_final(self) -> bool:
        return self._quotes is not None and self._finals_sent >= self._quotes

    async def _send_snapshot(self) -> bool:
        """Send stored events not sent yet; True when the stream is complete (and closed)."""
        snapshot = await self._snapshots.load(self._application_id)
        if snapshot is None:
            await self._close(WSCloseCode.POLICY_VIOLATION, b"application not found")
            return True
        first = self._quotes is None
        self._quotes = len(snapshot.quotes)
        for event in snapshot.events():
            if event["event_id"] in self._seen:
                continue
            self._seen.add(event["event_id"])
            if event["type"] in FINAL_EVENT_TYPES:
                self._finals_sent += 1
            if not await self._send(_dump(event)):
                return True
            if event["type"] == "complete":
                await self._close(WSCloseCode.OK)
                return True
        if first and not self._ending:
            self._arm_end_timer((snapshot.application.deadline - utc_now()).total_seconds())
        return False


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
