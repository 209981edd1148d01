"""Fault tests: each module gets its own database and vhost (and may choose its deadline), and each
test its own cluster of real processes, so killing things never disturbs another test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from shared.platform.db import database
from tests.support.cluster import Cluster
from tests.support.infrastructure import BrokerAdmin, RunInfrastructure, private_infrastructure
from tests.support.tcp_proxy import TcpProxy

FAULT_DEADLINE_S = 6.0


@contextlib.asynccontextmanager
async def fault_environment(deadline_s: float) -> AsyncIterator[tuple[RunInfrastructure, BrokerAdmin]]:
    """A private database and vhost for one module, open to this process's reads."""
    async with private_infrastructure(deadline_s=deadline_s) as (infrastructure, admin):
        # The test process reads the database to check what the services stored.
        async with database(infrastructure.settings()):
            yield infrastructure, admin


@pytest.fixture(scope="module")
async def fault_env() -> AsyncIterator[tuple[RunInfrastructure, BrokerAdmin]]:
    """A module that needs another deadline overrides this fixture with its own."""
    async with fault_environment(FAULT_DEADLINE_S) as env:
        yield env


@pytest.fixture(scope="module")
def fault_infrastructure(fault_env: tuple[RunInfrastructure, BrokerAdmin]) -> RunInfrastructure:
    return fault_env[0]


@pytest.fixture(scope="module")
def fault_broker(fault_env: tuple[RunInfrastructure, BrokerAdmin]) -> BrokerAdmin:
    return fault_env[1]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_cluster(
    fault_infrastructure: RunInfrastructure, http: aiohttp.ClientSession
) -> AsyncIterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(**env: str) -> Cluster:
        cluster = Cluster(fault_infrastructure, http, **env)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        await cluster.stop()


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture
async def broker_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.up()
    yield proxy
    await proxy.down()


@pytest.fixture
async def database_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.up()
    yield proxy
    await proxy.down()
