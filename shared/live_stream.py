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
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from shared.application_view import reload_snapshot
from shared.offer_hub import OfferHub, Subscription

log = logging.getLogger(__name__)

CLIENT_MESSAGE_LIMIT = 4096  # clients have nothing to say but pings


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
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=CLIENT_MESSAGE_LIMIT)
    subscription = hub.subscribe(str(application_id))
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
    async for message in ws:
        if message.type is WSMsgType.ERROR:
            return


async def _send_events(ws: web.WebSocketResponse, subscription: Subscription, application_id: uuid.UUID) -> None:
    seen: set[str] = set()
    if await _send_snapshot(ws, application_id, seen):
        return
    while not ws.closed:
        event_id, event_type, text = await subscription.next()
        if subscription.overflowed:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"client too slow; reconnect")
            return
        if event_type in ("resync", "complete"):
            # A quote event lost on its way (broker hiccup) must not be skipped by a
            # `complete` that overtook it: the database has every final event by now.
            if await _send_snapshot(ws, application_id, seen):
                return
            continue
        if event_id in seen:
            continue
        seen.add(event_id)
        await ws.send_str(text)


async def _send_snapshot(ws: web.WebSocketResponse, application_id: uuid.UUID, seen: set[str]) -> bool:
    """Send stored events not sent yet; True when the stream is complete (and closed)."""
    snapshot = await reload_snapshot(application_id)
    if snapshot is None:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"application not found")
        return True
    for event in snapshot.events():
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        await ws.send_str(_dump(event))
        if event["type"] == "complete":
            await ws.close(code=WSCloseCode.OK)
            return True
    return False


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
