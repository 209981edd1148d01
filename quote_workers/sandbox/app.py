"""The insurer sandbox as one aiohttp application: every company, every protocol, the controls."""

from __future__ import annotations

import os

from aiohttp import web

from shared.platform.settings import Settings

from . import control
from .protocols import json_api, poll_api, xml_api
from .protocols.common import MAX_REQUEST_BYTES
from .state import SANDBOX_KEY, Sandbox


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def _on_shutdown(app: web.Application) -> None:
    # Runs before aiohttp waits for in-flight handlers: hanging and sleeping ones let go now.
    app[SANDBOX_KEY].closing.set()


def create_app(settings: Settings) -> web.Application:
    """The sandbox app; ``settings`` is accepted for symmetry with the other services."""
    del settings  # nothing in the sandbox is configurable yet beyond host and port
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[SANDBOX_KEY] = Sandbox()
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _healthz)
    control.setup(app)
    json_api.setup(app)
    poll_api.setup(app)
    xml_api.setup(app)
    return app
