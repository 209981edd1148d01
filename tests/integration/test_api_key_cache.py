"""Invalid API keys cost (almost) nothing: cached lookups and a failure budget per address.

The core app runs in this process on the run's real database and broker, in front of the
real aggregator (a subprocess, so that partners and browsers get their real 201s). Queries
on the partner table are counted by PostgreSQL itself (``pg_stat_user_tables`` and
``pg_stat_user_indexes`` of this run's private database): every scan of the partner table
except those of its primary key, which only the foreign key checks of new applications use.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from aggregator_api.admin import insert_partner
from core_app.app import create_app
from shared.intake.api_keys import hash_api_key
from shared.models import Partner
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import ServiceProcess, free_port, service_env
from tests.support.samples import sample_application

SERVICE_TOKEN = "api-key-cache-test-service-token"
FLOOD = 200
# The default of OSAGO_AUTH_FAILURES_PER_MINUTE: unknown keys looked up per address at once.
FAILURE_BURST = 10
# Idle PostgreSQL backends publish their table statistics within 10 s (PGSTAT_IDLE_INTERVAL).
STATS_IDLE_FLUSH_S = 11.0

# The first address is the test client's; the others are loopback addresses too (127/8).
FLOODER, PARTNER_ELSEWHERE, BROWSER_ELSEWHERE, ANOTHER_ADDRESS = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.5"


@pytest.fixture(scope="module")
async def aggregator(infrastructure: RunInfrastructure) -> AsyncIterator[ServiceProcess]:
    # One database connection, opened at start: the backends the core app adds are told apart
    # by being new (see partner_scans_settled).
    env = service_env(infrastructure.env(), OSAGO_SERVICE_TOKEN=SERVICE_TOKEN, OSAGO_DB_POOL_MAX="1")
    process = ServiceProcess("api-key-cache-aggregator", "aggregator_api", env, free_port())
    process.start()
    try:
        await process.wait_ready()
        yield process
    finally:
        await process.stop()


@asynccontextmanager
async def core_app(
    infrastructure: RunInfrastructure, aggregator: ServiceProcess, **overrides: Any
) -> AsyncIterator[TestClient]:
    settings = infrastructure.settings(
        aggregator_url=aggregator.url,
        service_token=SERVICE_TOKEN,
        browser_rps=10_000.0,
        allowed_origins=("http://ok.test",),
        **overrides,
    )
    async with in_process(create_app(settings)) as client:
        yield client


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose connections come from ``address`` (the core app's ``request.remote``)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session:
        yield session


async def call(
    session: aiohttp.ClientSession | TestClient, core: TestClient, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    url = path if isinstance(session, TestClient) else str(core.make_url(path))
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json()


def random_key() -> str:
    return f"osk_{secrets.token_urlsafe(32)}"


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def lookups_counted() -> float:
    return counter("osago_partner_key_lookups_total", result="found") + counter(
        "osago_partner_key_lookups_total", result="unknown"
    )


async def backend_pids(database_url: str) -> set[int]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return {row["pid"] for row in rows}


async def partner_scans(database_url: str) -> int:
    """Scans of the partner table other than by its primary key, as PostgreSQL counted them."""
    connection = await asyncpg.connect(database_url)
    try:
        value = await connection.fetchval(
            """
            SELECT coalesce((SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'partner'), 0)
                 + coalesce((SELECT sum(s.idx_scan) FROM pg_stat_user_indexes s
                             JOIN pg_index i ON i.indexrelid = s.indexrelid
                             WHERE s.relname = 'partner' AND NOT i.indisprimary), 0)
            """
        )
    finally:
        await connection.close()
    return int(value)


async def partner_scans_settled(database_url: str, pids_before: set[int], closed_at: float) -> int:
    """The count once every backend the core app opened has published its statistics.

    A backend publishes them when it exits; the core app's pool is closed, so its backends
    (the pids that were not there before) go away. Should one remain, every idle backend has
    published within PGSTAT_IDLE_INTERVAL anyway.
    """
    deadline = time.monotonic() + 5.0
    while await backend_pids(database_url) - pids_before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if await backend_pids(database_url) - pids_before:
        await asyncio.sleep(max(0.0, closed_at + STATS_IDLE_FLUSH_S - time.monotonic()))
    return await partner_scans(database_url)


async def test_a_flood_of_random_keys_costs_a_handful_of_queries_and_nobody_else_notices(
    infrastructure: RunInfrastructure, aggregator: ServiceProcess
) -> None:
    database_url = infrastructure.database_url
    pids_before = await backend_pids(database_url)
    scans_before = await partner_scans(database_url)
    counted_before = lookups_counted()
    async with core_app(infrastructure, aggregator) as core:
        _, partner_key = await insert_partner(f"Flood test partner {uuid.uuid4().hex[:6]}", 10_000)
        partner = {"X-API-Key": partner_key}
        # The partner has called before, from the address the flood will come from.
        assert (await call(core, core, "GET", "/api/v1/applications?limit=1", headers=partner))[0] == 200
        wrong_key_body = (await call(core, core, "GET", "/api/v1/reference", headers={"X-API-Key": "osk_nope"}))[1]

        async def flood() -> list[tuple[int, Any]]:
            return await asyncio.gather(
                *(
                    call(core, core, "GET", "/api/v1/applications?limit=1", headers={"X-API-Key": random_key()})
                    for _ in range(FLOOD)
                )
            )

        async def everybody_else() -> list[tuple[str, int]]:
            seen = []
            async with client_from(PARTNER_ELSEWHERE) as elsewhere, client_from(BROWSER_ELSEWHERE) as browser:
                for _ in range(5):
                    for who, session, method, path, headers in (
                        ("partner", elsewhere, "GET", "/api/v1/applications?limit=5", partner),
                        ("partner", elsewhere, "POST", "/api/v1/applications", partner),
                        ("partner at the flood's address", core, "GET", "/api/v1/applications?limit=5", partner),
                        ("browser", browser, "POST", "/api/v1/applications", {}),
                        ("browser", browser, "GET", "/api/v1/reference", {}),
                        ("browser at the flood's address", core, "GET", "/api/v1/reference", {}),
                    ):
                        body = sample_application() if method == "POST" else None
                        status, _ = await call(session, core, method, path, headers=headers, json=body)
                        seen.append((f"{who} {method}", status))
                    await asyncio.sleep(0.02)
            return seen

        flooded, others = await asyncio.gather(flood(), everybody_else())
    closed_at = time.monotonic()

    assert [status for status, _ in flooded] == [401] * FLOOD
    assert all(body == wrong_key_body for _, body in flooded), "every refusal has the one 401 body"
    expected = {"partner GET": 200, "partner POST": 201, "browser POST": 201, "browser GET": 200}
    expected |= {"partner at the flood's address GET": 200, "browser at the flood's address GET": 200}
    assert [(who, status) for who, status in others if status != expected[who]] == []

    scans = await partner_scans_settled(database_url, pids_before, closed_at) - scans_before
    # The burst of the flood's address, the partner's first lookups (one per address that
    # did not know it yet: the cache is per process, not per address) and one spare.
    assert scans <= FAILURE_BURST + 3, f"{FLOOD} invalid keys cost {scans} partner queries"
    assert lookups_counted() - counted_before == scans


async def test_a_deactivated_key_stops_working_within_the_cache_ttl(
    infrastructure: RunInfrastructure, aggregator: ServiceProcess
) -> None:
    ttl_s = 1.0
    async with core_app(infrastructure, aggregator, api_key_cache_s=ttl_s) as core:
        partner, api_key = await insert_partner(f"Deactivated partner {uuid.uuid4().hex[:6]}", 10_000)
        headers = {"X-API-Key": api_key}
        counted_before = lookups_counted()
        for _ in range(20):
            assert (await call(core, core, "GET", "/api/v1/applications?limit=1", headers=headers))[0] == 200
        assert lookups_counted() - counted_before <= 1, "inside the TTL a key is looked up once"

        await Partner.filter(id=partner.id).update(active=False)
        deactivated_at = time.monotonic()
        status = 200
        while status == 200 and time.monotonic() - deactivated_at < ttl_s * 5:
            status, body = await call(core, core, "GET", "/api/v1/applications?limit=1", headers=headers)
            await asyncio.sleep(0.05)
        took = time.monotonic() - deactivated_at
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert took <= ttl_s + 0.5, f"the deactivated key kept working {took:.2f} s"
        for _ in range(5):
            assert (await call(core, core, "GET", "/api/v1/reference", headers=headers))[0] == 401

        # A key refused before its partner existed opens once the TTL has passed.
        new_key = random_key()
        assert (await call(core, core, "GET", "/api/v1/reference", headers={"X-API-Key": new_key}))[0] == 401
        await Partner.create(
            id=uuid.uuid4(), name="Late partner", api_key_hash=hash_api_key(new_key), requests_per_second=100
        )
        created_at = time.monotonic()
        status = 401
        while status == 401 and time.monotonic() - created_at < ttl_s * 5:
            status, _ = await call(core, core, "GET", "/api/v1/reference", headers={"X-API-Key": new_key})
            await asyncio.sleep(0.05)
        assert status == 200
        assert time.monotonic() - created_at <= ttl_s + 0.5


async def test_the_failure_budget_is_per_client_address(
    infrastructure: RunInfrastructure, aggregator: ServiceProcess
) -> None:
    async with core_app(infrastructure, aggregator) as core:
        _, fresh_key = await insert_partner(f"Fresh partner {uuid.uuid4().hex[:6]}", 10_000)
        lookups, throttled = lookups_counted(), counter("osago_auth_throttled_total")

        # 30 guesses from one address: its burst is looked up, the rest answered without a query.
        for _ in range(30):
            assert (await call(core, core, "GET", "/api/v1/reference", headers={"X-API-Key": random_key()}))[0] == 401
        assert lookups_counted() - lookups == FAILURE_BURST
        assert counter("osago_auth_throttled_total") - throttled == 30 - FAILURE_BURST

        # The price of the rule: from that address, a valid key this process has not seen yet
        # is told apart from a guess only by a query, so it waits for the budget like one.
        status, body = await call(core, core, "GET", "/api/v1/reference", headers={"X-API-Key": fresh_key})
        assert (status, body["error"]["code"]) == (401, "unauthorized")

        async with client_from(ANOTHER_ADDRESS) as other:
            lookups, throttled = lookups_counted(), counter("osago_auth_throttled_total")
            for _ in range(5):
                assert (await call(other, core, "GET", "/api/v1/reference", headers={"X-API-Key": random_key()}))[
                    0
                ] == 401
            assert lookups_counted() - lookups == 5, "another address has a budget of its own"
            assert counter("osago_auth_throttled_total") == throttled
            assert (await call(other, core, "GET", "/api/v1/reference", headers={"X-API-Key": fresh_key}))[0] == 200

        # Found valid once, the key works from every address, the spent one included; and a
        # browser there (no key) was never concerned.
        assert (await call(core, core, "GET", "/api/v1/reference", headers={"X-API-Key": fresh_key}))[0] == 200
        assert (await call(core, core, "GET", "/api/v1/reference"))[0] == 200
