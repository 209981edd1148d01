"""API key → partner, without a database query per request, and without one per guess.

Two defences, so that a flood of invalid keys cannot take the pool from everybody else:

- **A short cache of lookups** (``OSAGO_API_KEY_CACHE_S``, 30 s): a key hash found (its
  partner's id and quota) or not found is trusted for that long, so a revoked, deactivated
  or changed key, or a new partner's key, takes effect within it. Found and not-found
  entries are kept apart and bounded each, so random keys can never push a partner out;
  concurrent lookups of one hash share one query.
- **A budget of failed lookups per client address** (``OSAGO_AUTH_FAILURES_PER_MINUTE``,
  10): an address may have that many unknown keys looked up at once, then one more each
  ``60 / N`` seconds; past it, an unknown key is answered 401 at once (the same body as any
  wrong key) without a query. Keys that were valid here recently bypass the budget, so a
  partner sharing an address (NAT) with a guesser keeps working; a key that was never valid
  here can only be told apart from a guess by a query, so it waits for the budget like one.
  IPv6 addresses count per /64, what one host usually holds.

On top, at most ``max_concurrent_lookups`` queries run at once (a slice of the pool): a
flood spread over many addresses waits its turn instead of taking every connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.models import Partner
from shared.platform.metrics import AUTH_THROTTLED, PARTNER_KEY_LOOKUPS

# Bounds on what one process remembers (an entry is a 64-character hash and a few numbers).
MAX_KNOWN_KEYS = 10_000
MAX_UNKNOWN_KEYS = 10_000
MAX_TRACKED_ADDRESSES = 50_000
# A key found valid stays "recently valid" this long: once its cache entry is stale it is
# looked up again (a query), but outside the failure budget of the address it comes from.
RECENTLY_VALID_S = 600.0


@dataclass(frozen=True, slots=True)
class KnownPartner:
    partner_id: str
    requests_per_second: float


Lookup = Callable[[str], Awaitable[KnownPartner | None]]


async def partner_by_key_hash(key_hash: str) -> KnownPartner | None:
    """The one query: an active partner with this key hash (the unique index on api_key_hash)."""
    row = await Partner.filter(api_key_hash=key_hash, active=True).first().values("id", "requests_per_second")
    PARTNER_KEY_LOOKUPS.labels("found" if row else "unknown").inc()
    if row is None:
        return None
    return KnownPartner(str(row["id"]), float(row["requests_per_second"]))


def address_scope(remote: str | None) -> str:
    """Whose failure budget (and, for browsers, quota) a request spends: its IPv4 address, or its
    IPv6 /64. The one place that says what one client's address is; see core_app.gate."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Known:
    partner: KnownPartner
    fresh_until: float
    remembered_until: float


@dataclass(slots=True)
class _Budget:
    tokens: float
    updated: float


class PartnerKeys:
    def __init__(
        self,
        ttl_s: float,
        failures_per_minute: float,
        *,
        max_concurrent_lookups: int = 5,
        lookup: Lookup = partner_by_key_hash,
        clock: Callable[[], float] = time.monotonic,
        max_known: int = MAX_KNOWN_KEYS,
        max_unknown: int = MAX_UNKNOWN_KEYS,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self._ttl_s = ttl_s
        self._burst = max(1.0, failures_per_minute)
        self._refill_per_s = failures_per_minute / 60.0
        self._lookup = lookup
        self._clock = clock
        self._max_known, self._max_unknown, self._max_addresses = max_known, max_unknown, max_addresses
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # hash → trusted until
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[KnownPartner | None]] = {}
        self._slots = asyncio.Semaphore(max(1, max_concurrent_lookups))

    async def partner(self, key_hash: str, address: str) -> KnownPartner | None:
        """The active partner with this key hash, or None (answer 401)."""
        now = self._clock()
        known = self._known.get(key_hash)
        if known is not None:
            if now < known.fresh_until:
                self._known.move_to_end(key_hash)
                return known.partner
            if now >= known.remembered_until:
                del self._known[key_hash]
                known = None
        unknown_until = self._unknown.get(key_hash)
        if unknown_until is not None:
            if now < unknown_until:
                return None  # a repeat of a key just found unknown: costs nothing, spends nothing
            del self._unknown[key_hash]
        inflight = self._inflight.get(key_hash)
        if inflight is not None:
            return await asyncio.shield(inflight)  # someone is asking already: one query for both
        charged = known is None and self._spend(address, now)
        if known is None and not charged:
            AUTH_THROTTLED.inc()
            return None
        found = await self._shared_lookup(key_hash)
        if charged and found is not None:
            self._refund(address)  # a key found gives its token back: only failures spend
        return found

    def _spend(self, address: str, now: float) -> bool:
        budget = self._budgets.get(address)
        if budget is None:
            budget = self._budgets[address] = _Budget(self._burst, now)
            if len(self._budgets) > self._max_addresses:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(address)
            budget.tokens = min(self._burst, budget.tokens + (now - budget.updated) * self._refill_per_s)
            budget.updated = now
        if budget.tokens < 1.0:
            return False
        budget.tokens -= 1.0
        return True

    def _refund(self, address: str) -> None:
        budget = self._budgets.get(address)
        if budget is not None:
            budget.tokens = min(self._burst, budget.tokens + 1.0)

    async def _shared_lookup(self, key_hash: str) -> KnownPartner | None:
        task = asyncio.ensure_future(self._query(key_hash))
        self._inflight[key_hash] = task

        def forget(done: asyncio.Task[KnownPartner | None]) -> None:
            if self._inflight.get(key_hash) is done:
                del self._inflight[key_hash]
            if not done.cancelled():
                done.exception()  # retrieved here too, in case every caller went away

        task.add_done_callback(forget)
        # Shielded: a caller that goes away does not cancel the answer others wait for.
        return await asyncio.shield(task)

    async def _query(self, key_hash: str) -> KnownPartner | None:
        async with self._slots:
            found = await self._lookup(key_hash)
        now = self._clock()
        if found is None:
            self._known.pop(key_hash, None)
            self._unknown[key_hash] = now + self._ttl_s
            self._unknown.move_to_end(key_hash)
            if len(self._unknown) > self._max_unknown:
                self._unknown.popitem(last=False)
        else:
            self._unknown.pop(key_hash, None)
            self._known[key_hash] = _Known(found, now + self._ttl_s, now + max(self._ttl_s, RECENTLY_VALID_S))
            self._known.move_to_end(key_hash)
            if len(self._known) > self._max_known:
                self._known.popitem(last=False)
        return found
