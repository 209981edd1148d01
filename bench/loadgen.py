"""An open-loop load generator that behaves like browsers: post, open the offers socket, wait for `complete`.

Arrivals follow a fixed schedule (``rate`` per second, for ``duration`` seconds), and
every latency is measured from the *intended* send time, so a stalled system cannot
hide its stall by slowing the generator down (no coordinated omission). Latencies go
into HdrHistograms.

Run it against a layout started by a benchmark, or against a running ``make run``:

    .venv/bin/python -m bench.loadgen --target http://127.0.0.1:8080,http://127.0.0.1:8180 \\
        --rate 20 --duration 30 --sandbox http://127.0.0.1:8090 --latency-ms 200

Clients are spread over source addresses 127.0.0.2, 127.0.0.3, ... (one keep-alive pool
per address, like distinct browsers), so the core app's per-address browser quota
(5 requests/s by default) is not what limits a run against ``make run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

from tests.support.samples import sample_application  # the synthetic applicant the tests use


# Microseconds, up to one hour, three significant digits.
def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)


def sample_body(index: int) -> dict[str, Any]:
    body = sample_application()
    # A different licence per client: a different bonus-malus class, like different people.
    body["drivers"][0]["license"]["number"] = f"{index % 1_000_000:06d}"
    return body


def summary(histogram: HdrHistogram, minus_ms: float = 0.0) -> dict[str, float | int]:
    """p50/p95/p99/max in milliseconds, optionally minus a constant (the sandbox's latency)."""
    if histogram.get_total_count() == 0:
        return {"count": 0}
    ms = lambda us: round(us / 1000.0 - minus_ms, 2)  # noqa: E731
    return {
        "count": histogram.get_total_count(),
        "p50_ms": ms(histogram.get_value_at_percentile(50)),
        "p95_ms": ms(histogram.get_value_at_percentile(95)),
        "p99_ms": ms(histogram.get_value_at_percentile(99)),
        "max_ms": ms(histogram.get_max_value()),
    }


@dataclass
class LoadConfig:
    targets: list[str]
    rate: float
    duration: float
    sandbox_latency_ms: float = 0.0
    sources: int = 16
    api_key: str | None = None
    client_timeout_s: float = 90.0
    progress: bool = True
    label: str = ""


@dataclass
class LoadRun:
    config: LoadConfig
    post: HdrHistogram = field(default_factory=new_histogram)
    first_offer: HdrHistogram = field(default_factory=new_histogram)
    first_event: HdrHistogram = field(default_factory=new_histogram)
    complete: HdrHistogram = field(default_factory=new_histogram)
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lateness_max_ms: float = 0.0
    first_intended: float = 0.0
    last_complete: float = 0.0
    application_ids: list[str] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        c = self.config
        achieved = 0.0
        if self.counts["complete"] and self.last_complete > self.first_intended:
            achieved = self.counts["complete"] / (self.last_complete - self.first_intended)
        return {
            "label": c.label,
            "targets": c.targets,
            "offered_rate_per_s": c.rate,
            "duration_s": c.duration,
            "sandbox_latency_ms": c.sandbox_latency_ms,
            "achieved_complete_rate_per_s": round(achieved, 1),
            "counts": dict(self.counts),
            "quote_statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "generator_max_lateness_ms": round(self.lateness_max_ms, 1),
            "post_ms": summary(self.post),
            "first_event_ms": summary(self.first_event),
            "first_offer_ms": summary(self.first_offer),
            "complete_ms": summary(self.complete),
            "overhead_first_offer_ms": summary(self.first_offer, c.sandbox_latency_ms),
            "overhead_complete_ms": summary(self.complete, c.sandbox_latency_ms),
        }


def _source_addresses(count: int) -> list[str]:
    # 127.0.0.2 ... on Linux every 127.0.0.0/8 address is local: distinct "browsers".
    return [f"127.0.{(n // 250)}.{2 + n % 250}" for n in range(max(1, count))]


async def _client(run: LoadRun, session: aiohttp.ClientSession, target: str, index: int, intended: float) -> None:
    c = run.config
    headers = {"Origin": target}
    if c.api_key:
        headers["X-API-Key"] = c.api_key
    run.counts["sent"] += 1
    try:
        async with asyncio.timeout(c.client_timeout_s):
            async with session.post(
                f"{target}/api/v1/applications", json=sample_body(index), headers=headers
            ) as response:
                body = await response.read()
                status = response.status
            run.post.record_value(max(1, int((time.monotonic() - intended) * 1e6)))
            if status != 201:
                run.errors[f"post_{status}"] += 1
                return
            created = json.loads(body)
            run.counts["accepted"] += 1
            run.application_ids.append(created["id"])
            insurers = len(created["insurers"])
            url = f"{target}{created['links']['offers']}?token={created['access_token']}"
            seen: set[str] = set()
            finals: set[str] = set()
            first_event = first_offer = False
            async with session.ws_connect(url, headers=headers, autoping=True, heartbeat=None, compress=15) as ws:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    now = time.monotonic()
                    event = json.loads(message.data)
                    if event["event_id"] in seen:
                        run.counts["duplicate_events_suppressed"] += 1
                        continue
                    seen.add(event["event_id"])
                    if not first_event:
                        first_event = True
                        run.first_event.record_value(max(1, int((now - intended) * 1e6)))
                    kind = event["type"]
                    if kind == "offer":
                        finals.add(event["insurer"]["code"])
                        run.statuses["offered"] += 1
                        if not first_offer:
                            first_offer = True
                            run.first_offer.record_value(max(1, int((now - intended) * 1e6)))
                    elif kind == "quote_status":
                        finals.add(event["insurer"]["code"])
                        run.statuses[event["status"]] += 1
                    elif kind == "complete":
                        run.complete.record_value(max(1, int((now - intended) * 1e6)))
                        run.last_complete = max(run.last_complete, now)
                        run.counts["complete"] += 1
                        if len(finals) != insurers:
                            run.errors["complete_before_every_final_event"] += 1
                        break
                else:
                    run.errors[f"ws_closed_{ws.close_code}_before_complete"] += 1
    except TimeoutError:
        run.errors["client_timeout"] += 1
    except (aiohttp.ClientError, OSError) as exc:
        run.errors[type(exc).__name__] += 1


async def _progress(run: LoadRun, started: float, stop: asyncio.Event) -> None:
    tty = sys.stderr.isatty()
    interval = 1.0 if tty else 5.0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
        c = run.counts
        p99 = run.complete.get_value_at_percentile(99) / 1000 if run.complete.get_total_count() else 0
        line = (
            f"[{run.config.label or 'load'} {run.config.rate:g}/s] t={time.monotonic() - started:5.1f}s "
            f"sent={c['sent']} accepted={c['accepted']} complete={c['complete']} "
            f"in-flight={c['sent'] - c['complete'] - sum(run.errors.values())} errors={sum(run.errors.values())} "
            f"p99 complete={p99:.0f}ms"
        )
        print(("\r" + line + "   ") if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)


async def run_load(config: LoadConfig) -> LoadRun:
    run = LoadRun(config)
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, local_addr=(address, 0), force_close=False),
            timeout=aiohttp.ClientTimeout(total=None, connect=10),
        )
        for address in _source_addresses(config.sources)
    ]
    total = int(config.rate * config.duration)
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()
    started = time.monotonic() + 0.05
    run.first_intended = started
    progress = asyncio.create_task(_progress(run, started, stop)) if config.progress else None
    try:
        for index in range(total):
            intended = started + index / config.rate
            delay = intended - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                run.lateness_max_ms = max(run.lateness_max_ms, -delay * 1000)
            session = sessions[index % len(sessions)]
            target = config.targets[index % len(config.targets)]
            task = asyncio.create_task(_client(run, session, target, index, intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks))
    finally:
        stop.set()
        if progress is not None:
            await progress
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(s.close() for s in sessions))
    return run


