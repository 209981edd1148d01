"""Snapshot reads shared by every socket of one application that asks at the same moment.

Thousands of sockets of one application resync together (a broker reconnect, their
deadline timers): one query each would queue them all behind a pool of ten. Here an
application has at most one read in flight; a socket that asks meanwhile joins the
read that starts right after it, never the one already running, which began before it
asked and may miss an event committed just before (a socket opening in between would
then have it in neither its snapshot nor its live events). So any number of sockets
asking at once cost at most two reads. Nothing is kept once a read has been handed out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from shared.live.application_view import ApplicationSnapshot, reload_snapshot

Snapshot = ApplicationSnapshot | None
Read = Callable[[uuid.UUID], Awaitable[Snapshot]]


class _Flight:
    __slots__ = ("loop", "running", "queued")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.running: asyncio.Future[Snapshot] = loop.create_future()
        # Everybody who asked after `running` started: served by the next read, together.
        self.queued: asyncio.Future[Snapshot] | None = None


class SnapshotReads:
    def __init__(self, read: Read = reload_snapshot) -> None:
        self._read = read
        self._flights: dict[uuid.UUID, _Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def in_flight(self) -> int:
        """Applications with a read running now (for tests and debugging)."""
        return len(self._flights)

    async def load(self, application_id: uuid.UUID) -> Snapshot:
        """The application's snapshot, read from the database after this call began."""
        loop = asyncio.get_running_loop()
        flight = self._flights.get(application_id)
        if flight is None or flight.loop is not loop:  # another loop's leftover (tests): not ours to join
            flight = self._flights[application_id] = _Flight(loop)
            future = flight.running
            self._launch(application_id, flight, future)
        else:
            if flight.queued is None:
                flight.queued = loop.create_future()
            future = flight.queued
        # Shielded: a socket that goes away does not cancel the read the others wait for.
        return await asyncio.shield(future)

    def _launch(self, application_id: uuid.UUID, flight: _Flight, future: asyncio.Future[Snapshot]) -> None:
        task = flight.loop.create_task(self._fly(application_id, flight, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fly(self, application_id: uuid.UUID, flight: _Flight, future: asyncio.Future[Snapshot]) -> None:
        try:
            result = await self._read(application_id)
        except asyncio.CancelledError:
            future.cancel()
            if flight.queued is not None:
                flight.queued.cancel()
            self._forget(application_id, flight)
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters that left must not make it "never retrieved"
        else:
            future.set_result(result)
        queued, flight.queued = flight.queued, None
        if queued is None:
            self._forget(application_id, flight)
        else:
            flight.running = queued
            self._launch(application_id, flight, queued)

    def _forget(self, application_id: uuid.UUID, flight: _Flight) -> None:
        if self._flights.get(application_id) is flight:
            del self._flights[application_id]


# One per process: every socket of an application on this instance shares its reads.
SNAPSHOTS = SnapshotReads()
