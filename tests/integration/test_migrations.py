"""The schema's migrations (``osago-admin migrate``): a fresh database and one left at migration 1,
with rows, end with the same indexes; the last migration's MODELS_STATE is what aerich makes of
shared/models.py today, so ``aerich migrate`` finds nothing left to write."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import io
import json
from pathlib import Path

import asyncpg
from aerich import Command
from aerich.coder import encoder
from aerich.utils import decompress_dict, get_models_describe

from aggregator_api.admin import MIGRATIONS_DIR, migrate
from shared.platform.db import tortoise_config
from tests.support.infrastructure import RunInfrastructure
from tests.support.migrations import empty_database, indexes, migrate_to, migration_files

__all__ = ["empty_database"]  # a fixture, imported explicitly

# The indexes the periodic queries read (aggregator_api.outbox, aggregator_api.deadlines), as
# PostgreSQL prints them, and those they replaced.
PERIODIC_QUERY_INDEXES = {
    "idx_application_pending_deadline": "ON public.application USING btree (deadline) "
    "WHERE ((status)::text = 'pending'::text)",
    "idx_application_complete_unpublished": "ON public.application USING btree (completed_at) "
    "WHERE (((status)::text = 'complete'::text) AND (NOT complete_event_published))",
    "idx_quote_job_unpublished": "ON public.quote USING btree (created_at) "
    "WHERE (((status)::text = 'pending'::text) AND (NOT job_published))",
    "idx_quote_event_unpublished": "ON public.quote USING btree (finished_at) "
    "WHERE (((status)::text <> 'pending'::text) AND (NOT event_published))",
}
REPLACED = {"idx_quote_job_pub_dd90fa", "idx_quote_event_p_d1d277", "idx_application_status_23e82e"}


def assert_periodic_query_indexes(found: dict[str, str]) -> None:
    for name, definition in PERIODIC_QUERY_INDEXES.items():
        assert found.get(name) == f"CREATE INDEX {name} {definition}", name
    assert not REPLACED & set(found)


async def test_a_fresh_database_has_the_periodic_query_indexes(infrastructure: RunInfrastructure) -> None:
    assert_periodic_query_indexes(await indexes(infrastructure.database_url))


async def test_migrate_brings_a_database_at_migration_1_with_rows_to_the_same_indexes(
    empty_database: str, infrastructure: RunInfrastructure, tmp_path: Path
) -> None:
    # The first two migrations only, as a release before the periodic query indexes had them.
    versions = migration_files()
    applied = await migrate_to(empty_database, 2, tmp_path)
    assert applied == [path.name for path in versions[:2]]
    assert REPLACED <= set(await indexes(empty_database))

    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            "INSERT INTO application (id, status, client_scope, request_fingerprint, payload, region_code, deadline, "
            "created_at, complete_event_published, pending_quotes) "
            "VALUES (gen_random_uuid(), 'pending', 'service', 'x', '{}', '77', now(), now(), false, 1)"
        )
        await conn.execute(
            "INSERT INTO quote (id, application_id, insurer_code, insurer_name, status, attempts, job_published, "
            "event_published, created_at) SELECT gen_random_uuid(), id, 'sever', 'S', 'pending', 0, false, false, "
            "now() FROM application"
        )
    finally:
        await conn.close()

    with contextlib.redirect_stdout(io.StringIO()):
        applied = await migrate(infrastructure.settings(database_url=empty_database))
    assert applied == [path.name for path in versions[2:]]
    assert_periodic_query_indexes(await indexes(empty_database))
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM quote WHERE NOT job_published AND status = 'pending'") == 1
    finally:
        await conn.close()


async def _models_state_is_current(database_url: str) -> tuple[str, str]:
    command = Command(tortoise_config=tortoise_config(database_url), app="models", location=str(MIGRATIONS_DIR))
    try:
        await command.init()
        latest = migration_files()[-1]
        stored = decompress_dict(importlib.import_module(f"migrations.models.{latest.stem}").MODELS_STATE)
        return encoder(get_models_describe("models")), encoder(stored)
    finally:
        await command.aclose()


async def test_the_last_migration_describes_the_models_as_they_are(infrastructure: RunInfrastructure) -> None:
    current, stored = await asyncio.create_task(
        _models_state_is_current(infrastructure.database_url), context=contextvars.Context()
    )
    assert json.loads(current) == json.loads(stored), "shared/models.py changed without a migration (aerich migrate)"
