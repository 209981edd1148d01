"""Fixtures that start real things: a private database and vhost, real service processes."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from tests.support.infrastructure import BrokerAdmin, RunInfrastructure, private_infrastructure

# Hypothesis runs (tests/fuzz/, tests/unit/test_schema_properties.py): `make test` replays the same
# examples every time (derandomized; a failure there is reproducible); `--fuzz-long` draws new ones,
# ten times as many, and the fuzz tests send six times as many requests (tests/fuzz/conftest.py).
HYPOTHESIS_PROFILES = {
    "osago": {"max_examples": 200, "derandomize": True},
    "osago-long": {"max_examples": 2000, "derandomize": False},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="the long fuzz run: 10,000+ generated API requests and 2,000 examples per schema property",
    )
    parser.addoption(
        "--chaos-long",
        action="store_true",
        default=False,
        help="the 1,000-application chaos runs on the supervised cluster (tests/faults/test_cluster_degradation.py, and on the HA stores: test_ha_chaos.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import settings

    for name, values in HYPOTHESIS_PROFILES.items():
        # No example database: nothing written into the work tree; no deadline on a loaded two-core machine.
        settings.register_profile(name, database=None, deadline=None, print_blob=True, **values)  # type: ignore[arg-type]
    settings.load_profile("osago-long" if config.getoption("fuzz_long") else "osago")


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


@pytest.fixture(scope="session")
def nginx_installed() -> None:
    """Tests of the balancer need Debian's nginx; `make test` installs it, so its absence is a
    failure (a skip would let a fresh machine pass without ever running them)."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx is missing: `make test` installs Debian's nginx (scripts/ensure-nginx.sh)")
