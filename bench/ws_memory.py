"""Where an idle offers socket's memory goes in the core app: tracemalloc, grouped by allocating code.

The core app runs in this process (``core_app.app.create_app`` on a private database
and vhost) with tracemalloc on; the clients run in a child process so that their
allocations are not counted. After a warm-up, N more sockets are opened; the growth
between two snapshots is grouped by the first frame of our code (or of aiohttp's
server side) in each allocation's traceback, and divided by N.

    .venv/bin/python -m bench.ws_memory --sockets 500
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import sys
import time
import tracemalloc
from typing import Any

from aiohttp import web

from bench.infra import private_infrastructure
from bench.system import SERVICE_TOKEN, TOKEN_SECRET, free_port, raise_fd_limit
from bench.websockets import Clients, _pending_applications
from shared.intake.access import issue_access_token

INTERESTING = ("shared/", "core_app/", "aiohttp/web_", "aiohttp/_websocket", "aiohttp/http_", "asyncio/", "tortoise/")


def _short(frame: tracemalloc.Frame) -> str:
    name = frame.filename.split("/work/main/", 1)[-1].split("site-packages/", 1)[-1].split("lib/python3.11/", 1)[-1]
    return f"{name}:{frame.lineno}"


def _ours(trace: tracemalloc.StatisticDiff) -> str:
    """The innermost line of our code on the allocation's stack (which of our lines led to it)."""
    for frame in reversed(list(trace.traceback)):  # tracemalloc lists the oldest frame first
        if frame.filename.startswith("/work/main/") and ("shared/" in frame.filename or "core_app/" in frame.filename):
            return _short(frame)
    return "no frame of ours"


def _site(trace: tracemalloc.StatisticDiff) -> str:
    frames = list(trace.traceback)
    return _short(frames[-1]) if frames else "unknown"


async def _client_process(urls: list[str], origin: str) -> None:
    clients = Clients()
    await clients.connect(urls, origin)
    print(f"connected {len(clients.sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await clients.close()


async def run(sockets: int = 500) -> dict[str, Any]:
    raise_fd_limit()
    from core_app.app import create_app

    async with private_infrastructure("wsmem", deadline_s=900) as infra:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        settings = infra.settings(
            service_token=SERVICE_TOKEN,
            token_secret=TOKEN_SECRET,
            browser_rps=100000.0,
            allowed_origins=(origin,),
            port=port,
            log_level="WARNING",
        )
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ids = await _pending_applications(infra.database_url, max(1, sockets // 10) + 100)
        urls = [
            f"{origin}/api/v1/applications/{i}/offers?token={issue_access_token(i, TOKEN_SECRET, int(time.time()) + 86_400)}"
            for i in ids
        ]
        warm, measured = urls[-100:], [urls[n % (len(urls) - 100)] for n in range(sockets)]

        async def spawn(batch: list[str]) -> asyncio.subprocess.Process:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import asyncio,sys,json; from bench.ws_memory import _client_process; "
                "asyncio.run(_client_process(json.loads(sys.argv[1]), sys.argv[2]))",
                json.dumps(batch),
                origin,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert process.stdout is not None
            print(f"[ws_memory] {(await process.stdout.readline()).decode().strip()}", file=sys.stderr)
            return process

        first = await spawn(warm)
        gc.collect()
        tracemalloc.start(30)
        before = tracemalloc.take_snapshot()
        second = await spawn(measured)
        await asyncio.sleep(2.0)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        groups: collections.Counter[str] = collections.Counter()
        sites: collections.Counter[str] = collections.Counter()
        for diff in after.compare_to(before, "traceback"):
            groups[_ours(diff)] += diff.size_diff
            sites[_site(diff)] += diff.size_diff
        total = sum(groups.values())
        for process in (second, first):
            assert process.stdin is not None
            process.stdin.write(b"quit\n")
            await process.stdin.drain()
            await process.wait()
        await runner.cleanup()
    return {
        "sockets": sockets,
        "traced_bytes_per_socket": round(total / sockets),
        "by_our_line_bytes_per_socket": [
            {"line": site, "bytes_per_socket": round(size / sockets)} for site, size in groups.most_common(12)
        ],
        "by_allocation_site_bytes_per_socket": [
            {"site": site, "bytes_per_socket": round(size / sockets)} for site, size in sites.most_common(15)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ws_memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sockets)), indent=2))


if __name__ == "__main__":
    main()
