"""Fixtures that start real things: a private database and vhost, real service processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.infrastructure import BrokerAdmin, RunInfrastructure, private_infrastructure


@pytest.fixture(scope="session")
async def infrastructure_and_admin() -> AsyncIterator[tuple[RunInfrastructure, BrokerAdmin]]:
    async with private_infrastructure() as pair:
        yield pair


@pytest.fixture(scope="session")
def infrastructure(infrastructure_and_admin: tuple[RunInfrastructure, BrokerAdmin]) -> RunInfrastructure:
    return infrastructure_and_admin[0]


@pytest.fixture(scope="session")
def broker_admin(infrastructure_and_admin: tuple[RunInfrastructure, BrokerAdmin]) -> BrokerAdmin:
    return infrastructure_and_admin[1]
