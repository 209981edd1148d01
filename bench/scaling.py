"""What scaling costs: the cluster layout (``python -m local_cluster run``) with 1, 2 and 4 core apps.

For each count, on a database and vhost of its own and a port offset of its own:

- the broker's limit first (``raw_broker.publish_limit``: a tuned client's confirmed publish of
  job messages), measured right before, so every figure is also given as a share of a limit
  taken under the same load from other processes;
- events received per core app per offer: each core app's ``osago_offer_events_received_total``
  (``/metrics``) over a steady load, divided by the offers the database holds for that load.
  With the plain fanout every core app receives every event, whichever app the socket is on;
- the highest sustained rate (steps of ``bench.throughput``'s kind: every application complete,
  every quote offered before its deadline, no queue building up) twice: through the balancer
  (nginx on 8080 + offset) and round-robin straight to the core apps (8180 + offset + i).

The broker is the tests' (``OSAGO_TEST_AMQP_HOST``, ``OSAGO_TEST_RABBITMQ_MANAGEMENT``):
pointing those at another broker (one node of a three-node cluster with quorum queues, say)
runs the same measurement there (``python -m bench --broker HOST:PORT,MANAGEMENT_URL scaling``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import raw_broker
from bench.checks import database_outcome
from bench.infra import Infrastructure, private_infrastructure
from bench.loadgen import LoadConfig, run_load, set_sandbox_latency
from bench.system import LOG_DIR, CpuMeter, own_pid, raise_fd_limit
from bench.throughput import held
from local_cluster.__main__ import taken_ports
from local_cluster.background import start_runner
from local_cluster.layout import Layout

REPOSITORY = Path(__file__).resolve().parents[1]
CORE_COUNTS = (1, 2, 4)
RATES = (4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0)
LATENCY_MS = 200
INSURERS = 10
RAW_MESSAGES = 10_000
STATUS_LINE = re.compile(r"^(\S+)\s+(\S+)\s+(?:pid (\d+),)?", re.M)
RECEIVED = "osago_offer_events_received_total"
ROUTED = "osago_offer_events_routed_total"


@dataclass
class RunningCluster:
    layout: Layout
    run_dir: Path
    runner: subprocess.Popen[bytes]

    @property
    def balancer_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.core_balancer_port}"

    @property
    def core_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.layout.core_ports]

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.sandbox_port}"

    def status(self) -> dict[str, tuple[str, int | None]]:
        result = subprocess.run(
            [sys.executable, "-m", "local_cluster", "--run-dir", str(self.run_dir), "status"],
            capture_output=True,
            text=True,
            cwd=REPOSITORY,
            check=False,
        )
        return {m[1]: (m[2], int(m[3]) if m[3] else None) for m in STATUS_LINE.finditer(result.stdout)}

    def pids(self) -> dict[str, list[int]]:
        named = {"load generator (bench)": [own_pid()]}
        for name, (_, pid) in self.status().items():
            if pid is not None:
                named[name.rpartition(":")[2]] = [pid]
        return named


def _free_offset(layout_of: Any) -> int:
    while True:
        offset = random.randint(12000, 18000)  # the tests' range: every port outside the ephemeral one
        if not taken_ports(layout_of(offset).all_ports):
            return offset


async def start_cluster(infra: Infrastructure, cores: int, *, aggregators: int = 2, workers: int = 2) -> RunningCluster:
    offset = _free_offset(lambda o: Layout(cores, aggregators, workers, o))
    layout = Layout(cores, aggregators, workers, offset)
    run_dir = Path(tempfile.mkdtemp(prefix="osago-bench-"))  # short: supervisord's unix socket
    env = infra.env(
        OSAGO_CORE_INSTANCES=str(cores),
        OSAGO_AGGREGATOR_INSTANCES=str(aggregators),
        OSAGO_WORKER_INSTANCES=str(workers),
        # The load generator's clients share a few source addresses; the browser quota is not measured.
        OSAGO_BROWSER_RPS="100000",
    )
    env["PATH"] = f"{env.get('PATH', '')}:/usr/sbin:/sbin"  # Debian's nginx
    cluster = RunningCluster(layout, run_dir, start_runner(run_dir, offset, env, LOG_DIR / f"scaling-{cores}.out"))
    try:
        await _wait_ready(cluster, timeout_s=90)
    except BaseException:
        await stop_cluster(cluster)
        raise
    return cluster


async def _wait_ready(cluster: RunningCluster, timeout_s: float) -> None:
    layout = cluster.layout
    expected = 2 + layout.cores + layout.aggregators + layout.workers  # + sandbox and balancer
    urls = [cluster.balancer_url, *cluster.core_urls, f"http://127.0.0.1:{layout.aggregator_balancer_port}"]
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            if cluster.runner.poll() is not None:
                raise RuntimeError(f"local_cluster exited with {cluster.runner.returncode}")
            states = cluster.status()
            if len(states) == expected and all(state == "RUNNING" for state, _ in states.values()):
                try:
                    statuses = []
                    for url in urls:
                        async with session.get(f"{url}/readyz") as response:
                            statuses.append(response.status)
                    if all(s == 200 for s in statuses):
                        return
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the cluster was not ready within {timeout_s} s: {cluster.status()}")


async def stop_cluster(cluster: RunningCluster) -> int | None:
    if cluster.runner.poll() is None:
        cluster.runner.terminate()  # local_cluster passes it on: supervisord stops every program
        try:
            await asyncio.to_thread(cluster.runner.wait, 60)
        except subprocess.TimeoutExpired:
            cluster.runner.kill()
            cluster.runner.wait()
    shutil.rmtree(cluster.run_dir, ignore_errors=True)
    return cluster.runner.returncode


async def _counters(core_urls: list[str]) -> list[dict[str, float]]:
    found = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for url in core_urls:
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
            values = {}
            for name in (RECEIVED, ROUTED):
                match = re.search(rf"^{name} (\S+)$", text, re.M)
                values[name] = float(match[1]) if match else 0.0
            found.append(values)
    return found


async def events_per_offer(
    cluster: RunningCluster, infra: Infrastructure, rate: float, seconds: float
) -> dict[str, Any]:
    """A steady load through the balancer; what each core app's hub took from the fanout."""
    before = await _counters(cluster.core_urls)
    load = await run_load(
        LoadConfig([cluster.balancer_url], rate, seconds, LATENCY_MS, label="events", client_timeout_s=90)
    )
    await asyncio.sleep(1.0)  # the last events reach every hub
    after = await _counters(cluster.core_urls)
    outcome = await database_outcome(infra.database_url, load.application_ids)
    offers = outcome["quotes_by_status"].get("offered", 0)
    received = [a[RECEIVED] - b[RECEIVED] for a, b in zip(after, before, strict=True)]
    routed = [a[ROUTED] - b[ROUTED] for a, b in zip(after, before, strict=True)]
    per_offer = [round(r / offers, 3) if offers else None for r in received]
    return {
        "rate": rate,
        "seconds": seconds,
        "applications": outcome["applications"],
        "offers": offers,
        "received_per_core_app": received,
        "routed_per_core_app": routed,
        "received_per_offer_per_core_app": per_offer,
        "received_per_offer_all_core_apps": round(sum(received) / offers, 3) if offers else None,
        "routed_share": round(sum(routed) / sum(received), 3) if sum(received) else None,
        "load": load.result(),
    }


