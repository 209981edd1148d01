"""1. Our overhead: time to first offer and to `complete`, minus the sandbox's fixed latency.

Steady open-loop arrivals (50 applications/s by default) against the `make run` layout
with every insurer answering after exactly ``latency_ms``; what remains is ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench.checks import database_outcome
from bench.infra import private_infrastructure
from bench.loadgen import LoadConfig, run_load
from bench.revisions import UnknownRevision, describe_source, source_tree
from bench.system import CpuMeter, own_pid, raise_fd_limit, start_system, stop_system

LATENCY_MS = 200


def pids_of(system: Any) -> dict[str, list[int]]:
    named = {
        "load generator (bench)": [own_pid()],
        "sandbox": [system.sandbox.pid],
        "aggregator": [system.aggregator.pid],
    }
    for service in [*system.workers, *system.cores]:
        named[service.name] = [service.pid]
    return named


async def run(
    rate: float = 50.0, duration: float = 30.0, latency_ms: int = LATENCY_MS, source: Path | None = None
) -> dict[str, Any]:
    """``source``: the services of an older revision (``bench.revisions.source_tree``); None: this tree."""
    raise_fd_limit()
    async with private_infrastructure("overhead") as infra:
        system = await start_system(infra, source=source)
        try:
            await system.set_behaviour({"mode": "ok", "latency_ms": [latency_ms, latency_ms]})
            # Warm-up: connection pools, prepared statements, lazily built state.
            await run_load(LoadConfig(system.core_urls, 10, 3, latency_ms, label="warm-up"))
            meter = CpuMeter(pids_of(system))
            meter.start()
            load = await run_load(LoadConfig(system.core_urls, rate, duration, latency_ms, label="overhead"))
            cpu = meter.stop()
            await asyncio.sleep(0.5)
            outcome = await database_outcome(infra.database_url)
        finally:
            await stop_system(system)
    return {"code": describe_source(source), "load": load.result(), "cpu": cpu, "database": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    parser.add_argument(
        "--before", metavar="REV", default=None, help="run the services of that revision (a git worktree of it)"
    )
    args = parser.parse_args()
    try:
        source = None if args.before is None else source_tree(args.before)
    except UnknownRevision as exc:
        parser.error(str(exc))
    result = asyncio.run(run(args.rate, args.duration, args.latency_ms, source))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
