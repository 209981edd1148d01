"""``python -m bench [NAME ...]`` (``make bench``): run the benchmarks, print a table, save JSON.

Names: raw_broker, raw_db, periodic_queries, websockets, ws_memory, overhead, throughput, scaling (default:
all, in that order).
Results go to bench/results/bench-<UTC time>.json and bench/results/latest.json.
Each benchmark makes and removes its own database and vhost and its own processes.
Overhead and throughput also run the services of an older revision (``--before REV``, default
BEFORE_REVISION) from a git worktree of it, so before and after come from one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from bench import overhead, periodic_queries, raw_broker, raw_db, scaling, throughput, websockets, ws_memory
from bench.infra import POSTGRES_URL
from bench.machine import describe
from bench.revisions import UnknownRevision, describe_revision, full_sha, source_tree
from bench.system import RESULTS_DIR, raise_fd_limit, wait_for_quiet_machine

# "Before": the last commit before any performance work ("bench: ruff clean (lint and format)").
# Its services run as they were, from a git worktree, against today's schema, broker and venv.
BEFORE_REVISION = "0c36de7"

# Each benchmark, given the before revision (only overhead and throughput use it).
Benchmark = Callable[[str], Coroutine[Any, Any, dict[str, Any]]]
FULL: dict[str, Benchmark] = {
    "raw_broker": lambda _: raw_broker.run(20_000),
    "raw_db": lambda _: raw_db.run(10_000),
    "periodic_queries": lambda _: periodic_queries.run(100_000),
    "websockets": lambda _: websockets.run(10_000, 2_000),
    "ws_memory": lambda _: ws_memory.run(500),
    "overhead": lambda before: _overhead(before),
    "throughput": lambda before: _throughput(before, 10.0, throughput.RATES),
    "scaling": lambda _: scaling.run(),
}
QUICK: dict[str, Benchmark] = {
    "raw_broker": lambda _: raw_broker.run(5_000),
    "raw_db": lambda _: raw_db.run(2_000),
    "periodic_queries": lambda _: periodic_queries.run(10_000),
    "websockets": lambda _: websockets.run(2_000, 300),
    "ws_memory": lambda _: ws_memory.run(200),
    "overhead": lambda before: _overhead(before, duration=8.0),
    "throughput": lambda before: _throughput(before, 6.0, (5.0, 10.0, 20.0)),
    "scaling": lambda _: scaling.run((1, 2), (2.0, 4.0), 4.0, 2.0, 4.0, 2_000),
}


async def _throughput(before: str, step_s: float, rates: tuple[float, ...]) -> dict[str, Any]:
    """The working tree, then every service of the before revision: before/after in one run."""
    today = await throughput.run(step_s, rates)
    today["before"] = await throughput.run(step_s, rates, source=source_tree(before))
    return today


async def _overhead(before: str, duration: float = 20.0) -> dict[str, Any]:
    """At the issue's 50 applications/s, and at a low rate that shows the overhead without queueing;
    the low rate again with the before revision's services."""
    return {
        "at_50_per_s": await overhead.run(50.0, duration),
        "at_5_per_s": await overhead.run(5.0, duration),
        "at_5_per_s_before": await overhead.run(5.0, duration, source=source_tree(before)),
    }


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if data is None:
            return None
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _db(results: dict[str, Any], name: str) -> Any:
    for row in _get(results, "raw_db", "results") or []:
        if row["name"].startswith(name):
            return row["per_s"]
    return None


def _periodic(results: dict[str, Any], name: str) -> str | None:
    before = _get(results, "periodic_queries", "before", "queries", name)
    after = _get(results, "periodic_queries", "after", "queries", name)
    if not before or not after:
        return None
    return f"{before['buffers']:,} / {before['rows_read']:,} → {after['buffers']:,} / {after['rows_read']:,}"


