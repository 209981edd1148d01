"""Personal data is kept ``OSAGO_RETENTION_DAYS`` (30 by default; 0 keeps it forever), then erased.

An application older than that keeps what statistics need and nothing that names a person
or a car: its payload is cut down to the vehicle's category, year and power, the owner's
region code, the number of drivers (or unlimited), the policy's start date and months;
``vin``, ``plate``, ``idempotency_key`` and ``request_fingerprint`` become NULL (the key's
window is the retention: the contract keeps keys at least 24 h; NULL keys never collide in
the unique constraint on ``(client_scope, idempotency_key)``, so a client may use the key
again). Its statuses, quotes, offers, premiums, insurer codes, region column and dates stay,
so ``GET`` and the offers socket still answer it (they never read the payload).

Workers read the payload only to price a pending quote. Only applications whose deadline
is also past the cutoff are erased: by then the sweeper has long closed every quote, and a
stray job past its deadline is never priced (the worker checks the time before asking).

Every aggregator instance runs this every ``OSAGO_RETENTION_INTERVAL_S``. Each batch is one
statement that locks the rows it takes with ``SKIP LOCKED`` and erases only rows not erased
yet, so instances running it at once split the work, never wait for each other (no
deadlock can involve a statement that never waits) and erase every application once.
``FOR NO KEY UPDATE`` leaves foreign-key checks of quote and offer writes unblocked.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from tortoise import Tortoise

from shared.platform.clock import utc_now

log = logging.getLogger(__name__)

ERASE_BATCH_SIZE = 500

# The predicate "erased_at IS NULL" repeats idx_application_unerased_created's word for word,
# so the oldest applications not erased yet are read from that index. $1 the cutoff, $2 the
# batch size, $3 the time of the erasure.
ERASE_BATCH = """
WITH due AS (
    SELECT id FROM application
    WHERE erased_at IS NULL AND created_at < $1 AND deadline < $1
    ORDER BY created_at
    LIMIT $2
    FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE application a
SET payload = jsonb_build_object(
        'vehicle', jsonb_build_object(
            'category', a.payload #> '{vehicle,category}',
            'year', a.payload #> '{vehicle,year}',
            'power_hp', a.payload #> '{vehicle,power_hp}'
        ),
        'owner', jsonb_build_object(
            'registration', jsonb_build_object('region_code', a.payload #> '{owner,registration,region_code}')
        ),
        'unlimited_drivers', a.payload -> 'unlimited_drivers',
        'drivers_count', CASE WHEN jsonb_typeof(a.payload -> 'drivers') = 'array'
                              THEN jsonb_array_length(a.payload -> 'drivers') ELSE 0 END,
        'period', jsonb_build_object(
            'start_date', a.payload #> '{period,start_date}',
            'months', a.payload #> '{period,months}'
        )
    ),
    vin = NULL,
    plate = NULL,
    idempotency_key = NULL,
    request_fingerprint = NULL,
    erased_at = $3
FROM due
WHERE a.id = due.id
RETURNING a.id
"""


async def erase_before(cutoff: datetime, *, batch_size: int = ERASE_BATCH_SIZE) -> list[uuid.UUID]:
    """Erase every application created (and due) before ``cutoff``, batch by batch; the ids erased here.

    Rows another instance holds are skipped (it erases them); the loop ends at the first
    batch that comes back short.
    """
    connection = Tortoise.get_connection("default")
    erased: list[uuid.UUID] = []
    while True:
        _, rows = await connection.execute_query(ERASE_BATCH, [cutoff, batch_size, utc_now()])
        erased.extend(row["id"] for row in rows)
        if len(rows) < batch_size:
            return erased


async def erase_past_retention(retention_days: int, *, now: datetime | None = None) -> int:
    """One round of the retention job: how many applications it erased."""
    cutoff = (now or utc_now()) - timedelta(days=retention_days)
    erased = await erase_before(cutoff)
    if erased:
        log.info("personal data erased", extra={"applications": len(erased), "retention_days": retention_days})
    return len(erased)
