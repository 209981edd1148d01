"""How a misbehaving insurer misbehaves on the wire: late, silent, or cutting the line."""

from __future__ import annotations

import asyncio
import socket
import struct

from aiohttp import web

from .state import Sandbox

# How often a hanging handler checks that its client is still there. aiohttp does not cancel
# handlers on disconnect by default, so without this a hang would hold memory until shutdown.
_HANG_POLL_S = 0.5
# Even a hang ends some time: long past any deadline, short enough to bound leaked sockets.
_HANG_MAX_S = 600.0


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(sandbox: Sandbox, delay_s: float) -> bool:
    """Sleep ``delay_s`` unless the sandbox shuts down first; True if it is shutting down.

    Latency must not hold up shutdown, so the sleep is a wait on the closing event.
    """
    if sandbox.closing.is_set():
        return True
    if delay_s <= 0:
        return False
    try:
        await asyncio.wait_for(sandbox.closing.wait(), delay_s)
    except TimeoutError:
        return False
    return True


async def hang(sandbox: Sandbox, request: web.BaseRequest) -> web.StreamResponse:
    """Never answer: hold the connection until the client leaves (or shutdown), then drop it."""
    sandbox.hanging += 1
    try:
        waited = 0.0
        while waited < _HANG_MAX_S and not client_gone(request):
            if await pause(sandbox, _HANG_POLL_S):
                break
            waited += _HANG_POLL_S
    finally:
        sandbox.hanging -= 1
    return reset(request)


def reset(request: web.BaseRequest) -> web.StreamResponse:
    """Drop the TCP connection with an RST (SO_LINGER 0), as a crashing peer or proxy would.

    The returned response is never written: aiohttp sees the closed transport and moves on.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # already closed: nothing left to reset
        transport.abort()
    return web.Response(status=500)