def rows(results: dict[str, Any]) -> list[tuple[str, Any, str]]:
    publish = _get(results, "raw_broker", "publish_persistent_confirmed_per_s")
    best = _get(results, "throughput", "max_sustained_quotes_per_s")
    ratio = f"{best / publish:.3f}" if publish and best is not None else None
    o50 = _get(results, "overhead", "at_50_per_s", "load")
    o5 = _get(results, "overhead", "at_5_per_s", "load")
    o5b = _get(results, "overhead", "at_5_per_s_before", "load")
    # The sha each before-run recorded itself; the requested one when that run failed.
    requested = _get(results, "before", "revision")
    o5b_sha = _get(results, "overhead", "at_5_per_s_before", "code", "revision") or requested
    throughput_before_sha = _get(results, "throughput", "before", "code", "revision") or requested

    def fmt(s: Any) -> str | None:
        if not s or not s.get("count"):
            return None
        return f"{s['p50_ms']:.0f} / {s['p95_ms']:.0f} / {s['p99_ms']:.0f}"

    kb = lambda b: None if b is None else f"{b / 1000:.1f} KB"  # noqa: E731
    return [
        ("broker: persistent+confirmed publish, msg/s", publish, "6.5–7.3 k"),
        ("broker: acked consume, msg/s", _get(results, "raw_broker", "consume_acked_per_s"), "7.7 k"),
        (
            "broker: publish+consume together, msg/s",
            _get(results, "raw_broker", "publish_and_consume_together_per_s"),
            "",
        ),
        ("postgres: single-row insert (asyncpg), rows/s", _db(results, "asyncpg_insert_quote"), "7 k"),
        ("postgres: single-row insert (Tortoise), rows/s", _db(results, "tortoise_insert_quote"), "5 k"),
        (
            "postgres: aggregator store_application (one statement), apps/s",
            _db(results, "aggregator_store_application"),
            "",
        ),
        ("postgres: worker DB path today (contended), quotes/s", _db(results, "worker_db_path_today (contended)"), ""),
        *(
            (f"periodic query: {name}, buffers / rows read, before → after", _periodic(results, name), "")
            for name in periodic_queries.AFTER
        ),
        (
            "aiohttp bare: WS messages/s, one process",
            _get(results, "websockets", "raw_aiohttp", "messages_per_s"),
            "7 k",
        ),
        (
            "aiohttp bare: RSS per idle socket",
            kb(_get(results, "websockets", "raw_aiohttp", "rss_per_socket_bytes")),
            "15.5 KB",
        ),
        ("core app: idle sockets held", _get(results, "websockets", "core_app", "sockets_held"), "10 000"),
        (
            "core app: RSS per idle socket",
            kb(_get(results, "websockets", "core_app", "rss_per_socket_bytes")),
            "≤ 20 KB",
        ),
        (
            "core app: traced heap per idle socket (tracemalloc)",
            kb(_get(results, "ws_memory", "traced_bytes_per_socket")),
            "",
        ),
        ("core app: socket connects/s", _get(results, "websockets", "core_app", "connect_per_s"), ""),
        (
            "core app: fan-out, socket messages/s",
            _get(results, "websockets", "core_app", "fanout", "socket_messages_per_s"),
            "≥ 5 000",
        ),
        (
            "core app: publish→client p50/p95/p99 ms",
            fmt(_get(results, "websockets", "core_app", "publish_to_client_latency")),
            "",
        ),
        ("overhead @50/s: first offer p50/p95/p99 ms", fmt(_get(o50, "overhead_first_offer_ms")), "p99 ≤ 15"),
        ("overhead @50/s: complete p50/p95/p99 ms", fmt(_get(o50, "overhead_complete_ms")), "p99 ≤ 15"),
        (
            "overhead @50/s: completed / sent",
            None if not o50 else f"{o50['counts'].get('complete', 0)} / {o50['counts'].get('sent', 0)}",
            "",
        ),
        ("overhead @5/s: first offer p50/p95/p99 ms", fmt(_get(o5, "overhead_first_offer_ms")), ""),
        ("overhead @5/s: complete p50/p95/p99 ms", fmt(_get(o5, "overhead_complete_ms")), ""),
        (f"overhead @5/s, before ({o5b_sha}): complete p50/p95/p99 ms", fmt(_get(o5b, "overhead_complete_ms")), ""),
        (
            "throughput: max sustained applications/s (10 insurers)",
            _get(results, "throughput", "max_sustained_applications_per_s"),
            "≥ 150",
        ),
        ("throughput: quotes/s ÷ raw confirmed publish", ratio, "≥ 0.2"),
        (
            f"throughput, before ({throughput_before_sha}): max applications/s",
            _get(results, "throughput", "before", "max_sustained_applications_per_s"),
            "",
        ),
    ]


