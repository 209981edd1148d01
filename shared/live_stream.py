"""The offers WebSocket: replay what is stored, then live events, with no gap and no duplicate.

Order matters: subscribe to live events first (they queue up), then read the
snapshot from the database and send it, then send the queued and later events
skipping every event id the snapshot already held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from shared.application_view import reload_snapshot
from shared.http_api import ApiError
from shared.offer_hub import OfferHub, Subscription

log = logging.getLogger(__name__)

FINAL_EVENT_TYPES = frozenset({"offer", "quote_status"})

CLIENT_MESSAGE_LIMIT = 4096  # clients have nothing to say but pings
# Seconds a client refused for too many sockets should wait: long enough for a tab to close.
TOO_MANY_STREAMS_RETRY_S = 5


class LiveSockets:
    """Every open offers socket of this process, so shutdown can close them with a close frame."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def __len__(self) -> int:
        return len(self._sockets)

    async def close_all(self) -> None:
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in list(self._sockets)),
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
) -> web.WebSocketResponse:
    """Stream one application's events; refuses before the upgrade when the per-application cap is reached.

    ``heartbeat`` 0 sends no pings. ``idle_timeout`` closes a socket whose client sent no
    frame at all (a pong counts) for that long, with 1008; a frame over
    ``max_message_bytes`` closes it with 1009.
    """
    key = str(application_id)
    # No await between this check and subscribe(): the count cannot change in between.
    if max_per_application is not None and hub.subscriber_count(key) >= max_per_application:
        raise ApiError(
            429,
            "too_many_streams",
            f"at most {max_per_application} live streams of one application may be open here; close one first",
            headers={"Retry-After": str(TOO_MANY_STREAMS_RETRY_S)},
        )
    ws = web.WebSocketResponse(
        heartbeat=heartbeat or None, max_msg_size=max_message_bytes, receive_timeout=idle_timeout or None
    )
    subscription = hub.subscribe(key)
    try:
        await ws.prepare(request)
        sockets.add(ws)
        reader = asyncio.create_task(_drain_client(ws))
        writer = asyncio.create_task(_send_events(ws, subscription, application_id))
        done, pending = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("offers socket ended with an error", exc_info=task.exception())
        if not ws.closed:
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"stream ended")
        return ws
    finally:
        hub.unsubscribe(subscription)


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so pongs, closes and limits are noticed."""
    try:
        async for message in ws:
            # An oversized frame arrives as ERROR after aiohttp has closed the socket with 1009.
            if message.type is WSMsgType.ERROR:
                return
    except TimeoutError:
        # receive_timeout elapsed without a single frame (pong included): the client is gone or idle.
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"idle timeout")


@dataclass
class _StreamState:
    """What one socket has been sent, so nothing is sent twice."""

    seen: set[str] = field(default_factory=set)
    finals_sent: int = 0
    quotes: int | None = None  # how many final events there will be, known from the first snapshot

    def has_every_final(self) -> bool:
        return self.quotes is not None and self.finals_sent >= self.quotes


async def _send_events(ws: web.WebSocketResponse, subscription: Subscription, application_id: uuid.UUID) -> None:
    state = _StreamState()
    if await _send_snapshot(ws, application_id, state):
        return
    while not ws.closed:
        event_id, event_type, text = await subscription.next()
        if subscription.overflowed:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"client too slow; reconnect")
            return
        if event_type == "complete" and state.has_every_final():
            await ws.send_str(text)
            await ws.close(code=WSCloseCode.OK)
            return
        if event_type in ("resync", "complete"):
            # A quote event lost on its way (broker hiccup) must not be skipped by a
            # `complete` that overtook it: the database has every final event by now.
            if await _send_snapshot(ws, application_id, state):
                return
            continue
        if event_id in state.seen:
            continue
        state.seen.add(event_id)
        if event_type in FINAL_EVENT_TYPES:
            state.finals_sent += 1
        await ws.send_str(text)


async def _send_snapshot(ws: web.WebSocketResponse, application_id: uuid.UUID, state: _StreamState) -> bool:
    """Send stored events not sent yet; True when the stream is complete (and closed)."""
    snapshot = await reload_snapshot(application_id)
    if snapshot is None:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"application not found")
        return True
    state.quotes = len(snapshot.quotes)
    for event in snapshot.events():
        if event["event_id"] in state.seen:
            continue
        state.seen.add(event["event_id"])
        if event["type"] in FINAL_EVENT_TYPES:
            state.finals_sent += 1
        await ws.send_str(_dump(event))
        if event["type"] == "complete":
            await ws.close(code=WSCloseCode.OK)
            return True
    return False


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