async def sustained(
    cluster: RunningCluster,
    infra: Infrastructure,
    targets: list[str],
    rates: tuple[float, ...],
    step_s: float,
    label: str,
) -> dict[str, Any]:
    """Steps of rising rate until one is not held; the last held one is the figure."""
    steps: list[dict[str, Any]] = []
    best: float = 0.0
    for rate in rates:
        meter = CpuMeter(cluster.pids())
        meter.start()
        config = LoadConfig(targets, rate, step_s, LATENCY_MS, label=label, client_timeout_s=infra.deadline_s + 15)
        load = await run_load(config)
        cpu = meter.stop()
        await asyncio.sleep(1.0)
        outcome = await database_outcome(infra.database_url, load.application_ids)
        result = load.result()
        ok, reasons = held(result, outcome)
        steps.append({"rate": rate, "held": ok, "why_not": reasons, "load": result, "cpu": cpu, "database": outcome})
        busiest = ", ".join(f"{k} {v:.2f}" for k, v in list(cpu["cores_used"].items())[:4])
        print(f"[scaling {label}] {rate:g}/s held={ok} busiest: {busiest} {'; '.join(reasons)}", file=sys.stderr)
        if not ok:
            break
        best = rate
    return {"targets": targets, "max_sustained_applications_per_s": best, "steps": steps}


