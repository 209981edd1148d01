"""Migration 3 (the retention job's column, index and nullable fingerprint): on a fresh database,
and on one left at migration 2 with rows. No app runs in this module: aerich's own Tortoise
setup must not meet a running service's."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import asyncpg

from aggregator_api.admin import migrate
from tests.support.infrastructure import RunInfrastructure
from tests.support.migrations import empty_database, indexes, migrate_to, migration_files

__all__ = ["empty_database"]  # a fixture, imported explicitly
from tests.support.samples import sample_application


async def columns(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'application'"
        )
    finally:
        await conn.close()
    return {row["column_name"]: row["is_nullable"] for row in rows}


ERASURE_INDEX = (
    "CREATE INDEX idx_application_unerased_created ON public.application USING btree (created_at) "
    "WHERE (erased_at IS NULL)"
)


async def test_a_fresh_database_has_the_erasure_columns_and_index(infrastructure: RunInfrastructure) -> None:
    found = await columns(infrastructure.database_url)
    assert found["erased_at"] == "YES" and found["request_fingerprint"] == "YES"
    assert (await indexes(infrastructure.database_url))["idx_application_unerased_created"] == ERASURE_INDEX


async def test_migration_3_applies_on_a_database_at_migration_2_with_rows(
    empty_database: str, infrastructure: RunInfrastructure, tmp_path: Path
) -> None:
    versions = migration_files()
    assert versions[3].name.startswith("3_")
    applied = await migrate_to(empty_database, 3, tmp_path)
    assert applied == [path.name for path in versions[:3]]
    assert "erased_at" not in await columns(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            "INSERT INTO application (id, status, client_scope, idempotency_key, request_fingerprint, payload, vin, "
            "region_code, deadline, created_at, complete_event_published, pending_quotes) VALUES (gen_random_uuid(), "
            "'complete', 'service', 'k', 'x', $1::jsonb, 'XW7BF4FK60S123456', '77', now(), now(), true, 0)",
            json.dumps(sample_application(), ensure_ascii=False),
        )
    finally:
        await conn.close()

    with contextlib.redirect_stdout(io.StringIO()):
        applied = await migrate(infrastructure.settings(database_url=empty_database))
    assert applied == [path.name for path in versions[3:]]
    found = await columns(empty_database)
    assert found["erased_at"] == "YES" and found["request_fingerprint"] == "YES"
    assert (await indexes(empty_database))["idx_application_unerased_created"] == ERASURE_INDEX
    conn = await asyncpg.connect(empty_database)
    try:
        row = await conn.fetchrow("SELECT erased_at, vin, idempotency_key FROM application")
    finally:
        await conn.close()
    assert tuple(row) == (None, "XW7BF4FK60S123456", "k")
