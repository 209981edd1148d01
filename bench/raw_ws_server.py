"""A bare aiohttp WebSocket server: the baseline for one process holding and feeding sockets.

GET  /ws            hold the socket (heartbeat as the core app's) until the client closes
POST /push?count=N  send N text messages round-robin over the held sockets, as fast as possible
GET  /count         how many sockets are held
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from aiohttp import web

SOCKETS: list[web.WebSocketResponse] = []


async def hold(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    SOCKETS.append(ws)
    try:
        async for _ in ws:
            pass
    finally:
        SOCKETS.remove(ws)
    return ws


async def push(request: web.Request) -> web.Response:
    count = int(request.query["count"])
    padding = "x" * int(request.query.get("pad", "300"))
    sockets = list(SOCKETS)
    started = time.perf_counter()
    for n in range(count):
        ws = sockets[n % len(sockets)]
        text = json.dumps({"type": "bench", "event_id": str(uuid.uuid4()), "sent": time.time(), "pad": padding})
        await ws.send_str(text)
    return web.json_response({"sent": count, "seconds": time.perf_counter() - started})


async def count(_: web.Request) -> web.Response:
    return web.json_response({"sockets": len(SOCKETS), "pid": os.getpid()})


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", hold)
    app.router.add_post("/push", push)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
