"""What an operator (and a supervisor) asks every process: is it alive, is it ready, its metrics."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from shared.platform.http_api import json_response
from shared.platform.metrics import metrics_handler

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


def health_routes(ready_check: ReadyCheck | None = None) -> list[web.RouteDef]:
    """``/healthz`` (alive, with the pid), ``/readyz`` when there is something to be ready for,
    and ``/metrics``."""

    async def healthz(_: web.Request) -> web.Response:
        # The pid lets a supervisor (and the tests) check it reached the process it started.
        return json_response({"status": "ok", "pid": os.getpid()})

    routes = [web.get("/healthz", healthz), web.get("/metrics", metrics_handler)]
    if ready_check is not None:

        async def readyz(_: web.Request) -> web.Response:
            checks = await ready_check()
            ok = all(checks.values())
            body = {"status": "ok" if ok else "unavailable", "checks": checks}
            return json_response(body, status=200 if ok else 503)

        routes.append(web.get("/readyz", readyz))
    return routes


@contextlib.asynccontextmanager
async def operator_site(host: str, port: int | None) -> AsyncIterator[None]:
    """The operator endpoints alone, for a process that serves nothing else (a worker);
    none when it has no port."""
    if port is None:
        yield
        return
    app = web.Application()
    app.add_routes(health_routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()
