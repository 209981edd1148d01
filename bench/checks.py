"""After a run: what the database says (every quote final, before its deadline)."""

from __future__ import annotations

from typing import Any

import asyncpg


async def database_outcome(database_url: str, application_ids: list[str] | None = None) -> dict[str, Any]:
    """Counts over every application, or over ``application_ids`` only."""
    conn = await asyncpg.connect(database_url)
    only = "($1::uuid[] IS NULL OR {col} = ANY($1::uuid[]))"
    args = [application_ids]
    try:
        apps = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'complete') AS complete FROM application "
            f"WHERE {only.format(col='id')}",
            *args,
        )
        statuses = await conn.fetch(
            f"SELECT status, count(*) FROM quote WHERE {only.format(col='application_id')} GROUP BY status ORDER BY status",
            *args,
        )
        late = await conn.fetchval(
            "SELECT count(*) FROM quote q JOIN application a ON a.id = q.application_id "
            f"WHERE (q.finished_at IS NULL OR q.finished_at > a.deadline) AND {only.format(col='q.application_id')}",
            *args,
        )
        unpublished = await conn.fetchval(
            f"SELECT count(*) FROM quote WHERE (NOT job_published OR (status <> 'pending' AND NOT event_published)) AND {only.format(col='application_id')}",
            *args,
        )
        return {
            "applications": apps["total"],
            "applications_complete": apps["complete"],
            "quotes_by_status": {row[0]: row[1] for row in statuses},
            "quotes_not_final_before_deadline": late,
            "quotes_left_to_outbox": unpublished,
        }
    finally:
        await conn.close()


def every_quote_final_in_time(outcome: dict[str, Any]) -> bool:
    return (
        outcome["applications"] == outcome["applications_complete"]
        and outcome["quotes_not_final_before_deadline"] == 0
        and set(outcome["quotes_by_status"]) <= {"offered", "declined"}
    )
