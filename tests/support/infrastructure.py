"""A private database and RabbitMQ vhost per test run, made and removed by the tests."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from aggregator_api.admin import migrate
from shared.platform.db import drop_database
from shared.platform.settings import Settings

POSTGRES_URL = os.environ.get("OSAGO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432")
AMQP_HOST = os.environ.get("OSAGO_TEST_AMQP_HOST", "127.0.0.1:5672")
MANAGEMENT_URL = os.environ.get("OSAGO_TEST_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672")
BROKER_USER, BROKER_PASSWORD = "guest", "guest"
# The deadline of this run's applications (each job expires at its own; queues carry none).
TEST_DEADLINE_S = 10.0


@dataclass(frozen=True)
class RunInfrastructure:
    database_url: str
    amqp_url: str
    vhost: str
    deadline_s: float = TEST_DEADLINE_S
    # Several systems may run at once in one test run: stay well under max_connections.
    pool_max: int = 4

    @property
    def publish_timeout_s(self) -> float:
        """The relay waits a publish's timeout (+ 1 s) before publishing a row again, so with
        the fault tests' short deadlines the timeout is short too."""
        return min(5.0, self.deadline_s - 4.0)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.database_url,
            "amqp_url": self.amqp_url,
            "quote_deadline_s": self.deadline_s,
            "publish_timeout_s": self.publish_timeout_s,
            **overrides,
        }
        return Settings.from_env({}, **values)

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a service subprocess pointed at this run's database and vhost."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSAGO_")}
        env.update(
            OSAGO_DATABASE_URL=self.database_url,
            OSAGO_AMQP_URL=self.amqp_url,
            OSAGO_QUOTE_DEADLINE_S=str(self.deadline_s),
            OSAGO_PUBLISH_TIMEOUT_S=str(self.publish_timeout_s),
            OSAGO_LOG_JSON="true",
            OSAGO_DB_POOL_MAX=str(self.pool_max),
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env


class BrokerAdmin:
    """The RabbitMQ management API, used to make vhosts and to break connections on purpose."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def _call(self, method: str, path: str, json: object | None = None) -> object:
        async with self._session.request(
            method,
            f"{MANAGEMENT_URL}/api{path}",
            json=json,
            headers={"Authorization": aiohttp.encode_basic_auth(BROKER_USER, BROKER_PASSWORD)},
        ) as response:
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json() if response.content_type == "application/json" else None

    async def create_vhost(self, vhost: str) -> None:
        await self._call("PUT", f"/vhosts/{quote(vhost, safe='')}")
        await self._call(
            "PUT",
            f"/permissions/{quote(vhost, safe='')}/{BROKER_USER}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    async def delete_vhost(self, vhost: str) -> None:
        await self._call("DELETE", f"/vhosts/{quote(vhost, safe='')}")

    async def queues(self, vhost: str) -> list[dict[str, object]]:
        result = await self._call("GET", f"/queues/{quote(vhost, safe='')}")
        assert isinstance(result, list)
        return result

    async def exchange(self, vhost: str, name: str) -> dict[str, object]:
        result = await self._call("GET", f"/exchanges/{quote(vhost, safe='')}/{quote(name, safe='')}")
        assert isinstance(result, dict)
        return result

    async def purge_queue(self, vhost: str, queue: str) -> None:
        await self._call("DELETE", f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/contents")

    async def connections(self, vhost: str) -> list[dict[str, object]]:
        result = await self._call("GET", f"/vhosts/{quote(vhost, safe='')}/connections")
        assert isinstance(result, list)
        return result

    async def close_connection(self, name: str) -> None:
        await self._call("DELETE", f"/connections/{quote(name, safe='')}")


@asynccontextmanager
async def private_infrastructure(
    deadline_s: float = TEST_DEADLINE_S, *, prefix: str = "osago_test", schema: bool = True, pool_max: int = 4
) -> AsyncIterator[tuple[RunInfrastructure, BrokerAdmin]]:
    """A database and vhost named ``<prefix>_<random>``, migrated unless ``schema`` is false."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    infrastructure = RunInfrastructure(
        database_url=f"{POSTGRES_URL}/{name}",
        amqp_url=f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@{AMQP_HOST}/{name}",
        vhost=name,
        deadline_s=deadline_s,
        pool_max=pool_max,
    )
    async with aiohttp.ClientSession() as session:
        admin = BrokerAdmin(session)
        await admin.create_vhost(infrastructure.vhost)
        try:
            if schema:
                with contextlib.redirect_stdout(io.StringIO()):  # migrate() talks to a person
                    await migrate(infrastructure.settings())
            yield infrastructure, admin
        finally:
            await drop_database(infrastructure.database_url)
            await admin.delete_vhost(infrastructure.vhost)
