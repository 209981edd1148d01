"""Shared snapshot reads: at most one in flight per application, one more for who asked meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from shared.live.snapshot_reads import SnapshotReads


class GatedRead:
    """A read that returns its sequence number once the test lets it."""

    def __init__(self) -> None:
        self.started: list[uuid.UUID] = []
        self.gates: list[asyncio.Event] = []
        self.fail_next = False

    async def __call__(self, application_id: uuid.UUID) -> Any:
        self.started.append(application_id)
        gate = asyncio.Event()
        self.gates.append(gate)
        number = len(self.started)
        await gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database down")
        return f"read {number}"

    async def let_through(self, number: int) -> None:
        while len(self.gates) < number:
            await asyncio.sleep(0)
        self.gates[number - 1].set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_everybody_who_asks_while_a_read_runs_shares_the_next_one() -> None:
    read = GatedRead()
    reads = SnapshotReads(read)
    application_id = uuid.uuid4()
    first = asyncio.create_task(reads.load(application_id))
    await settle()
    later = [asyncio.create_task(reads.load(application_id)) for _ in range(100)]
    await settle()
    assert len(read.started) == 1  # the others wait, none reads on its own

    await read.let_through(1)
    assert await first == "read 1"
    await settle()
    # The running read began before they asked: they get the one started after it.
    assert len(read.started) == 2 and not any(task.done() for task in later)
    await read.let_through(2)
    assert await asyncio.gather(*later) == ["read 2"] * 100
    assert reads.in_flight() == 0  # nothing kept once handed out

    again = asyncio.create_task(reads.load(application_id))
    await read.let_through(3)
    assert await again == "read 3"


async def test_applications_do_not_share_reads() -> None:
    read = GatedRead()
    reads = SnapshotReads(read)
    one, other = uuid.uuid4(), uuid.uuid4()
    tasks = [asyncio.create_task(reads.load(one)), asyncio.create_task(reads.load(other))]
    await settle()
    assert read.started == [one, other]
    await read.let_through(1)
    await read.let_through(2)
    assert sorted(await asyncio.gather(*tasks)) == ["read 1", "read 2"]


async def test_a_waiter_that_leaves_does_not_cancel_the_read_of_the_others() -> None:
    read = GatedRead()
    reads = SnapshotReads(read)
    application_id = uuid.uuid4()
    leaving = asyncio.create_task(reads.load(application_id))
    await settle()
    staying = asyncio.create_task(reads.load(application_id))
    await settle()
    leaving.cancel()
    await read.let_through(1)
    await read.let_through(2)
    assert await staying == "read 2"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert reads.in_flight() == 0


async def test_a_failed_read_fails_its_waiters_and_the_next_ones_read_again() -> None:
    read = GatedRead()
    reads = SnapshotReads(read)
    application_id = uuid.uuid4()
    read.fail_next = True
    failing = asyncio.create_task(reads.load(application_id))
    await settle()
    queued = asyncio.create_task(reads.load(application_id))
    await read.let_through(1)
    with pytest.raises(ConnectionError):
        await failing
    await read.let_through(2)
    assert await queued == "read 2"