async def set_sandbox_latency(sandbox_url: str, latency_ms: int) -> list[str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sandbox_url}/sandbox/insurers") as response:
            codes = [i["code"] for i in await response.json()]
        for code in codes:
            async with session.put(
                f"{sandbox_url}/sandbox/insurers/{code}/behaviour",
                json={"mode": "ok", "latency_ms": [latency_ms, latency_ms]},
            ) as response:
                response.raise_for_status()
    return codes


async def reset_sandbox(sandbox_url: str, codes: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        for code in codes:
            async with session.delete(f"{sandbox_url}/sandbox/insurers/{code}/behaviour"):
                pass


async def _main(args: argparse.Namespace) -> None:
    from bench.system import raise_fd_limit

    raise_fd_limit()
    targets = [t.strip().rstrip("/") for t in args.target.split(",") if t.strip()]
    codes: list[str] = []
    if args.sandbox and args.latency_ms is not None:
        codes = await set_sandbox_latency(args.sandbox, args.latency_ms)
    sources = args.sources or max(4, math.ceil(args.rate * 0.6))
    config = LoadConfig(
        targets, args.rate, args.duration, float(args.latency_ms or 0), sources, args.api_key, label="loadgen"
    )
    try:
        run = await run_load(config)
    finally:
        if codes and not args.keep_behaviour:
            await reset_sandbox(args.sandbox, codes)
    print(json.dumps(run.result(), indent=2, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target",
        default="http://127.0.0.1:8080,http://127.0.0.1:8180",
        help="comma-separated core app base URLs (default: the two of `make run`)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="applications per second (open loop)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    parser.add_argument(
        "--sandbox", default=None, help="sandbox URL, to set a fixed latency (e.g. http://127.0.0.1:8090)"
    )
    parser.add_argument("--latency-ms", type=int, default=None, help="fixed sandbox latency; subtracted for overhead")
    parser.add_argument("--keep-behaviour", action="store_true", help="leave the sandbox latency set afterwards")
    parser.add_argument("--sources", type=int, default=0, help="source addresses 127.0.0.x (default: 0.6 x rate)")
    parser.add_argument("--api-key", default=None, help="partner API key (X-API-Key) instead of the browser path")
    args = parser.parse_args()
    if not 0 < args.rate <= 2000 or not 0 < args.duration <= 600:
        parser.error("--rate must be in (0, 2000] and --duration in (0, 600]")
    for target in args.target.split(","):
        host = target.split("://", 1)[-1].split(":", 1)[0].split("/", 1)[0]
        if not (host.startswith("127.") or host in ("localhost", "[::1]")):
            parser.error(f"--target must be on this machine (127.0.0.0/8), got {target}")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
