"""Reads that may lag go to the streaming replica (``OSAGO_DATABASE_REPLICA_URL``), with a way back.

Only reads whose answer stays right when it is a little old come here: a partner's list of
applications, and GET of one application once it is complete (a complete application never
changes again, so a replica that has it has all of it). Writes, invariants (the idempotency
lookup, the ``pending_quotes`` counter) and the snapshot that opens an offers socket always read
the primary: a socket subscribes to live events, then reads the snapshot, and relies on that
snapshot holding every event committed before the subscription. A replica a few milliseconds
behind would not have an event committed (and broadcast) just before the subscription began: it
would be in neither the snapshot nor the live stream, and the socket would miss it for good.

When the replica is down or slow, a read gives up on it after ``attempt_s`` and asks the
primary, and for ``cooldown_s`` after that every read goes straight to the primary (so an outage
costs one slow read per cool-down, not one per request); then the replica is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

log = logging.getLogger(__name__)

PRIMARY = "default"
REPLICA = "replica"
# A replica read this slow is abandoned for the primary; lag-tolerant reads take milliseconds.
ATTEMPT_S = 0.5
# After a failed replica read, the primary serves every read this long before the replica is tried again.
COOLDOWN_S = 5.0

T = TypeVar("T")
Query = Callable[[BaseDBAsyncClient], Awaitable[T]]


class ReplicaReads:
    """``unavailable``: what a replica that is down, restarting, cut off or too slow raises (a
    query that is wrong would fail on the primary just as well, so it is not caught)."""

    def __init__(
        self,
        unavailable: tuple[type[Exception], ...],
        *,
        attempt_s: float = ATTEMPT_S,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        connection: Callable[[str], BaseDBAsyncClient] = Tortoise.get_connection,
    ) -> None:
        self.enabled = False
        self._unavailable: tuple[type[Exception], ...] = (*unavailable, TimeoutError)
        self._attempt_s = attempt_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._connection = connection
        self._resting_until: float | None = None  # set while the replica is being left alone

    def use_replica(self) -> bool:
        if not self.enabled:
            return False
        if self._resting_until is not None and self._clock() < self._resting_until:
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        if self._resting_until is None:
            log.warning("replica unavailable, reading the primary", extra={"error": type(exc).__name__})
        self._resting_until = self._clock() + self._cooldown_s

    def _succeeded(self) -> None:
        if self._resting_until is not None:
            log.info("replica back, lag-tolerant reads use it again")
            self._resting_until = None

    async def read(self, query: Query[T], *, fresh_enough: Callable[[T], bool] = lambda _: True) -> T:
        """``query`` on the replica when it is usable and its answer ``fresh_enough``, else on the primary."""
        if self.use_replica():
            try:
                async with asyncio.timeout(self._attempt_s):
                    answer = await query(self._connection(REPLICA))
            except self._unavailable as exc:
                self._failed(exc)
            else:
                self._succeeded()
                if fresh_enough(answer):
                    return answer
        return await query(self._connection(PRIMARY))
