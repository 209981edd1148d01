"""`make run`'s cluster for real in a test: ``python -m local_cluster run`` on a port offset, a
database and a vhost of its own, with its supervisor's status, SIGKILLs of its programs by pid, the
sandbox's control API and a copy of every event on the offers fanout."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from local_cluster.__main__ import taken_ports
from local_cluster.background import start_runner
from local_cluster.layout import Layout
from shared.quoting.topology import OFFERS_EXCHANGE
from tests.support.infrastructure import RunInfrastructure

REPOSITORY = Path(__file__).resolve().parents[2]
STATUS_LINE = re.compile(r"^(\S+)\s+(\S+)\s+(?:pid (\d+),)?", re.M)


def free_offset(layout: Callable[[int], Layout] = lambda offset: Layout(1, 1, 1, offset)) -> int:
    while True:
        offset = random.randint(12000, 18000)  # every port within 20080-26330: outside the ephemeral range
        if not taken_ports(layout(offset).all_ports):
            return offset


def status(run_dir: Path) -> dict[str, tuple[str, int | None]]:
    """Each program's state and pid, as `make status` prints them."""
    result = subprocess.run(
        [sys.executable, "-m", "local_cluster", "--run-dir", str(run_dir), "status"],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        check=False,
    )
    return {m[1]: (m[2], int(m[3]) if m[3] else None) for m in STATUS_LINE.finditer(result.stdout)}


async def until(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return False


class EventTap:
    """Its own queue on the offers fanout: every event each publisher's copy brought, in order."""

    def __init__(self, amqp_url: str) -> None:
        self._amqp_url = amqp_url
        self.events: list[dict[str, Any]] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(OFFERS_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange)
        await queue.consume(self._take, no_ack=True)

    async def _take(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.events.append(json.loads(message.body))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


class SupervisedCluster:
    """One ``python -m local_cluster run`` of ``layout``'s counts; ``env`` goes to every service."""

    def __init__(self, infrastructure: RunInfrastructure, layout: Layout, **env: str) -> None:
        self.infrastructure = infrastructure
        self.layout = layout
        self.run_dir = Path(tempfile.mkdtemp(prefix="osago-cluster-"))  # short: the supervisor's unix socket
        self.output = self.run_dir / "run.out"
        self._env = infrastructure.env(
            OSAGO_CORE_INSTANCES=str(layout.cores),
            OSAGO_AGGREGATOR_INSTANCES=str(layout.aggregators),
            OSAGO_WORKER_INSTANCES=str(layout.workers),
            **env,
        )
        self._runner: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The core apps' balancer: where browsers and partners go."""
        return f"http://127.0.0.1:{self.layout.core_balancer_port}"

    @property
    def aggregator_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.aggregator_balancer_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.sandbox_port}"

    def programs(self) -> set[str]:
        names = {"sandbox", "balancer"}
        names |= {f"core:core{i + 1}" for i in range(self.layout.cores)}
        names |= {f"aggregator:aggregator{i + 1}" for i in range(self.layout.aggregators)}
        names |= {f"worker:worker{i + 1}" for i in range(self.layout.workers)}
        return names

    def status(self) -> dict[str, tuple[str, int | None]]:
        return status(self.run_dir)

    def log_tail(self, characters: int = 3000) -> str:
        return self.output.read_text(errors="replace")[-characters:]

    async def start(self, session: aiohttp.ClientSession, timeout: float = 60) -> None:
        self._runner = start_runner(self.run_dir, self.layout.port_offset, self._env, self.output)

        async def all_running() -> bool:
            states = await asyncio.to_thread(self.status)
            return set(states) == self.programs() and all(state == "RUNNING" for state, _ in states.values())

        assert await until(all_running, timeout), (self.status(), self.log_tail())
        for port in [*self.layout.core_ports, *self.layout.aggregator_ports, self.layout.core_balancer_port]:
            assert await until(functools.partial(self._ready, session, port), timeout), (port, self.log_tail())

    async def _ready(self, session: aiohttp.ClientSession, port: int) -> bool:
        try:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def kill(self, program: str, timeout: float = 30) -> tuple[int, int]:
        """SIGKILL ``program`` (e.g. "worker:worker1") and wait until the supervisor has it running
        again under another pid: (old pid, new pid)."""
        state, pid = self.status()[program]
        assert state == "RUNNING" and pid is not None, (program, state)
        os.kill(pid, signal.SIGKILL)
        new_pid: int | None = None

        async def back() -> bool:
            nonlocal new_pid
            state, new_pid = (await asyncio.to_thread(self.status))[program]
            return state == "RUNNING" and new_pid not in (None, pid)

        assert await until(back, timeout), (program, self.status(), self.log_tail())
        assert new_pid is not None
        return pid, new_pid

    async def stop(self) -> int | None:
        if self._runner is None:
            return None
        code: int | None = None
        if self._runner.poll() is None:
            self._runner.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                code = await asyncio.to_thread(self._runner.wait, 40)
            except subprocess.TimeoutExpired:
                self._runner.kill()
                self._runner.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return code

    # --- the sandbox's control API ---------------------------------------------------------

    async def behave(self, session: aiohttp.ClientSession, code: str, **behaviour: Any) -> None:
        async with session.put(f"{self.sandbox_url}/sandbox/insurers/{code}/behaviour", json=behaviour) as r:
            assert r.status == 200, await r.text()

    async def insurer_codes(self, session: aiohttp.ClientSession) -> list[str]:
        async with session.get(f"{self.sandbox_url}/sandbox/insurers") as response:
            return [insurer["code"] for insurer in await response.json()]

    async def behave_all(self, session: aiohttp.ClientSession, **behaviour: Any) -> None:
        codes = await self.insurer_codes(session)
        await asyncio.gather(*(self.behave(session, code, **behaviour) for code in codes))

    async def sandbox_stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(f"{self.sandbox_url}/sandbox/stats") as response:
            stats: dict[str, Any] = await response.json()
            return stats
