"""Waiting out an outage in place: retry an operation with backoff until a moment in time.

A worker holding an insurer's answer must not drop it because the database is away for
20 s: it keeps the answer and the message, and tries the write again until the quote's
deadline (plus the sweeper's grace) has passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

BASE_DELAY_S = 0.2
MAX_DELAY_S = 2.0
LOG_EVERY_TRIES = 10


async def retry_until(
    operation: Callable[[], Awaitable[T]],
    *,
    until_epoch: float,
    retry_on: tuple[type[Exception], ...],
    what: str,
    base_delay_s: float = BASE_DELAY_S,
    max_delay_s: float = MAX_DELAY_S,
) -> T:
    """``operation``'s result; a ``retry_on`` error is retried (exponential backoff, full jitter)
    while time is left before ``until_epoch``, then raised. Any other error is raised at once."""

    def note(details: Any) -> None:
        if details["tries"] % LOG_EVERY_TRIES != 1:
            return  # one line when the wait begins and one every LOG_EVERY_TRIES tries after
        log.warning(
            "waiting out an outage",
            extra={"what": what, "tries": details["tries"], "error": type(details["exception"]).__name__},
        )

    async def attempt() -> T:
        # backoff picks its async retry loop only for a coroutine function, not for a
        # lambda that returns a coroutine.
        return await operation()

    retrying = backoff.on_exception(
        backoff.expo,
        retry_on,
        max_time=lambda: max(0.0, until_epoch - time.time()),
        jitter=backoff.full_jitter,
        factor=base_delay_s,
        max_value=max_delay_s,
        on_backoff=note,
        logger=None,
    )(attempt)
    result: T = await retrying()
    return result
