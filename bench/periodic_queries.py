"""What one tick of the aggregator's periodic queries reads, before and after their partial indexes.

Every aggregator runs the deadline sweeper and the outbox relay (jobs, quote events, complete
events) every ``OSAGO_RELAY_INTERVAL_S`` (1 s). On a private database with 1,000,000 quotes
(100,000 applications × 10, filled by generate_series), all final and published but a few
hundred (the rows each query is there to find), each query runs as the service runs it: a
prepared statement (asyncpg keeps one per connection) executed five times, so that PostgreSQL
has settled on its plan (custom or generic), then ``EXPLAIN (ANALYZE, BUFFERS)`` of the next
executions gives its plan, the 8 KiB buffers and the rows it read, and its time:

- before: the schema at migration 1 (aerich, migrations 0 and 1) and the queries of the
  revision before the partial indexes (the SQL its Tortoise querysets generated, captured with
  ``QuerySet.sql()``; the job relay was raw SQL already);
- after: the same database brought to migration 2 by ``osago-admin migrate``'s ``migrate``
  (its duration on these rows is reported), and today's queries, the module constants of
  ``aggregator_api.deadlines`` and ``aggregator_api.outbox``.

The rows found (per query, at most the batch of 500):

- sweeper: 100 pending applications past their deadline, 3 pending quotes each (300);
- relay jobs: 100 pending applications within their deadline, 2 of 10 jobs unpublished (200),
  and the 1,000 quotes of 100 applications whose jobs never reached the broker and which the
  sweeper ended (an outage): no longer pending, nothing to relay;
- relay quote events: 100 complete applications, 3 final events unpublished each (300);
- relay complete events: the same 100 applications' complete events.

``FOR UPDATE`` queries run in a transaction rolled back after each execution. JSON on stdout;
the plans, the table, the machine and the command on stderr (as ``bench.loadgen``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aerich import Command

from aggregator_api import deadlines, outbox
from aggregator_api.admin import MIGRATIONS_DIR, migrate
from bench.infra import POSTGRES_URL, private_infrastructure
from bench.machine import describe
from shared.intake.schema import parse_application
from shared.platform.db import create_database_if_missing, tortoise_config
from shared.platform.settings import Settings
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS, sample_application

COMMAND = "python -m bench.periodic_queries"
QUOTES_PER_APPLICATION = 10
FOUND = 100  # applications in each group the queries are there to find
OUTAGE = 100  # applications whose jobs never reached the broker (ended by the sweeper)
WARM_UP = 5  # executions before PostgreSQL settles on a prepared statement's plan
RUNS = 3  # measured executions (median time; the buffers and rows of the last)
OLD_SETTLE = timedelta(seconds=2)

# The revision before: the sweeper's, the quote event relay's and the complete event relay's
# Tortoise querysets as SQL (QuerySet.sql()), and the job relay's raw SQL. The quote event
# relay then read the offers of the quotes it found in a second query (BEFORE_OFFERS, its
# figures added to the first's); today's reads them in the same statement.
BEFORE_OFFERS = (
    'SELECT "quote_id","application_id","valid_until","insurer_reference","created_at","insurer_code",'
    '"coefficients","premium_kopecks","id" FROM "offer" WHERE "quote_id" IN ({placeholders})'
)
BEFORE = {
    "sweeper": (
        'SELECT "quote"."id" "0" FROM "quote" LEFT OUTER JOIN "application" "quote__application" '
        'ON "quote__application"."id"="quote"."application_id" '
        'WHERE "quote"."status"=$1 AND "quote__application"."deadline"<$2 LIMIT $3',
        lambda cutoff, settle_cutoff: ["pending", cutoff, deadlines.SWEEP_BATCH],
    ),
    "relay jobs": (
        """
        SELECT q.id, q.application_id, q.insurer_code, a.deadline
        FROM quote q JOIN application a ON a.id = q.application_id
        WHERE NOT q.job_published AND q.status = 'pending' AND q.created_at < $1 AND a.deadline > now()
        ORDER BY q.created_at
        LIMIT $2
        FOR UPDATE OF q SKIP LOCKED
        """,
        lambda cutoff, settle_cutoff: [settle_cutoff, outbox.BATCH],
    ),
    "relay quote events": (
        'SELECT "job_published","insurer_name","application_id","created_at","insurer_code","status",'
        '"event_published","reason","attempts","last_error","finished_at","id" FROM "quote" '
        'WHERE "event_published"=$1 AND "finished_at"<$2 AND NOT "status"=$3 ORDER BY "finished_at" ASC '
        "LIMIT $4 FOR UPDATE SKIP LOCKED",
        lambda cutoff, settle_cutoff: [False, settle_cutoff, "pending", outbox.BATCH],
    ),
    "relay complete events": (
        'SELECT "request_fingerprint","plate","region_code","created_at","partner_id","pending_quotes","vin",'
        '"status","complete_event_published","client_scope","deadline","idempotency_key","completed_at","id",'
        '"payload" FROM "application" WHERE "status"=$1 AND "complete_event_published"=$2 AND "completed_at"<$3 '
        "LIMIT $4 FOR UPDATE SKIP LOCKED",
        lambda cutoff, settle_cutoff: ["complete", False, settle_cutoff, outbox.BATCH],
    ),
}
AFTER = {
    "sweeper": (deadlines.OVERDUE_QUOTES, lambda cutoff, settle_cutoff: [cutoff, deadlines.SWEEP_BATCH]),
    "relay jobs": (outbox.JOBS_TO_RELAY, lambda cutoff, settle_cutoff: [settle_cutoff, outbox.BATCH]),
    "relay quote events": (outbox.QUOTE_EVENTS_TO_RELAY, lambda cutoff, settle_cutoff: [settle_cutoff, outbox.BATCH]),
    "relay complete events": (
        outbox.COMPLETE_EVENTS_TO_RELAY,
        lambda cutoff, settle_cutoff: [settle_cutoff, outbox.BATCH],
    ),
}
# The indexes each state has for these queries.
INDEXES = {
    "before": ["idx_application_status_23e82e", "idx_quote_job_pub_dd90fa", "idx_quote_event_p_d1d277"],
    "after": [
        "idx_application_pending_deadline",
        "idx_quote_job_unpublished",
        "idx_quote_event_unpublished",
        "idx_application_complete_unpublished",
    ],
}

# Application n (1..N) by group: the last 4 × FOUND are the ones the queries find.
#   n <= N - 3F   complete, everything published (n in OUTAGE_FROM..: jobs never published)
#   N - 3F < n <= N - 2F   complete, complete event and 3 quote events unpublished
#   N - 2F < n <= N - F    pending, past its deadline, 3 quotes still pending
#   N - F < n              pending, within its deadline, 10 quotes pending, 2 jobs unpublished
_GROUPS = """
INSERT INTO fill (n, id, grp, outage, created)
SELECT n, md5('application:' || n)::uuid,
       CASE WHEN n <= $1 - 3 * $2 THEN 'done' WHEN n <= $1 - 2 * $2 THEN 'unpublished'
            WHEN n <= $1 - $2 THEN 'overdue' ELSE 'open' END,
       n BETWEEN $1 / 2 AND $1 / 2 + $3 - 1,
       CASE WHEN n <= $1 - 2 * $2 THEN $4::timestamptz - interval '1 hour' - ($1 - n) * interval '500 ms'
            WHEN n <= $1 - $2 THEN $4::timestamptz - interval '90 s'
            ELSE $4::timestamptz - interval '10 s' END
