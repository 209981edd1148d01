"""Background loops that outlive their own failures (a database outage must not kill them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


async def run_periodically(name: str, interval_s: float, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("periodic task failed; retrying", extra={"task": name, "error": type(exc).__name__})
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def background(name: str, interval_s: float, step: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    task = asyncio.create_task(run_periodically(name, interval_s, step), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
