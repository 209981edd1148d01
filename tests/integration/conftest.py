from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from aggregator_api.app import create_app
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure

SERVICE_TOKEN = "integration-service-token"


@pytest.fixture(scope="module")
async def aggregator(infrastructure: RunInfrastructure) -> AsyncIterator[TestClient]:
    """The aggregator API in this process, on the run's real database and vhost.

    Configured with a replica (the same database: no lag) as ``make run-ha`` is, so every code
    path here runs with Tortoise holding two connections: a transaction that names none raised
    ParamsError there, and the outbox relay never ran in HA until a chaos run found it.
    """
    settings = infrastructure.settings(
        service_token=SERVICE_TOKEN,
        insurers=("sever", "volga", "ural"),
        database_replica_url=infrastructure.database_url,
    )
    async with in_process(create_app(settings)) as client:
        yield client
