"""Services as subprocesses on free ports, per-process CPU accounting and py-spy profiles.

The layout is the one of ``make run`` (two core apps, one aggregator, two workers, the
sandbox), pointed at a benchmark's private database and vhost.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.infra import Infrastructure
from tests.support.processes import ServiceProcess, free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOG_DIR = RESULTS_DIR / "logs"
SERVICE_TOKEN = "bench-service-token"
TOKEN_SECRET = "bench-token-secret"


class Service(ServiceProcess):
    """A service the benchmark starts: the tests' process runner, logging under bench/results/."""


def python_service(
    name: str,
    module: str,
    env: dict[str, str],
    port: int | None = None,
    *,
    ready_line: bytes | None = None,
    source: Path | None = None,
) -> Service:
    """``source``: the tree the module is imported from (an older revision's worktree); None: this one."""
    return Service(name, module, env, port, ready_marker=ready_line, log_dir=LOG_DIR, cwd=source)


@dataclass
class System:
    """The default layout of ``make run`` on private ports."""

    infra: Infrastructure
    sandbox: Service
    aggregator: Service
    workers: list[Service]
    cores: list[Service]

    @property
    def services(self) -> list[Service]:
        return [self.sandbox, self.aggregator, *self.workers, *self.cores]

    @property
    def core_urls(self) -> list[str]:
        return [core.url for core in self.cores]

    async def set_behaviour(self, behaviour: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.sandbox.url}/sandbox/insurers") as response:
                insurers = await response.json()
            for insurer in insurers:
                url = f"{self.sandbox.url}/sandbox/insurers/{insurer['code']}/behaviour"
                async with session.put(url, json=behaviour) as response:
                    if response.status != 200:
                        raise RuntimeError(f"sandbox refused {behaviour}: {await response.text()}")


def system_env(
    infra: Infrastructure, sandbox_port: int, aggregator_port: int, core_ports: list[int], **extra: str
) -> dict[str, str]:
    return infra.env(
        OSAGO_SERVICE_TOKEN=SERVICE_TOKEN,
        OSAGO_TOKEN_SECRET=TOKEN_SECRET,
        OSAGO_SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}",
        OSAGO_AGGREGATOR_URL=f"http://127.0.0.1:{aggregator_port}",
        # Clients of the load generator spread over a few source addresses; the per-address
        # browser quota is not what is measured here.
        OSAGO_BROWSER_RPS="100000",
        OSAGO_ALLOWED_ORIGINS=",".join(f"http://127.0.0.1:{p}" for p in core_ports),
        **extra,
    )


async def start_system(
    infra: Infrastructure,
    *,
    workers: int = 2,
    cores: int = 2,
    with_workers: bool = True,
    core_module: str = "core_app",
    source: Path | None = None,
    **extra_env: str,
) -> System:
    """``source``: every service runs from that tree (``bench.revisions.source_tree``), so "before"
    is the whole system of an older revision, not one function of it patched into today's."""
    sandbox_port, aggregator_port = free_port(), free_port()
    core_ports = [free_port() for _ in range(cores)]
    env = system_env(infra, sandbox_port, aggregator_port, core_ports, **extra_env)
    system = System(
        infra,
        sandbox=python_service("sandbox", "quote_workers.sandbox", env, sandbox_port, source=source),
        aggregator=python_service("aggregator", "aggregator_api", env, aggregator_port, source=source),
        workers=[
            python_service(f"worker{n}", "quote_workers", env, ready_line=b"worker consuming", source=source)
            for n in range(1, (workers if with_workers else 0) + 1)
        ],
        cores=[
            python_service(f"core{n}", core_module, env, port, source=source)
            for n, port in enumerate(core_ports, start=1)
        ],
    )
    try:
        # The aggregator declares the topology, so it is up before the workers consume.
        for group in ([system.sandbox, system.aggregator], [*system.workers, *system.cores]):
            for service in group:
                service.start()
            await asyncio.gather(*(service.wait_ready() for service in group))
    except BaseException:
        await stop_system(system)
        raise
    return system


async def stop_system(system: System) -> dict[str, int | None]:
    codes = await asyncio.gather(*(service.stop() for service in system.services))
    return {service.name: code for service, code in zip(system.services, codes, strict=True)}


# --- CPU and memory accounting -------------------------------------------------------------


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def _broker_processes() -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for process in psutil.process_iter(["name", "username"]):
        if process.info["name"] in ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"):
            found.append(process)
    return found


def _postgres_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


