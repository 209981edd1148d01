"""A database that cannot be reached is a 503 with Retry-After, promptly, never a hang."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from aggregator_api.app import create_app
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.samples import sample_application

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