FROM generate_series(1, $1::int) n
"""
_APPLICATIONS = """
INSERT INTO application (id, status, client_scope, request_fingerprint, payload, vin, plate, region_code,
                         deadline, created_at, completed_at, complete_event_published, pending_quotes)
SELECT id, CASE WHEN grp IN ('done', 'unpublished') THEN 'complete' ELSE 'pending' END,
       'service', md5(n::text) || md5(n::text), $1::jsonb, 'XW7BF4FK60S123456', 'А123ВС777', '77',
       CASE grp WHEN 'open' THEN $2::timestamptz + interval '1 hour' WHEN 'overdue' THEN $2::timestamptz - interval '30 s'
                ELSE created + interval '60 s' END,
       created,
       CASE WHEN grp IN ('done', 'unpublished') THEN created + interval '5 s' END,
       grp = 'done',
       CASE grp WHEN 'overdue' THEN 3 WHEN 'open' THEN 10 ELSE 0 END
FROM fill
"""
_QUOTES = """
INSERT INTO quote (id, application_id, insurer_code, insurer_name, status, reason, attempts, job_published,
                   event_published, created_at, finished_at)
SELECT md5('quote:' || f.n || ':' || k)::uuid, f.id, 'insurer' || k, 'Insurer ' || k, s.status,
       CASE WHEN s.status IN ('pending', 'offered') THEN NULL ELSE 'the insurer said so' END,
       CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END,
       NOT (f.outage OR (f.grp = 'open' AND k <= 2)),
       NOT (s.status = 'pending' OR (f.grp = 'unpublished' AND k <= 3)),
       f.created,
       CASE WHEN s.status <> 'pending' THEN f.created + k * interval '300 ms' END
