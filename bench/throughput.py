"""2. Throughput: the highest sustained rate with every quote final before its deadline, and the bottleneck.

Open-loop steps of increasing rate against the `make run` layout (10 insurers, each
answering after a fixed latency). A step is *held* when every application is accepted
and completes, every quote is final (offered) before its deadline, nothing is left to
the outbox, the completion rate keeps up with the arrival rate, and time to complete
does not build up (p99 overhead under a second). Per step: cores used per process
(each service, PostgreSQL, RabbitMQ, the load generator, anything else on the machine).
After the first step that is not held (saturation), one more pass at that rate profiles every
Python service with py-spy; the summary names the top functions by self and inclusive time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.checks import database_outcome
from bench.infra import private_infrastructure
from bench.loadgen import LoadConfig, run_load
from bench.overhead import pids_of
from bench.revisions import UnknownRevision, describe_source, source_tree
from bench.system import CpuMeter, finish_profile, raise_fd_limit, start_profile, start_system, stop_system

LATENCY_MS = 200
RATES = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 45.0, 60.0, 80.0, 100.0, 150.0, 200.0)
MAX_P99_OVERHEAD_MS = 1000.0


def _load_config(core_urls: list[str], rate: float, seconds: float, latency_ms: int, deadline_s: float) -> LoadConfig:
    return LoadConfig(core_urls, rate, seconds, latency_ms, label="throughput", client_timeout_s=deadline_s + 15)


def held(load: dict[str, Any], outcome: dict[str, Any]) -> tuple[bool, list[str]]:
    reasons = []
    counts = load["counts"]
    if load["errors"]:
        reasons.append(f"client errors {load['errors']}")
    if counts.get("complete", 0) < counts.get("sent", 0):
        reasons.append(f"{counts.get('sent', 0) - counts.get('complete', 0)} applications not complete at the client")
    if outcome["quotes_not_final_before_deadline"]:
        reasons.append(f"{outcome['quotes_not_final_before_deadline']} quotes not final before the deadline")
    if set(outcome["quotes_by_status"]) - {"offered"}:
        reasons.append(f"quote statuses {outcome['quotes_by_status']}")
    if outcome["quotes_left_to_outbox"]:
        reasons.append(f"{outcome['quotes_left_to_outbox']} quotes left to the outbox relay")
    if load["achieved_complete_rate_per_s"] < 0.9 * load["offered_rate_per_s"]:
        reasons.append(f"completion rate {load['achieved_complete_rate_per_s']}/s behind arrivals")
    p99 = load["overhead_complete_ms"].get("p99_ms")
    if p99 is None or p99 > MAX_P99_OVERHEAD_MS:
        reasons.append(f"p99 overhead to complete {p99} ms (queues building up)")
    return not reasons, reasons


async def run(
    step_s: float = 12.0,
    rates: tuple[float, ...] = RATES,
    latency_ms: int = LATENCY_MS,
    source: Path | None = None,
) -> dict[str, Any]:
    """``source``: the services of an older revision (``bench.revisions.source_tree``); None: this tree."""
    raise_fd_limit()
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    profiles: dict[str, Any] = {}
    async with private_infrastructure("throughput") as infra:
        system = await start_system(infra, source=source)
        try:
            await system.set_behaviour({"mode": "ok", "latency_ms": [latency_ms, latency_ms]})
            await run_load(LoadConfig(system.core_urls, 10, 3, latency_ms, label="warm-up", client_timeout_s=90))
            for rate in rates:
                meter = CpuMeter(pids_of(system))
                meter.start()
                load = await run_load(_load_config(system.core_urls, rate, step_s, latency_ms, infra.deadline_s))
                cpu = meter.stop()
                await asyncio.sleep(1.0)
                outcome = await database_outcome(infra.database_url, load.application_ids)
                result = load.result()
                ok, reasons = held(result, outcome)
                step = {"rate": rate, "held": ok, "why_not": reasons, "load": result, "cpu": cpu, "database": outcome}
                steps.append(step)
                busiest = ", ".join(f"{k} {v:.2f}" for k, v in list(cpu["cores_used"].items())[:4])
                print(f"[throughput] {rate:g}/s held={ok} busiest: {busiest} {'; '.join(reasons)}", file=sys.stderr)
                if not ok:
                    break
                best = step
            # py-spy costs CPU of its own (0.1-0.3 core for seven processes), so it never runs during a
            # measured step: the profile comes from one more pass at the rate that saturated.
            profile_rate = steps[-1]["rate"]
            profile_s = min(step_s, 10.0)
            started = {
                name: start_profile(pids[0], profile_s, f"throughput-{int(profile_rate)}-{name}")
                for name, pids in pids_of(system).items()
                if name != "load generator (bench)"
            }
            await run_load(_load_config(system.core_urls, profile_rate, profile_s, latency_ms, infra.deadline_s))
            profiles = {
                "rate": profile_rate,
                "saturated": not steps[-1]["held"],
                "processes": {name: await finish_profile(p, profile_s, top=10) for name, p in started.items()},
            }
        finally:
            await stop_system(system)
    return {
        "code": describe_source(source),
        "sandbox_latency_ms": latency_ms,
        "insurers_per_application": 10,
        "step_s": step_s,
        "max_sustained_applications_per_s": best["rate"] if best else 0.0,
        "max_sustained_quotes_per_s": best["rate"] * 10 if best else 0.0,
        "steps": steps,
        "profile": profiles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step-s", type=float, default=12.0)
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    parser.add_argument(
        "--before", metavar="REV", default=None, help="run the services of that revision (a git worktree of it)"
    )
    args = parser.parse_args()
    rates = tuple(float(r) for r in args.rates.split(","))
    try:
        source = None if args.before is None else source_tree(args.before)
    except UnknownRevision as exc:
        parser.error(str(exc))
    print(json.dumps(asyncio.run(run(args.step_s, rates, source=source)), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