def scaling_rows(results: dict[str, Any]) -> list[tuple[str, Any, str]]:
    found: list[tuple[str, Any, str]] = []
    for layout in _get(results, "scaling", "layouts") or []:
        n = layout["core_apps"]
        limit = layout["broker_limit"]["publish_persistent_confirmed_per_s"]
        per_offer = layout["events"]["received_per_offer_per_core_app"]
        found.append((f"scaling, {n} core apps: broker limit (tuned confirmed publish), msg/s", limit, ""))
        found.append((f"scaling, {n} core apps: events received per core app per offer", per_offer, ""))
        for key, name in (("through_balancer", "balancer"), ("straight_to_instances", "straight")):
            figure = layout[key]
            found.append(
                (
                    f"scaling, {n} core apps, {name}: max applications/s (quotes/s ÷ limit)",
                    f"{figure['max_sustained_applications_per_s']:g} ({figure['quotes_per_s_over_broker_limit']})",
                    "",
                )
            )
    return found


def print_table(results: dict[str, Any]) -> None:
    every = rows(results) + scaling_rows(results)
    table = [(name, "—" if value is None else str(value), target) for name, value, target in every]
    width = max(len(r[0]) for r in table)
    vwidth = max(len(r[1]) for r in table)
    print(f"\n{'figure':<{width}}  {'measured':>{vwidth}}  target")
    print(f"{'-' * width}  {'-' * vwidth}  ------")
    for name, value, target in table:
        print(f"{name:<{width}}  {value:>{vwidth}}  {target}")
    machine = results.get("machine", {})
    print(
        f"\n{machine.get('cpu_model')} × {machine.get('cores')} cores, {machine.get('memory_gib')} GiB; "
        f"Python {machine.get('python')}, RabbitMQ {machine.get('rabbitmq')}, PostgreSQL {machine.get('postgresql')}; "
        f"aiohttp {machine.get('aiohttp')}, aio-pika {machine.get('aio-pika')}, tortoise-orm {machine.get('tortoise-orm')}; "
        f"commit {machine.get('commit')}"
    )


async def main_async(names: list[str], quick: bool, before: str) -> dict[str, Any]:
    raise_fd_limit()
    results: dict[str, Any] = {
        "machine": await describe(POSTGRES_URL),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        # The code overhead's and throughput's "before" figures ran (the working tree is "after").
        "before": describe_revision(before),
        "background_busy_before": {},
        "seconds": {},
    }
    for name in names:
        results["background_busy_before"][name] = await wait_for_quiet_machine(max_wait_s=60)
        print(f"[bench] {name} …", file=sys.stderr)
        started = time.monotonic()
        # Each benchmark in a process of its own: no ORM or loop state carried from one to the next.
        out = RESULTS_DIR / f".{name}.json"
        argv = [sys.executable, "-m", "bench", "--one", name, "--output", str(out), "--before", before]
        argv += ["--quick"] if quick else []
        process = await asyncio.create_subprocess_exec(*argv)
        code = await process.wait()
        if code == 0 and out.exists():
            results[name] = json.loads(out.read_text())
            out.unlink()
        else:  # one broken benchmark must not hide the others' figures
            results[name] = {"error": f"exited with {code}"}
            print(f"[bench] {name} failed (exit {code})", file=sys.stderr)
        results["seconds"][name] = round(time.monotonic() - started, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", default=[], metavar="NAME", help=", ".join(FULL))
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter steps (a smoke run)")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/bench-<time>.json)")
    parser.add_argument(
        "--before",
        metavar="REV",
        default=BEFORE_REVISION,
        help=f"the revision whose services give the before figures (default {BEFORE_REVISION})",
    )
    parser.add_argument(
        "--broker",
        metavar="HOST:PORT[,MANAGEMENT_URL]",
        default=None,
        help="the RabbitMQ node the benchmarks use (e.g. one of a three-node cluster); default 127.0.0.1:5672",
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.broker:
        # Read by tests.support.infrastructure in each benchmark's own process (started below).
        host, _, management = args.broker.partition(",")
        os.environ["OSAGO_TEST_AMQP_HOST"] = host
        if management:
            os.environ["OSAGO_TEST_RABBITMQ_MANAGEMENT"] = management
    try:
        # An unknown revision fails here at once, not after minutes of other benchmarks.
        full_sha(args.before)
    except UnknownRevision as exc:
        parser.error(str(exc))
    if args.one:
        raise_fd_limit()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        result = asyncio.run((QUICK if args.quick else FULL)[args.one](args.before))
        with open(args.output, "w") as out:
            json.dump(result, out, ensure_ascii=False)
        return
    names = args.names or list(FULL)
    unknown = [n for n in names if n not in FULL]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(FULL)}")
    results = asyncio.run(main_async(names, args.quick, args.before))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.output or str(RESULTS_DIR / f"bench-{stamp}.json")
    text = json.dumps(results, indent=2, ensure_ascii=False)
    with open(path, "w") as out:
        out.write(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    print_table(results)
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
