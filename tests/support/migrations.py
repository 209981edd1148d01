"""Databases at an earlier migration, as an installation of an older release has them, and
what PostgreSQL says of their indexes: for tests of upgrades."""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest_asyncio
from aerich import Command

from aggregator_api.admin import MIGRATIONS_DIR
from shared.platform.db import create_database_if_missing, drop_database, tortoise_config
from tests.support.infrastructure import POSTGRES_URL

VERSIONS_DIR = MIGRATIONS_DIR / "models"  # aerich: <location>/<app>


def migration_files() -> list[Path]:
    return sorted(VERSIONS_DIR.glob("[0-9]*_*.py"), key=lambda path: int(path.name.split("_")[0]))


@pytest_asyncio.fixture
async def empty_database() -> AsyncIterator[str]:
    """The URL of a database of its own, created empty and dropped afterwards."""
    url = f"{POSTGRES_URL}/osago_test_migrations_{secrets.token_hex(4)}"
    await create_database_if_missing(url)
    try:
        yield url
    finally:
        await drop_database(url)


async def migrate_to(database_url: str, count: int, scratch: Path) -> list[str]:
    """Apply the first ``count`` migrations only (copied to ``scratch``); the names applied."""
    (scratch / "models").mkdir()
    for path in migration_files()[:count]:
        shutil.copy(path, scratch / "models" / path.name)
    # aerich's Command leaves its Tortoise context in a context variable: keep it from leaking.
    return await asyncio.create_task(_upgrade(database_url, scratch), context=contextvars.Context())


async def _upgrade(database_url: str, location: Path) -> list[str]:
    command = Command(tortoise_config=tortoise_config(database_url), app="models", location=str(location))
    try:
        await command.init()
        return await command.upgrade(run_in_transaction=True)
    finally:
        await command.aclose()


async def indexes(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["indexname"]: row["indexdef"] for row in rows}
