"""Tortoise ORM configuration and lifecycle; the database's own housekeeping."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise
from tortoise.exceptions import DBConnectionError, OperationalError

from shared.platform.replica import PRIMARY, REPLICA, ReplicaReads
from shared.platform.settings import DEFAULT_DATABASE_URL, Settings

MODELS_MODULES = ["shared.models", "aerich.models"]

# The database is out of reach (down, restarting, network cut, pool exhausted), as opposed to
# a statement that is wrong: worth waiting out.
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    DBConnectionError,
    OperationalError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    OSError,
    TimeoutError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query.

    The default (``RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()``) is one more
    round trip each time a connection goes back to the pool, and Tortoise takes one from the
    pool per query. Our services keep no session state (no SET, LISTEN, cursors or advisory
    locks), and asyncpg still rolls back a transaction left open before calling this.
    """


# Lag-tolerant reads of this process: the replica when one is configured (``database``).
REPLICA_READS = ReplicaReads(DATABASE_UNREACHABLE)
# A replica that is down must be found out within a read's attempt, not asyncpg's 60 s.
REPLICA_CONNECT_TIMEOUT_S = 1.0


def tortoise_config(database_url: str, *, pool_max: int = 10, replica_url: str = "") -> dict[str, Any]:
    connections = {PRIMARY: _connection(database_url, pool_max)}
    if replica_url:
        connections[REPLICA] = _connection(replica_url, pool_max, connect_timeout_s=REPLICA_CONNECT_TIMEOUT_S)
    return {
        "connections": connections,
        "apps": {"models": {"models": MODELS_MODULES, "default_connection": PRIMARY}},
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(database_url: str, pool_max: int, *, connect_timeout_s: float = 60.0) -> dict[str, Any]:
    parts = urlsplit(database_url)
    return {
        "engine": "tortoise.backends.asyncpg",
        "credentials": {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "user": parts.username or "postgres",
            "password": parts.password or "",
            "database": parts.path.lstrip("/") or "osago",
            "minsize": 1,
            "maxsize": pool_max,
            # A query that hangs (lock, dead server) must not hold a request forever.
            "command_timeout": 10,
            "reset": _keep_session,
            "timeout": connect_timeout_s,
        },
    }


# Read by aerich (``[tool.aerich] tortoise_orm``); services build theirs from Settings.
TORTOISE_ORM = tortoise_config(os.environ.get("OSAGO_DATABASE_URL", DEFAULT_DATABASE_URL))


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    """Tortoise for the life of one process; request tasks see it through the global fallback."""
    await Tortoise.init(
        config=tortoise_config(
            settings.database_url, pool_max=settings.db_pool_max, replica_url=settings.database_replica_url
        ),
        _enable_global_fallback=True,
    )
    REPLICA_READS.enabled = bool(settings.database_replica_url)
    try:
        yield
    finally:
        REPLICA_READS.enabled = False
        await Tortoise.close_connections()


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    return urlunsplit(parts._replace(path="/postgres")), name


async def create_database_if_missing(database_url: str) -> bool:
    """Create the database named in the URL; True when it was created now."""
    admin_url, name = _admin_url(database_url)
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def drop_database(database_url: str) -> None:
    admin_url, name = _admin_url(database_url)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