FROM fill f CROSS JOIN generate_series(1, $1) k
CROSS JOIN LATERAL (SELECT CASE
    WHEN f.grp = 'open' OR (f.grp = 'overdue' AND k <= 3) THEN 'pending'
    WHEN f.outage THEN 'timed_out'
    WHEN k <= 6 THEN 'offered' WHEN k <= 8 THEN 'declined' WHEN k = 9 THEN 'unavailable' ELSE 'timed_out'
END AS status) s
"""
_OFFERS = """
INSERT INTO offer (id, quote_id, application_id, insurer_code, premium_kopecks, coefficients, insurer_reference,
                   valid_until, created_at)
SELECT md5('offer:' || q.id)::uuid, q.id, q.application_id, q.insurer_code, 944180, $1::jsonb, 'REF-' || q.id,
       q.finished_at + interval '3 days', q.finished_at
FROM quote q WHERE q.status = 'offered'
"""


def _literal(value: Any) -> str:
    """A parameter of EXECUTE, written out (EXECUTE takes no bind parameters)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _rows_read(node: dict[str, Any]) -> int:
    """Rows the scans of a plan read: returned plus filtered out, over every loop."""
    own = 0
    # A bitmap heap scan's rows are its index scan's, rechecked: count the heap's only.
    if "Scan" in node["Node Type"] and node["Node Type"] != "Bitmap Index Scan":
        per_loop = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        per_loop += node.get("Rows Removed by Index Recheck", 0)
        own = round(per_loop * node.get("Actual Loops", 1))
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def _shortened(line: str, limit: int = 160) -> str:
    """A plan line cut short (the second query of the quote event relay lists 300 ids)."""
    return line if len(line) <= limit else line[: limit - 1] + "…"


async def _rolled_back(conn: asyncpg.Connection, statement: str) -> list[asyncpg.Record]:
    """One execution in a transaction of its own, rolled back: its row locks go with it."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        return list(await conn.fetch(statement))
    finally:
        await transaction.rollback()


async def _explain(conn: asyncpg.Connection, name: str, sql: str, params: list[Any]) -> dict[str, Any]:
    await conn.execute(f"PREPARE {name} AS {sql}")
    execute = f"EXECUTE {name}({', '.join(_literal(p) for p in params)})"
    for _ in range(WARM_UP):
        await _rolled_back(conn, execute)
    plans = [
        json.loads((await _rolled_back(conn, f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"))[0][0])[0]
        for _ in range(RUNS)
    ]
    text = [_shortened(row[0]) for row in await _rolled_back(conn, f"EXPLAIN (ANALYZE, BUFFERS) {execute}")]
    await conn.execute(f"DEALLOCATE {name}")
    top = plans[-1]["Plan"]
    hit, read = top.get("Shared Hit Blocks", 0), top.get("Shared Read Blocks", 0)
    return {
        "execution_ms": round(statistics.median(plan["Execution Time"] for plan in plans), 3),
        "shared_hit": hit,
        "shared_read": read,
        "buffers": hit + read,
        "rows_read": _rows_read(top),
        "rows_returned": top.get("Actual Rows", 0),
        # A generic plan shows its parameters ($1) where a custom plan shows their values.
        "generic_plan": "$1" in "\n".join(text),
        "plan": text,
    }


def _added(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two statements of one tick as one: their reads and times added, both plans shown."""
    added = {key: first[key] + second[key] for key in ("execution_ms", "shared_hit", "shared_read", "buffers")}
    return {
        **first,
        **added,
        "rows_read": first["rows_read"] + second["rows_read"],
        "plan": [*first["plan"], "(then, for the offers of the quotes found:)", *second["plan"]],
    }


