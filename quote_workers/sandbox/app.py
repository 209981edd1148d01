"""The insurer sandbox as one aiohttp application: every company, every protocol, the controls."""

from __future__ import annotations

from aiohttp import web

from shared.platform.health import health_routes
from shared.platform.settings import Settings

from . import control
from .payments import api as payments_api
from .payments.provider import PaymentProvider
from .protocols import json_api, poll_api, xml_api
from .protocols.common import MAX_REQUEST_BYTES
from .state import SANDBOX_KEY, Sandbox


async def _nothing_to_wait_for() -> dict[str, bool]:
    return {}  # the sandbox keeps everything in memory: up is ready


async def _on_shutdown(app: web.Application) -> None:
    # Runs before aiohttp waits for in-flight handlers: hanging and sleeping ones let go now.
    app[SANDBOX_KEY].closing.set()


def create_app(settings: Settings) -> web.Application:
    """The sandbox app; the payment provider signs its callbacks with the settings' secret."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    sandbox = Sandbox()
    app[SANDBOX_KEY] = sandbox
    app.on_shutdown.append(_on_shutdown)
    payments_api.setup(app, PaymentProvider(settings.payment_callback_secret, sandbox.closing))
    app.add_routes(health_routes(_nothing_to_wait_for))
    control.setup(app)
    json_api.setup(app)
    poll_api.setup(app)
    xml_api.setup(app)
    return app
