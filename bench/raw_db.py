"""3b. PostgreSQL's own limit on this machine for our rows, and what our ORM code costs.

On a private database with the real schema (aerich migrations), ten concurrent tasks
over a pool of ten connections (``OSAGO_DB_POOL_MAX``'s default), each statement in
its own transaction, as in the pipeline:

- ``asyncpg_insert_quote``: single-row INSERT of a quote row, plain asyncpg;
- ``tortoise_insert_quote``: the same row through ``Quote.create`` (Tortoise ORM);
- ``aggregator_store_application``: what the aggregator stores per application,
  ``aggregator_api.applications.store_application`` (the application and its 10 quotes in
  one INSERT … unnest statement);
- ``worker_db_path_today``: what a worker does per quote besides the insurer call: the read
  (``shared.quoting.outcomes.quote_state`` with the payload, as on a first delivery),
  ``shared.quoting.outcomes.finalize_quote`` (one statement) and ``shared.quoting.publishing.mark_events_published`` (one per
  quote here; the worker batches them, ``shared.quoting.publishing``), with the ten quotes of an
  application finishing together (fixed sandbox latency), as in the pipeline ("contended"),
  and one quote per application at a time ("spread"), to separate row-lock queueing from
  ORM cost.

Older revisions' figures come from their own services (``--before`` of ``bench.throughput``
and ``bench.overhead``), not from copies of their functions here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from aggregator_api.applications import Caller, store_application
from bench.infra import private_infrastructure
from bench.loadgen import sample_body
from bench.system import CpuMeter, own_pid
from shared.intake.schema import parse_application
from shared.models import Quote
from shared.platform.clock import utc_now
from shared.platform.db import database
from shared.quoting import insurers as catalogue
from shared.quoting.outcomes import OfferOutcome, finalize_quote, quote_state
from shared.quoting.publishing import mark_events_published
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS

CONCURRENCY = 10

INSERT_QUOTE = (
    "INSERT INTO quote (id, application_id, insurer_code, insurer_name, status, attempts, job_published, "
    "event_published, created_at) VALUES ($1, $2, $3, $4, $5, 0, false, false, now())"
)


async def _concurrently(items: list[Any], action: Callable[[Any], Awaitable[None]]) -> float:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await action(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def _insert_applications(conn: asyncpg.Connection, count: int, payload: dict[str, Any]) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    deadline = utc_now() + timedelta(hours=1)
    await conn.executemany(
        "INSERT INTO application (id, status, client_scope, request_fingerprint, payload, region_code, deadline, "
        "created_at, complete_event_published) VALUES ($1, 'pending', 'service', 'x', $2, '77', $3, now(), false)",
        [(i, json.dumps(payload), deadline) for i in ids],
    )
    return ids


def _measure(name: str, count: int, seconds: float, cpu: dict[str, Any], unit: str = "rows") -> dict[str, Any]:
    return {"name": name, unit: count, "per_s": round(count / seconds), "cpu": cpu}


async def run(rows: int = 10_000) -> dict[str, Any]:
    payload = parse_application(sample_body(0), today=date.today()).to_payload()
    insurers = catalogue.CATALOGUE
    results: list[dict[str, Any]] = []
    async with private_infrastructure("db") as infra:
        meter = CpuMeter({"client (bench)": [own_pid()]})
        pool = await asyncpg.create_pool(infra.database_url, min_size=CONCURRENCY, max_size=CONCURRENCY)
        try:
            async with pool.acquire() as conn:
                parents = await _insert_applications(conn, rows // 10 + 1, payload)

            async def raw_insert(n: int) -> None:
                await pool.execute(INSERT_QUOTE, uuid.uuid4(), parents[n // 10], f"r{n % 10}", "Raw", "pending")

            meter.start()
            elapsed = await _concurrently(list(range(rows)), raw_insert)
            results.append(_measure("asyncpg_insert_quote", rows, elapsed, meter.stop()))
        finally:
            await pool.close()

        async with database(infra.settings(db_pool_max=CONCURRENCY)):

            async def orm_insert(n: int) -> None:
                await Quote.create(
                    id=uuid.uuid4(), application_id=parents[n // 10], insurer_code=f"t{n % 10}", insurer_name="ORM"
                )

            meter.start()
            elapsed = await _concurrently(list(range(rows)), orm_insert)
            results.append(_measure("tortoise_insert_quote", rows, elapsed, meter.stop()))

            # What the aggregator stores per application, with the function it calls (the job
            # marks that follow the broker's confirms are batched there, so they are not per application).
            created: list[tuple[uuid.UUID, list[uuid.UUID]]] = []
            caller = Caller("service", None)

            async def create_application(_: int) -> None:
                application_id = uuid.uuid4()
                quotes = [
                    Quote(id=uuid.uuid4(), application_id=application_id, insurer_code=i.code, insurer_name=i.name)
                    for i in insurers
                ]
                deadline = utc_now() + timedelta(hours=1)
                await store_application(application_id, caller, None, "x" * 64, payload, deadline, quotes)
                created.append((application_id, [q.id for q in quotes]))

            apps = rows // 10
            meter.start()
            elapsed = await _concurrently(list(range(apps)), create_application)
            results.append(_measure("aggregator_store_application", apps, elapsed, meter.stop(), "applications"))

            outcome = OfferOutcome(
                Decimal("9441.80"), WORKED_EXAMPLE_COEFFICIENTS, "BENCH-1", utc_now() + timedelta(days=3)
            )
            half = len(created) // 2
            parts = [created[:half], created[half : 2 * half]]
            # Contended: the ten quotes of an application finish together (fixed sandbox latency),
            # so they queue on the application's row lock. Spread: one quote per application at a time.
            contended = lambda part: [q for _, ids in part for q in ids]  # noqa: E731
            spread = lambda part: [ids[k] for k in range(10) for _, ids in part]  # noqa: E731

            async def worker_path(quote_id: uuid.UUID) -> None:
                state = await quote_state(quote_id, with_payload=True)
                assert state is not None and state.payload
                result = await finalize_quote(quote_id, outcome, attempts=1)
                await mark_events_published(result.events)

            for label, quotes in (("contended", contended(parts[0])), ("spread", spread(parts[1]))):
                meter.start()
                elapsed = await _concurrently(quotes, worker_path)
                results.append(
                    _measure(f"worker_db_path_today ({label})", len(quotes), elapsed, meter.stop(), "quotes")
                )
    return {"concurrency": CONCURRENCY, "pool": CONCURRENCY, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.raw_db", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.rows)), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
