"""Per-partner and per-address request quotas (aiolimiter leaky buckets, in this process).

A request over quota is refused at once with 429 and ``Retry-After`` rather than
queued. Buckets live in one process, so with k core app instances behind a balancer
a client's effective quota is up to k times the configured rate.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from aiolimiter import AsyncLimiter

# Browser buckets are keyed by client address (IPv6: per /64, core_app.gate); bound how many we remember.
MAX_TRACKED_CLIENTS = 50_000


class QuotaBook:
    def __init__(self) -> None:
        self._limiters: OrderedDict[str, AsyncLimiter] = OrderedDict()

    async def try_acquire(self, key: str, requests_per_second: float) -> float | None:
        """None when the request may go ahead, else the seconds to wait before retrying."""
        limiter = self._limiters.get(key)
        capacity = _capacity(requests_per_second)
        period = capacity / requests_per_second
        # A changed quota (an operator edited the partner) takes effect with a fresh bucket.
        if limiter is None or limiter.max_rate != capacity or limiter.time_period != period:
            limiter = AsyncLimiter(capacity, period)
            self._limiters[key] = limiter
            if len(self._limiters) > MAX_TRACKED_CLIENTS:
                self._limiters.popitem(last=False)
        else:
            self._limiters.move_to_end(key)
        if not limiter.has_capacity():
            return 1.0 / requests_per_second
        await limiter.acquire()  # capacity was checked: this returns without waiting
        return None


def _capacity(requests_per_second: float) -> float:
    # A bucket of one second's worth of requests (at least one): bursts up to the rate.
    return max(1.0, float(requests_per_second))


def retry_after_header(wait_s: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}