def _ratios(figure: dict[str, Any], limit: float) -> None:
    apps = figure["max_sustained_applications_per_s"]
    figure["max_sustained_quotes_per_s"] = apps * INSURERS
    figure["quotes_per_s_over_broker_limit"] = round(apps * INSURERS / limit, 4) if limit else None


async def one_layout(
    cores: int, rates: tuple[float, ...], step_s: float, events_rate: float, events_s: float, raw_messages: int
) -> dict[str, Any]:
    async with private_infrastructure(f"scaling{cores}") as infra:
        limit = await raw_broker.publish_limit(infra.amqp_url, raw_messages)
        per_s = limit["publish_persistent_confirmed_per_s"]
        print(f"[scaling {cores} core apps] broker limit {per_s}/s", file=sys.stderr)
        cluster = await start_cluster(infra, cores)
        try:
            await set_sandbox_latency(cluster.sandbox_url, LATENCY_MS)
            warm = LoadConfig(cluster.core_urls, 4, 3, LATENCY_MS, label="warm-up", client_timeout_s=90)
            await run_load(warm)
            events = await events_per_offer(cluster, infra, events_rate, events_s)
            print(
                f"[scaling {cores} core apps] received per offer {events['received_per_offer_per_core_app']}",
                file=sys.stderr,
            )
            balancer = await sustained(cluster, infra, [cluster.balancer_url], rates, step_s, f"{cores}-balancer")
            direct = await sustained(cluster, infra, cluster.core_urls, rates, step_s, f"{cores}-direct")
        finally:
            code = await stop_cluster(cluster)
    _ratios(balancer, per_s)
    _ratios(direct, per_s)
    return {
        "core_apps": cores,
        "aggregators": cluster.layout.aggregators,
        "workers": cluster.layout.workers,
        "broker_limit": limit,
        "events": events,
        "through_balancer": balancer,
        "straight_to_instances": direct,
        "cluster_exit_code": code,
    }


def _broker() -> str:
    return os.environ.get("OSAGO_TEST_AMQP_HOST", "127.0.0.1:5672")


async def run(
    core_counts: tuple[int, ...] = CORE_COUNTS,
    rates: tuple[float, ...] = RATES,
    step_s: float = 8.0,
    events_rate: float = 4.0,
    events_s: float = 10.0,
    raw_messages: int = RAW_MESSAGES,
) -> dict[str, Any]:
    raise_fd_limit()
    layouts = [await one_layout(n, rates, step_s, events_rate, events_s, raw_messages) for n in core_counts]
    return {
        "broker": _broker(),
        "sandbox_latency_ms": LATENCY_MS,
        "insurers_per_application": INSURERS,
        "step_s": step_s,
        "layouts": layouts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cores", default=",".join(map(str, CORE_COUNTS)), help="core app counts, e.g. 1,2,4")
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    parser.add_argument("--step-s", type=float, default=8.0)
    args = parser.parse_args()
    counts = tuple(int(c) for c in args.cores.split(","))
    rates = tuple(float(r) for r in args.rates.split(","))
    print(json.dumps(asyncio.run(run(counts, rates, args.step_s)), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
