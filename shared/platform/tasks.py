"""Work that runs beside a service's requests: periodic loops that outlive their own failures
(a database outage must not kill them), and work a request starts and does not wait for,
kept track of so that shutdown can let it end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

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


class BackgroundTasks:
    def __init__(self, what: str) -> None:
        self._what = what
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout_s: float) -> None:
        """Let running tasks finish for ``timeout_s``, then cancel the rest."""
        if not self._tasks:
            return
        _, still_running = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*still_running, return_exceptions=True)
        if still_running:
            log.warning(
                "background work cancelled at shutdown", extra={"what": self._what, "tasks": len(still_running)}
            )

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background work failed", extra={"what": self._what}, exc_info=task.exception())
