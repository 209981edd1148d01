"""The HA data stores of ``make run-ha`` (``local_cluster.stores``), made by a test for itself.

A PostgreSQL primary and streaming replica and a three-node RabbitMQ cluster on free ports,
with Erlang node names no other run uses (``osagoT<random>n1@localhost``), their data under a
temporary directory, and an nginx stream balancer in front of the nodes (the services' one AMQP
address, as in ``make run-ha``). Everything is stopped and removed at the end, failures
included. ``ha_environment()`` yields it with a migrated database and a vhost of its own:

    async with ha_environment(deadline_s=20) as ha:
        cluster = Cluster(ha.infrastructure, session, **ha.service_env)
        ha.stores.nodes[0].kill()            # SIGKILL of the node's VM, from its pid file
        await ha.run(ha.stores.restart_node, 0)
        await ha.run(ha.stores.replica.stop)

Starting takes ~20 s (the nodes boot in parallel), so a module starts it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aggregator_api.admin import migrate
from local_cluster import nginx
from local_cluster.stores import QUORUM_GROUP_SIZE, HaStores, StorePorts
from shared.platform.db import database
from tests.support.infrastructure import BROKER_PASSWORD, BROKER_USER, RunInfrastructure
from tests.support.processes import free_port

T = TypeVar("T")


@dataclass
class HaEnvironment:
    stores: HaStores
    infrastructure: RunInfrastructure  # the database on the primary, the vhost via the balancer
    replica_url: str
    balancer_port: int

    @property
    def service_env(self) -> dict[str, str]:
        """What a service needs beyond ``infrastructure.env()`` (pass to ``Cluster(..., **env)``)."""
        return {
            "OSAGO_DATABASE_REPLICA_URL": self.replica_url,
            "OSAGO_AMQP_QUORUM_GROUP_SIZE": str(QUORUM_GROUP_SIZE),
        }

    @staticmethod
    async def run(function: Callable[..., T], *args: Any) -> T:
        """The stores' tools block (pg_ctl, rabbitmqctl): off the event loop."""
        return await asyncio.to_thread(function, *args)


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@contextlib.asynccontextmanager
async def ha_stores() -> AsyncIterator[tuple[HaStores, int, asyncio.subprocess.Process]]:
    """The stores and an AMQP balancer on free ports; stopped and removed whatever happens."""
    ports = _free_ports(10)
    store_ports = StorePorts(
        pg_primary=ports[0], pg_replica=ports[1], amqp=tuple(ports[2:5]), dist=tuple(ports[5:8]), management=None
    )
    balancer_port = ports[8]
    base = Path(tempfile.mkdtemp(prefix="osago-ha-"))
    stores = HaStores(base / "stores", store_ports, node_prefix=f"osagoT{secrets.token_hex(3)}n")
    balancer: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(stores.start)
        run_dir = base / "nginx"
        for directory in [run_dir, *nginx.temp_dirs(run_dir)]:
            directory.mkdir(parents=True, exist_ok=True)
        tcp = [nginx.Balancer("rabbitmq", balancer_port, list(store_ports.amqp))]
        (run_dir / "nginx.conf").write_text(nginx.render_config([], run_dir, tcp=tcp))
        balancer = await asyncio.create_subprocess_exec(
            "nginx", "-p", str(run_dir), "-c", str(run_dir / "nginx.conf"), "-e", str(run_dir / "nginx-error.log")
        )  # fmt: skip
        yield stores, balancer_port, balancer
    finally:
        if balancer is not None:
            balancer.terminate()
            await asyncio.wait_for(balancer.wait(), 10)
        await asyncio.to_thread(stores.stop)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.asynccontextmanager
async def ha_environment(deadline_s: float) -> AsyncIterator[HaEnvironment]:
    """The stores with a migrated database and a vhost of this run, open to this process's reads
    (Tortoise on the primary, like the fault tests' ``fault_environment``)."""
    async with ha_stores() as (stores, balancer_port, _balancer):
        name = f"osago_test_{secrets.token_hex(4)}"
        await asyncio.to_thread(stores.add_vhost, name)
        infrastructure = RunInfrastructure(
            database_url=stores.primary.url(name),
            amqp_url=f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@127.0.0.1:{balancer_port}/{name}",
            vhost=name,
            deadline_s=deadline_s,
        )
        with contextlib.redirect_stdout(io.StringIO()):
            await migrate(infrastructure.settings(amqp_quorum_group_size=QUORUM_GROUP_SIZE))
        async with database(infrastructure.settings()):
            yield HaEnvironment(stores, infrastructure, stores.replica.url(name), balancer_port)
