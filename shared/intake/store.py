"""Storing an accepted application: the row and one pending quote per insurer, at once."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError

from shared.intake.caller import PARTNER_HEADER, Caller
from shared.models import Quote
from shared.platform.clock import utc_now
from shared.platform.http_api import ApiError

# The application and its quotes in one statement: atomic without a transaction around it,
# and one round trip instead of four (BEGIN, two INSERTs, COMMIT).
_STORE_APPLICATION = """
WITH stored AS (
    INSERT INTO application (id, status, partner_id, client_scope, idempotency_key, request_fingerprint, payload,
                             vin, plate, region_code, deadline, created_at, complete_event_published, pending_quotes)
    VALUES ($1, 'pending', $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, false, cardinality($12::uuid[]))
    RETURNING id
)
INSERT INTO quote (id, application_id, insurer_code, insurer_name, status, attempts, job_published,
                   event_published, created_at)
SELECT q.id, stored.id, q.code, q.name, 'pending', 0, false, false, $11
FROM stored, unnest($12::uuid[], $13::varchar[], $14::varchar[]) AS q(id, code, name)
"""


async def store_application(
    application_id: uuid.UUID,
    caller: Caller,
    key: str | None,
    body_fingerprint: str,
    payload: dict[str, Any],
    deadline: datetime,
    quotes: list[Quote],
) -> None:
    """Raises ApiError 400 when the caller names a partner that does not exist (the foreign key says
    so in the same statement: no lookup first); IntegrityError for a duplicate Idempotency-Key."""
    vehicle = payload["vehicle"]
    try:
        await _insert(application_id, caller, key, body_fingerprint, payload, vehicle, deadline, quotes)
    except IntegrityError as exc:
        # Only holders of the service token name partners, and the core app names only partners it
        # found: an unknown one is the caller's mistake, not a dependency down (it was a 503 with
        # Retry-After, asking to retry what can never succeed; found by tests/fuzz/).
        if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
            raise ApiError(400, "bad_client_scope", f"{PARTNER_HEADER} names no partner") from None
        raise


async def _insert(
    application_id: uuid.UUID,
    caller: Caller,
    key: str | None,
    body_fingerprint: str,
    payload: dict[str, Any],
    vehicle: dict[str, Any],
    deadline: datetime,
    quotes: list[Quote],
) -> None:
    await Tortoise.get_connection("default").execute_query(
        _STORE_APPLICATION,
        [
            application_id,
            None if caller.partner_id is None else uuid.UUID(caller.partner_id),
            caller.scope,
            key,
            body_fingerprint,
            json.dumps(payload, ensure_ascii=False),
            vehicle.get("vin"),
            vehicle.get("plate"),
            payload["owner"]["registration"]["region_code"],
            deadline,
            utc_now(),
            [q.id for q in quotes],
            [q.insurer_code for q in quotes],
            [q.insurer_name for q in quotes],
        ],
    )