class CpuMeter:
    """CPU seconds per named group over a window, as cores used (1.0 = one core busy)."""

    def __init__(self, named_pids: dict[str, list[int]]) -> None:
        self._named = {name: [psutil.Process(pid) for pid in pids] for name, pids in named_pids.items()}
        self._start: dict[str, dict[int, float]] = {}
        self._t0 = 0.0
        self._sys0: Any = None

    def _groups(self) -> dict[str, list[psutil.Process]]:
        groups = dict(self._named)
        groups["postgresql"] = _postgres_processes()
        groups["rabbitmq"] = _broker_processes()
        return groups

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: {p.pid: _cpu_seconds(p) for p in procs} for name, procs in self._groups().items()}

    def start(self) -> None:
        self._start = self._sample()
        self._sys0 = psutil.cpu_times()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        end = self._sample()
        elapsed = time.monotonic() - self._t0
        sys1 = psutil.cpu_times()
        busy = lambda t: t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)  # noqa: E731
        cores_used: dict[str, float] = {}
        for name, pids in end.items():
            start = self._start.get(name, {})
            used = sum(seconds - start.get(pid, 0.0) for pid, seconds in pids.items())
            cores_used[name] = round(max(0.0, used) / elapsed, 3)
        machine_cores = (busy(sys1) - busy(self._sys0)) / elapsed
        # Whatever else ran on the machine meanwhile (another test run, the kernel's own work).
        cores_used["other processes"] = round(max(0.0, machine_cores - sum(cores_used.values())), 3)
        return {
            "window_s": round(elapsed, 2),
            "cores_used": dict(sorted(cores_used.items(), key=lambda kv: -kv[1])),
            "machine_busy": round(machine_cores / (psutil.cpu_count() or 1), 3),
        }


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


# --- py-spy profiles --------------------------------------------------------------------------


def py_spy_path() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start_profile(pid: int, seconds: float, name: str, rate: int = 97) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy in the background for ``seconds``; None when py-spy is not available."""
    exe = py_spy_path()
    if exe is None:
        return None
    out = RESULTS_DIR / "profiles" / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, out


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    if "/bench/results/revisions/" in path:  # an older revision's worktree (bench/revisions.py): from its root on
        path = path.split("/bench/results/revisions/", 1)[1].partition("/")[2]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def summarise_profile(path: Path, seconds: float, rate: int = 97, top: int = 12) -> dict[str, Any]:
    """Top functions by self time and by inclusive time from py-spy's collapsed stacks."""
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return {"error": "no profile written"}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    expected = max(1, int(seconds * rate))

    def share(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "share_of_busy": round(c / total, 3)} for f, c in counter.most_common(top)]

    ours = collections.Counter(
        {
            f: c
            for f, c in inclusive.items()
            if any(p in f for p in ("shared/", "aggregator_api/", "quote_workers/", "core_app/"))
        }
    )
    return {
        "samples": total,
        "busy_share": round(min(1.0, total / expected), 3),
        "top_self": share(self_counts),
        "top_inclusive_ours": share(ours),
        "top_inclusive_libraries": share(
            collections.Counter(
                {f: c for f, c in inclusive.items() if f not in ours and "asyncio/" not in f and "runners.py" not in f}
            )
        ),
    }


def raise_fd_limit() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def own_pid() -> int:
    return os.getpid()


async def wait_for_quiet_machine(max_wait_s: float = 120.0, threshold: float = 0.15) -> float:
    """Wait (bounded) until the machine is mostly idle; the busy share seen last is returned."""
    deadline = time.monotonic() + max_wait_s
    while True:
        psutil.cpu_percent(None)
        await asyncio.sleep(2.0)
        busy = psutil.cpu_percent(None) / 100.0
        if busy <= threshold or time.monotonic() >= deadline:
            return round(busy, 3)
        print(f"[bench] machine {busy:.0%} busy with other work; waiting for it to calm down", file=sys.stderr)


async def finish_profile(
    started: tuple[subprocess.Popen[bytes], Path] | None, seconds: float, top: int = 12
) -> dict[str, Any]:
    """Wait for a background py-spy and summarise what it recorded."""
    if started is None:
        return {"error": "py-spy is not installed (pip install '.[bench]')"}
    process, out = started
    deadline = time.monotonic() + seconds + 20
    while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 (polling a child process or a counter; there is no event to wait on)
        await asyncio.sleep(0.2)
    if process.poll() is None:
        process.terminate()
        process.wait()
    summary = summarise_profile(out, seconds, top=top)
    summary["raw_profile"] = str(out.relative_to(RESULTS_DIR.parent.parent))
    return summary