async def _measure(database_url: str, queries: dict[str, Any], now: datetime, settle: timedelta) -> dict[str, Any]:
    cutoff = now - timedelta(seconds=Settings.from_env({}).sweeper_grace_s)
    conn = await asyncpg.connect(database_url)
    try:
        measured = {}
        for n, (name, (sql, params)) in enumerate(queries.items()):
            measured[name] = await _explain(conn, f"periodic_{n}", sql, params(cutoff, now - settle))
        if queries is BEFORE:
            # Its second query, for the offers of the quotes the first found.
            sql, params = queries["relay quote events"]
            found = await conn.fetch(sql, *params(cutoff, now - settle))
            quote_ids = [row["id"] for row in found]
            offers_sql = BEFORE_OFFERS.format(placeholders=",".join(f"${i + 1}" for i in range(len(quote_ids))))
            offers = await _explain(conn, "periodic_offers", offers_sql, quote_ids)
            measured["relay quote events"] = _added(measured["relay quote events"], offers)
        sizes = await conn.fetch(
            "SELECT c.relname, pg_relation_size(c.oid) AS bytes FROM pg_class c WHERE c.relkind = 'i' "
            "AND c.relname = ANY($1::text[])",
            INDEXES["before"] + INDEXES["after"],
        )
    finally:
        await conn.close()
    return {"queries": measured, "index_bytes": {row["relname"]: row["bytes"] for row in sizes}}


async def _upgrade_to_migration_1(database_url: str) -> list[str]:
    """Migrations 0 and 1 only, from a copy of them: the schema before the partial indexes."""
    versions = sorted((MIGRATIONS_DIR / "models").glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_")[0]))
    with tempfile.TemporaryDirectory() as location:
        (Path(location) / "models").mkdir()
        for path in versions[:2]:
            shutil.copy(path, Path(location) / "models" / path.name)
        command = Command(tortoise_config=tortoise_config(database_url), app="models", location=location)
        try:
            await command.init()
            return await command.upgrade(run_in_transaction=True)
        finally:
            await command.aclose()


async def _fill(database_url: str, applications: int, now: datetime) -> dict[str, Any]:
    payload = json.dumps(parse_application(sample_application(), today=date.today()).to_payload(), ensure_ascii=False)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        await conn.execute("CREATE TEMP TABLE fill (n int, id uuid, grp text, outage bool, created timestamptz)")
        await conn.execute(_GROUPS, applications, FOUND, OUTAGE, now)
        await conn.execute(_APPLICATIONS, payload, now)
        await conn.execute(_QUOTES, QUOTES_PER_APPLICATION)
        await conn.execute(_OFFERS, json.dumps(WORKED_EXAMPLE_COEFFICIENTS))
        filled_s = time.monotonic() - started
        await conn.execute("VACUUM (ANALYZE) application, quote, offer")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM application) AS applications, (SELECT count(*) FROM quote) AS quotes, "
            "(SELECT count(*) FROM offer) AS offers, "
            "(SELECT count(*) FROM quote WHERE status = 'pending') AS pending_quotes, "
            "(SELECT count(*) FROM quote WHERE NOT job_published) AS unpublished_jobs, "
            "(SELECT count(*) FROM quote WHERE status <> 'pending' AND NOT event_published) AS unpublished_events, "
            "(SELECT count(*) FROM application WHERE status = 'complete' AND NOT complete_event_published) "
            "AS unpublished_completes, "
            "pg_size_pretty(pg_total_relation_size('application')) AS application_size, "
            "pg_size_pretty(pg_total_relation_size('quote')) AS quote_size"
        )
    finally:
        await conn.close()
    return {
        **dict(counts),
        "fill_s": round(filled_s, 1),
        "vacuum_analyze_s": round(time.monotonic() - started - filled_s, 1),
    }


