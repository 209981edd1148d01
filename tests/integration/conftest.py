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
    """The aggregator API in this process, on the run's real database and vhost."""
    settings = infrastructure.settings(service_token=SERVICE_TOKEN, insurers=("sever", "volga", "ural"))
    async with in_process(create_app(settings)) as client:
        yield client
