"""A private database and RabbitMQ vhost per benchmark, made and removed by it.

The tests' helper (``tests/support/infrastructure.py``) with benchmark names and full-size
connection pools: a benchmark never touches a running ``make run`` or test run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.infrastructure import POSTGRES_URL, RunInfrastructure
from tests.support.infrastructure import private_infrastructure as private_test_infrastructure

Infrastructure = RunInfrastructure
# The services' own default pool, so that what is measured is what `make run` does.
BENCH_POOL_MAX = 10

__all__ = ["POSTGRES_URL", "Infrastructure", "private_infrastructure"]


@asynccontextmanager
async def private_infrastructure(
    name: str, *, deadline_s: float = 60.0, schema: bool = True
) -> AsyncIterator[Infrastructure]:
    async with private_test_infrastructure(
        deadline_s, prefix=f"osago_bench_{name}", schema=schema, pool_max=BENCH_POOL_MAX
    ) as (infrastructure, _):
        yield infrastructure
