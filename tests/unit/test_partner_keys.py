"""core_app.partner_keys on its own: a lookup function that counts, and a clock the test moves.

(The database side, a real flood and a real deactivation are in
tests/integration/test_api_key_cache.py.)
"""

from __future__ import annotations

import asyncio
from collections import Counter

from core_app.partner_keys import KnownPartner, PartnerKeys, address_scope

TTL_S = 30.0
PER_MINUTE = 10.0
VALID = {"good": KnownPartner("p-good", 5.0), "other": KnownPartner("p-other", 7.0)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Table:
    """Stands in for the partner table: which hashes are valid, and how often it was asked."""

    def __init__(self) -> None:
        self.rows = dict(VALID)
        self.asked: Counter[str] = Counter()
        self.delay = 0.0

    async def lookup(self, key_hash: str) -> KnownPartner | None:
        self.asked[key_hash] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.rows.get(key_hash)


def keys(table: Table, clock: Clock, **options: int) -> PartnerKeys:
    return PartnerKeys(TTL_S, PER_MINUTE, lookup=table.lookup, clock=clock, **options)


async def test_found_and_unknown_keys_are_each_asked_once_per_ttl() -> None:
    table, clock = Table(), Clock()
    cache = keys(table, clock)
    for _ in range(5):
        assert await cache.partner("good", "10.0.0.1") == VALID["good"]
        assert await cache.partner("bad", "10.0.0.1") is None
    assert table.asked == {"good": 1, "bad": 1}
    clock.now += TTL_S + 0.1
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    assert await cache.partner("bad", "10.0.0.1") is None
    assert table.asked == {"good": 2, "bad": 2}


async def test_a_deactivated_or_changed_key_takes_effect_within_the_ttl() -> None:
    table, clock = Table(), Clock()
    cache = keys(table, clock)
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    del table.rows["good"]  # deactivated
    table.rows["other"] = KnownPartner("p-other", 50.0)  # its quota changed
    assert await cache.partner("other", "10.0.0.1") == KnownPartner("p-other", 50.0)  # first lookup
    clock.now += TTL_S - 1
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]  # still trusted: inside the TTL
    clock.now += 1.1
    assert await cache.partner("good", "10.0.0.1") is None
    # ...and a key tried before its partner existed works once the TTL has passed.
    assert await cache.partner("new", "10.0.0.1") is None
    table.rows["new"] = KnownPartner("p-new", 1.0)
    clock.now += TTL_S + 0.1
    assert await cache.partner("new", "10.0.0.1") == KnownPartner("p-new", 1.0)


async def test_an_address_that_keeps_failing_is_refused_without_a_query_then_recovers() -> None:
    table, clock = Table(), Clock()
    cache = keys(table, clock)
    for n in range(50):
        assert await cache.partner(f"guess-{n}", "10.0.0.1") is None
    assert sum(table.asked.values()) == PER_MINUTE  # the burst, then nothing
    # Another address has its own budget.
    assert await cache.partner("guess-x", "10.0.0.2") is None
    assert table.asked["guess-x"] == 1
    # One more lookup for every 60 / PER_MINUTE seconds that pass.
    clock.now += 60 / PER_MINUTE
    assert await cache.partner("guess-y", "10.0.0.1") is None
    assert await cache.partner("guess-z", "10.0.0.1") is None
    assert table.asked["guess-y"] == 1 and table.asked["guess-z"] == 0


async def test_keys_found_valid_keep_working_from_an_address_over_its_budget() -> None:
    table, clock = Table(), Clock()
    cache = keys(table, clock)
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    clock.now += TTL_S + 0.1  # the entry is stale now
    for n in range(50):
        await cache.partner(f"guess-{n}", "10.0.0.1")
    # Asked again, outside the spent budget.
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    assert table.asked["good"] == 2
    # A valid key never seen here waits for the budget like a guess (it looks like one).
    assert await cache.partner("other", "10.0.0.1") is None
    assert table.asked["other"] == 0


async def test_a_key_found_gives_its_token_back() -> None:
    table, clock = Table(), Clock()
    cache = keys(table, clock)
    for _ in range(3):
        clock.now += TTL_S + 0.1
        assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    for n in range(int(PER_MINUTE)):
        await cache.partner(f"guess-{n}", "10.0.0.1")
    assert sum(table.asked[f"guess-{n}"] for n in range(int(PER_MINUTE))) == PER_MINUTE


async def test_concurrent_lookups_of_one_key_share_one_query() -> None:
    table, clock = Table(), Clock()
    table.delay = 0.05
    cache = keys(table, clock)
    found = await asyncio.gather(*(cache.partner("good", "10.0.0.1") for _ in range(20)))
    unknown = await asyncio.gather(*(cache.partner("bad", "10.0.0.1") for _ in range(20)))
    assert found == [VALID["good"]] * 20 and unknown == [None] * 20
    assert table.asked == {"good": 1, "bad": 1}


async def test_lookups_in_flight_are_bounded() -> None:
    table, clock = Table(), Clock()
    table.delay = 0.02
    running = peak = 0

    async def lookup(key_hash: str) -> KnownPartner | None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await table.lookup(key_hash)
        finally:
            running -= 1

    cache = PartnerKeys(TTL_S, PER_MINUTE, lookup=lookup, clock=clock, max_concurrent_lookups=3)
    await asyncio.gather(*(cache.partner(f"guess-{n}", f"10.0.1.{n}") for n in range(30)))
    assert sum(table.asked.values()) == 30 and peak == 3


async def test_random_keys_never_push_a_valid_key_out() -> None:
    table, clock = Table(), Clock()
    cache = keys(table, clock, max_known=10, max_unknown=10)
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    for n in range(100):
        await cache.partner(f"guess-{n}", f"10.0.2.{n}")
    assert await cache.partner("good", "10.0.0.1") == VALID["good"]
    assert table.asked["good"] == 1
    assert len(cache._unknown) == 10  # bounded


async def test_a_database_error_is_not_cached() -> None:
    clock = Clock()
    calls = 0

    async def failing(key_hash: str) -> KnownPartner | None:
        nonlocal calls
        calls += 1
        raise ConnectionError("database away")

    cache = PartnerKeys(TTL_S, PER_MINUTE, lookup=failing, clock=clock)
    for _ in range(2):
        try:
            await cache.partner("good", "10.0.0.1")
        except ConnectionError:
            pass
        else:
            raise AssertionError("the error must reach the caller (503)")
    assert calls == 2


def test_address_scope_is_the_ipv4_address_or_the_ipv6_slash_64() -> None:
    assert address_scope("203.0.113.7") == "203.0.113.7"
    assert address_scope("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_scope("2001:db8:1:2:aaaa::1") == address_scope("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_scope("2001:db8:1:3::1") != address_scope("2001:db8:1:2::1")
    assert address_scope(None) == "unknown"