async def run(applications: int = 100_000) -> dict[str, Any]:
    settings = Settings.from_env({})
    now = datetime.now(UTC)
    async with private_infrastructure("periodic", schema=False) as infra:
        await create_database_if_missing(infra.database_url)
        await asyncio.create_task(_upgrade_to_migration_1(infra.database_url), context=contextvars.Context())
        rows = await _fill(infra.database_url, applications, now)
        before = await _measure(infra.database_url, BEFORE, now, OLD_SETTLE)
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            applied = await migrate(infra.settings())
        migration_s = time.monotonic() - started
        after = await _measure(infra.database_url, AFTER, now, outbox.settle_time(settings.publish_timeout_s))
    return {
        "command": COMMAND + ("" if applications == 100_000 else f" --applications {applications}"),
        "machine": await describe(POSTGRES_URL),
        "rows": rows,
        "migration": {"applied": applied, "seconds": round(migration_s, 2)},
        "before": before,
        "after": after,
    }


def print_report(result: dict[str, Any], out: Any = sys.stderr) -> None:
    for state in ("before", "after"):
        for name, measured in result[state]["queries"].items():
            print(f"\n--- {name}, {state} ---", file=out)
            for line in measured["plan"]:
                print(f"  {line}", file=out)
    rows = result["rows"]
    print(
        f"\n{rows['applications']:,} applications, {rows['quotes']:,} quotes ({rows['quote_size']}), "
        f"{rows['offers']:,} offers; pending quotes {rows['pending_quotes']}, unpublished jobs "
        f"{rows['unpublished_jobs']}, unpublished quote events {rows['unpublished_events']}, unpublished "
        f"complete events {rows['unpublished_completes']}. Migration 2 on these rows: "
        f"{result['migration']['seconds']} s.",
        file=out,
    )
    # Buffers: 8 KiB pages hit or read, each time (a page read twice counts twice).
    header = ("query", "before: buffers", "rows read", "ms", "after: buffers", "rows read", "ms", "rows found")
    table = [header]
    for name in AFTER:
        b, a = result["before"]["queries"][name], result["after"]["queries"][name]
        table.append(
            (
                name,
                f"{b['buffers']:,}",
                f"{b['rows_read']:,}",
                f"{b['execution_ms']:.2f}",
                f"{a['buffers']:,}",
                f"{a['rows_read']:,}",
                f"{a['execution_ms']:.2f}",
                f"{a['rows_returned']:,}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print("", file=out)
    for n, row in enumerate(table):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
    sizes = {**result["before"]["index_bytes"], **result["after"]["index_bytes"]}
    print("\nindexes: " + ", ".join(f"{name} {sizes[name] // 1024:,} KiB" for name in sizes), file=out)
    machine = result["machine"]
    print(
        f"\n{machine['cpu_model']} × {machine['cores']} cores, {machine['memory_gib']} GiB; "
        f"PostgreSQL {machine['postgresql']}; asyncpg {machine['asyncpg']}; commit {machine['commit']}",
        file=out,
    )
    print(f"reproduce: .venv/bin/{result['command']}", file=out)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--applications", type=int, default=100_000, help="10 quotes each (default 100000)")
    args = parser.parse_args()
    if args.applications < 10 * FOUND:
        parser.error(f"--applications must be at least {10 * FOUND}")
    result = asyncio.run(run(args.applications))
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print_report(result)


if __name__ == "__main__":
    main()
