"""The whole system as real subprocesses: the default layout of `make run`, on private ports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import ServiceProcess, free_port, service_env

WORKER_READY = b"worker consuming"
SERVICE_TOKEN = "e2e-service-token"
TOKEN_SECRET = "e2e-token-secret"


@dataclass
class RunningSystem:
    sandbox: ServiceProcess
    aggregator: ServiceProcess
    workers: list[ServiceProcess]
    cores: list[ServiceProcess]
    deadline_s: float
    session: aiohttp.ClientSession = field(repr=False)

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.sandbox, self.aggregator, *self.workers, *self.cores]

    async def insurers(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.sandbox.url}/sandbox/insurers") as response:
            assert response.status == 200
            return await response.json()

    async def set_behaviour(self, code: str, behaviour: dict[str, Any]) -> None:
        async with self.session.put(f"{self.sandbox.url}/sandbox/insurers/{code}/behaviour", json=behaviour) as r:
            assert r.status == 200, await r.text()

    async def set_all_behaviours(self, behaviour: dict[str, Any]) -> None:
        await asyncio.gather(*(self.set_behaviour(i["code"], behaviour) for i in await self.insurers()))

    async def reset_behaviours(self) -> None:
        for insurer in await self.insurers():
            async with self.session.delete(f"{self.sandbox.url}/sandbox/insurers/{insurer['code']}/behaviour") as r:
                assert r.status == 204

    async def create(self, core: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            f"{self.cores[core].url}/api/v1/applications", json=body, headers=headers or {}
        ) as response:
            return response.status, await response.json()

    async def read(self, core: int, created: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.session.get(
            f"{self.cores[core].url}{created['links']['self']}",
            headers={"Authorization": f"Bearer {created['access_token']}"},
        ) as response:
            return response.status, await response.json()

    async def collect_events(
        self, core: int, created: dict[str, Any], timeout: float
    ) -> tuple[list[dict[str, Any]], int | None]:
        return await collect_offer_events(self.session, self.cores[core].url, created, timeout)


async def collect_offer_events(
    session: aiohttp.ClientSession, core_url: str, created: dict[str, Any], timeout: float
) -> tuple[list[dict[str, Any]], int | None]:
    """Every event one offers socket receives until the server closes it, and the close code."""
    url = f"{core_url}{created['links']['offers']}?token={created['access_token']}"
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), session.ws_connect(url) as ws:
        async for message in ws:
            assert message.type is aiohttp.WSMsgType.TEXT
            events.append(json.loads(message.data))
        return events, ws.close_code


async def start_system(
    infrastructure: RunInfrastructure,
    session: aiohttp.ClientSession,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    name_prefix: str = "",
) -> RunningSystem:
    """``env``: extra variables for every process (``OSAGO_LOG_LEVEL``...); ``name_prefix``: before each
    process's name, so its log file (``<prefix><name>.log``) holds only this system's lines."""
    sandbox_port = free_port()
    aggregator_port = free_port()
    base = service_env(
        infrastructure.env(),
        OSAGO_SERVICE_TOKEN=SERVICE_TOKEN,
        OSAGO_TOKEN_SECRET=TOKEN_SECRET,
        OSAGO_SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}",
        OSAGO_AGGREGATOR_URL=f"http://127.0.0.1:{aggregator_port}",
        OSAGO_RELAY_INTERVAL_S="0.5",
        OSAGO_SWEEPER_GRACE_S="1",
        OSAGO_BROWSER_RPS="1000",
        **(env or {}),
    )
    core_ports = [free_port(), free_port()]
    base["OSAGO_ALLOWED_ORIGINS"] = ",".join(f"http://127.0.0.1:{p}" for p in core_ports)
    system = RunningSystem(
        sandbox=ServiceProcess(f"{name_prefix}sandbox", "quote_workers.sandbox", base, sandbox_port),
        aggregator=ServiceProcess(f"{name_prefix}aggregator", "aggregator_api", base, aggregator_port),
        workers=[
            ServiceProcess(f"{name_prefix}worker{n}", "quote_workers", base, ready_marker=WORKER_READY)
            for n in range(1, workers + 1)
        ],
        cores=[
            ServiceProcess(f"{name_prefix}core{n}", "core_app", base, port)
            for n, port in enumerate(core_ports, start=1)
        ],
        deadline_s=infrastructure.deadline_s,
        session=session,
    )
    # The aggregator declares the topology, so it starts before the workers consume.
    for group in ([system.sandbox, system.aggregator], [*system.workers, *system.cores]):
        for process in group:
            process.start()
        await asyncio.gather(*(process.wait_ready() for process in group))
    return system


async def stop_system(system: RunningSystem) -> dict[str, int | None]:
    codes = await asyncio.gather(*(process.stop() for process in system.processes))
    return {process.name: code for process, code in zip(system.processes, codes, strict=True)}
