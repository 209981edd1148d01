"""The read-routing policy of ``shared.platform.replica``: which server a lag-tolerant read asks,
and how it falls back to the primary when the replica is down, hangs or lags (no database here:
the two "connections" record who was asked; the real replica is in tests/faults/test_ha_cluster.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from shared.platform.db import DATABASE_UNREACHABLE
from shared.platform.replica import PRIMARY, REPLICA, ReplicaReads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Servers:
    """Stand-ins for the two Tortoise connections; ``replica_fails`` makes the replica's query raise
    it, ``replica_hangs`` makes it never answer."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.replica_fails: Exception | None = None
        self.replica_hangs = False
        self.answers = {PRIMARY: "primary's answer", REPLICA: "replica's answer"}

    def connection(self, alias: str) -> BaseDBAsyncClient:
        return cast(BaseDBAsyncClient, alias)

    async def query(self, connection: BaseDBAsyncClient) -> str:
        alias = cast(str, connection)
        self.asked.append(alias)
        if alias == REPLICA:
            if self.replica_fails is not None:
                raise self.replica_fails
            if self.replica_hangs:
                await asyncio.sleep(3600)
        return self.answers[alias]


def make(servers: Servers, clock: Clock, **kwargs: Any) -> ReplicaReads:
    reads = ReplicaReads(DATABASE_UNREACHABLE, clock=clock, connection=servers.connection, **kwargs)
    reads.enabled = True
    return reads


async def test_a_configured_replica_answers_lag_tolerant_reads() -> None:
    servers, clock = Servers(), Clock()
    assert await make(servers, clock).read(servers.query) == "replica's answer"
    assert servers.asked == [REPLICA]


async def test_without_a_replica_everything_reads_the_primary() -> None:
    servers, clock = Servers(), Clock()
    reads = make(servers, clock)
    reads.enabled = False
    assert await reads.read(servers.query) == "primary's answer"
    assert servers.asked == [PRIMARY]


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "refused"), OSError("unreachable"), TimeoutError()])
async def test_a_replica_down_falls_back_then_rests_for_the_cooldown(error: Exception) -> None:
    servers, clock = Servers(), Clock()
    reads = make(servers, clock, cooldown_s=5.0)
    servers.replica_fails = error
    assert await reads.read(servers.query) == "primary's answer"
    assert servers.asked == [REPLICA, PRIMARY]
    # Within the cool-down the replica is not asked at all: no request pays for it again.
    clock.now += 4.9
    assert await reads.read(servers.query) == "primary's answer"
    assert servers.asked == [REPLICA, PRIMARY, PRIMARY]
    # Past it, the replica is tried again, and once it answers it is used as before.
    servers.replica_fails = None
    clock.now += 0.2
    assert await reads.read(servers.query) == "replica's answer"
    assert await reads.read(servers.query) == "replica's answer"
    assert servers.asked == [REPLICA, PRIMARY, PRIMARY, REPLICA, REPLICA]


async def test_a_hanging_replica_is_abandoned_after_the_attempt_time() -> None:
    servers, clock = Servers(), Clock()
    reads = make(servers, clock, attempt_s=0.05)
    servers.replica_hangs = True
    answer = await asyncio.wait_for(reads.read(servers.query), timeout=5)
    assert answer == "primary's answer"
    assert servers.asked == [REPLICA, PRIMARY]
    assert not reads.use_replica()


async def test_an_answer_not_fresh_enough_is_read_again_from_the_primary() -> None:
    servers, clock = Servers(), Clock()
    reads = make(servers, clock)
    answer = await reads.read(servers.query, fresh_enough=lambda text: text.startswith("primary"))
    assert answer == "primary's answer"
    assert servers.asked == [REPLICA, PRIMARY]
    # A stale answer is no failure: the replica stays in use.
    assert reads.use_replica()


async def test_a_wrong_query_is_not_mistaken_for_a_replica_outage() -> None:
    servers, clock = Servers(), Clock()
    reads = make(servers, clock)
    servers.replica_fails = ValueError("a bug, not an outage")
    with pytest.raises(ValueError):
        await reads.read(servers.query)
    assert servers.asked == [REPLICA]
