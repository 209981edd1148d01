"""Helpers every protocol shares: reading a bounded body, running one rolled action."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from ..behaviour import Action
from ..faults import hang, pause, reset
from ..state import Sandbox

MAX_REQUEST_BYTES = 64 * 1024


def utc_z(moment: datetime) -> str:
    """ISO-8601 UTC with "Z" (API.md's timestamp form)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def read_body(request: web.Request) -> bytes:
    # client_max_size on the app already caps the body; this only reads it.
    return await request.read()


async def misbehave(
    sandbox: Sandbox, request: web.Request, action: Action, company_code: str
) -> web.StreamResponse | None:
    """Wait out the latency, then perform a connection-level fault; None means "answer now"."""
    if action.kind == "hang":
        return await hang(sandbox, request)
    with sandbox.calls_at_once.counting(company_code):
        await pause(sandbox, action.delay_s)
    if action.kind == "reset":
        return reset(request)
    return None
