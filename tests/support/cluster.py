"""Any composition of our services as subprocesses, for fault tests: each process can get
its own environment (failpoints, proxies, short breaker timeouts) and be killed,
stopped or restarted on its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiohttp

from shared.models import Application, Offer, Quote
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import ServiceProcess, free_port, service_env
from tests.support.system import SERVICE_TOKEN, TOKEN_SECRET, WORKER_READY, collect_offer_events


class Cluster:
    def __init__(self, infrastructure: RunInfrastructure, session: aiohttp.ClientSession, **env: str) -> None:
        self.infrastructure = infrastructure
        self.session = session
        self.sandbox_port = free_port()
        self.aggregator_port = free_port()
        defaults = {
            "OSAGO_SERVICE_TOKEN": SERVICE_TOKEN,
            "OSAGO_TOKEN_SECRET": TOKEN_SECRET,
            "OSAGO_SANDBOX_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "OSAGO_AGGREGATOR_URL": f"http://127.0.0.1:{self.aggregator_port}",
            "OSAGO_RELAY_INTERVAL_S": "0.5",
            "OSAGO_SWEEPER_GRACE_S": "1",
            "OSAGO_BROWSER_RPS": "1000",
        }
        self.base_env = service_env(infrastructure.env(), **{**defaults, **env})
        self.processes: list[ServiceProcess] = []

    def _add(self, process: ServiceProcess) -> ServiceProcess:
        self.processes.append(process)
        return process

    def sandbox(self) -> ServiceProcess:
        return self._add(ServiceProcess("sandbox", "quote_workers.sandbox", self.base_env, self.sandbox_port))

    def aggregator(self, name: str = "aggregator", **env: str) -> ServiceProcess:
        return self._add(ServiceProcess(name, "aggregator_api", {**self.base_env, **env}, self.aggregator_port))

    def worker(self, name: str, *, metrics_port: bool = False, **env: str) -> ServiceProcess:
        port = free_port() if metrics_port else None
        return self._add(
            ServiceProcess(name, "quote_workers", {**self.base_env, **env}, port, ready_marker=WORKER_READY)
        )

    def core(self, name: str, **env: str) -> ServiceProcess:
        return self._add(ServiceProcess(name, "core_app", {**self.base_env, **env}, free_port()))

    async def start(self, *processes: ServiceProcess) -> None:
        for process in processes:
            process.start()
        await asyncio.gather(*(process.wait_ready() for process in processes))

    async def stop(self) -> dict[str, int | None]:
        codes = await asyncio.gather(*(process.stop() for process in self.processes))
        return {p.name: code for p, code in zip(self.processes, codes, strict=True)}

    # --- the sandbox's control API ---------------------------------------------------------

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    async def insurer_codes(self) -> list[str]:
        async with self.session.get(f"{self.sandbox_url}/sandbox/insurers") as response:
            return [insurer["code"] for insurer in await response.json()]

    async def behave(self, code: str, **behaviour: Any) -> None:
        async with self.session.put(f"{self.sandbox_url}/sandbox/insurers/{code}/behaviour", json=behaviour) as r:
            assert r.status == 200, await r.text()

    async def behave_all(self, **behaviour: Any) -> None:
        await asyncio.gather(*(self.behave(code, **behaviour) for code in await self.insurer_codes()))

    # --- clients ------------------------------------------------------------------------------

    async def create(self, body: Any, *, via: ServiceProcess | None = None) -> tuple[int, dict[str, Any]]:
        """POST to a core app, or straight to the aggregator with the service token."""
        if via is not None:
            url, headers = f"{via.url}/api/v1/applications", {}
        else:
            url = f"http://127.0.0.1:{self.aggregator_port}/api/v1/applications"
            headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
        async with self.session.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.json()

    async def collect_events(
        self, core: ServiceProcess, created: dict[str, Any], timeout: float
    ) -> tuple[list[dict[str, Any]], int | None]:
        return await collect_offer_events(self.session, core.url, created, timeout)

    async def publish_raw_job(self, routing_key: str, body: bytes) -> None:
        connection = await aio_pika.connect(self.infrastructure.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("osago.quote.jobs")
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=routing_key
            )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1) -> bool:
    """Poll until ``check`` holds; the caller asserts on the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return await check()


async def quotes_of(application_id: str) -> list[Quote]:
    return list(await Quote.filter(application_id=uuid.UUID(application_id)).order_by("insurer_code"))


async def application_row(application_id: str) -> Application:
    return await Application.get(id=uuid.UUID(application_id))


async def offers_of(application_id: str) -> list[Offer]:
    return list(await Offer.filter(application_id=uuid.UUID(application_id)))
