"""A private database and RabbitMQ vhost per benchmark, made and removed by it.

Same idea as ``tests/support/infrastructure.py``: names carry a random suffix, so a
benchmark never touches the database or vhost of a running ``make run`` or test run.
"""

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
from shared.db import drop_database
from shared.settings import Settings

POSTGRES_URL = os.environ.get("OSAGO_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
AMQP_HOST = os.environ.get("OSAGO_BENCH_AMQP_HOST", "127.0.0.1:5672")
MANAGEMENT_URL = os.environ.get("OSAGO_BENCH_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672")
BROKER_USER, BROKER_PASSWORD = "guest", "guest"


@dataclass(frozen=True)
class Infrastructure:
    database_url: str
    amqp_url: str
    vhost: str
    deadline_s: float

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.database_url,
            "amqp_url": self.amqp_url,
            "quote_deadline_s": self.deadline_s,
            **overrides,
        }
        return Settings.from_env({}, **values)

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a service subprocess pointed at this benchmark's database and vhost."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSAGO_")}
        env.update(
            OSAGO_DATABASE_URL=self.database_url,
            OSAGO_AMQP_URL=self.amqp_url,
            OSAGO_QUOTE_DEADLINE_S=str(self.deadline_s),
            OSAGO_LOG_JSON="true",
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env


async def _management(session: aiohttp.ClientSession, method: str, path: str, json: object | None = None) -> None:
    async with session.request(
        method,
        f"{MANAGEMENT_URL}/api{path}",
        json=json,
        headers={"Authorization": aiohttp.encode_basic_auth(BROKER_USER, BROKER_PASSWORD)},
    ) as response:
        if response.status >= 400:
            raise RuntimeError(f"RabbitMQ management {method} {path}: {response.status} {await response.text()}")


@asynccontextmanager
async def private_infrastructure(
    name: str, *, deadline_s: float = 60.0, schema: bool = True
) -> AsyncIterator[Infrastructure]:
    run_id = f"{name}_{secrets.token_hex(3)}"
    infra = Infrastructure(
        database_url=f"{POSTGRES_URL}/osago_bench_{run_id}",
        amqp_url=f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@{AMQP_HOST}/osago_bench_{run_id}",
        vhost=f"osago_bench_{run_id}",
        deadline_s=deadline_s,
    )
    async with aiohttp.ClientSession() as session:
        vhost = quote(infra.vhost, safe="")
        await _management(session, "PUT", f"/vhosts/{vhost}")
        await _management(
            session, "PUT", f"/permissions/{vhost}/{BROKER_USER}", {"configure": ".*", "write": ".*", "read": ".*"}
        )
        try:
            if schema:
                with contextlib.redirect_stdout(io.StringIO()):
                    await migrate(infra.settings())
            yield infra
        finally:
            await drop_database(infra.database_url)
            await _management(session, "DELETE", f"/vhosts/{vhost}")
