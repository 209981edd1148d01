"""A database that cannot be reached is a 503 with Retry-After, promptly, never a hang."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from aggregator_api.app import create_app
from aggregator_api.typedefs import HUB
from tests.faults.conftest import through
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.samples import sample_application
from tests.support.tcp_proxy import TcpProxy

TOKEN = "outage-service-token"


@pytest.fixture(scope="module")
async def aggregator_without_database(infrastructure: RunInfrastructure) -> AsyncIterator[TestClient]:
    # Nothing listens on this port: every connection attempt is refused.
    settings = infrastructure.settings(
        service_token=TOKEN, database_url=f"postgres://postgres@127.0.0.1:{free_port()}/osago"
    )
    async with in_process(create_app(settings)) as client:
        yield client


async def test_post_and_get_answer_503_with_retry_after(aggregator_without_database: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    started = time.monotonic()
    response = await aggregator_without_database.post("/api/v1/applications", json=sample_application(), headers=auth)
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["error"]["code"] == "unavailable"

    response = await aggregator_without_database.get(
        "/api/v1/applications/00000000-0000-4000-8000-000000000000",
        headers={**auth, "X-Osago-Access-Token": "x" * 43},
    )
    assert response.status in (404, 503)
    assert time.monotonic() - started < 10, "a refused database connection must not hang a request"

    response = await aggregator_without_database.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"] == {"database": False, "broker": True}


async def test_first_aggregator_socket_with_the_broker_gone_is_503_promptly(infrastructure: RunInfrastructure) -> None:
    # The aggregator starts its offers consumer with its first socket; if the broker went away
    # meanwhile, that socket is refused with 503 instead of streaming nothing.
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.up()
    try:
        settings = infrastructure.settings(service_token=TOKEN, amqp_url=through(infrastructure.amqp_url, proxy))
        async with in_process(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            response = await client.post("/api/v1/applications", json=sample_application(), headers=auth)
            assert response.status == 201
            created = await response.json()
            await proxy.down()
            started = time.monotonic()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(f"{created['links']['offers']}?token={created['access_token']}", headers=auth)
            assert refused.value.status == 503
            assert time.monotonic() - started < 10
            assert not client.app[HUB].consuming
    finally:
        await proxy.down()
