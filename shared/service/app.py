"""What every HTTP service of ours shares: typed state, resource lifecycles, health and metrics.

Each resource is one cleanup context, added in dependency order, so start-up and
shutdown are explicit and symmetric.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from aiohttp.typedefs import Middleware
from tortoise import Tortoise

from shared.live.offer_hub import OfferHub
from shared.live.stream import END_MARGIN_S, LiveSockets, stream_offers
from shared.platform.amqp import robust_connection
from shared.platform.db import database
from shared.platform.health import health_routes
from shared.platform.http_api import error_middleware, json_response
from shared.platform.log_setup import configure_logging
from shared.platform.metrics import metrics_middleware
from shared.platform.runtime import new_event_loop, tune_garbage_collector
from shared.platform.settings import Settings, settings_or_exit
from shared.quoting.topology import exit_on_topology_mismatch
from shared.service.openapi import openapi_document

SETTINGS = web.AppKey("settings", Settings)
SERVICE_NAME = web.AppKey("service_name", str)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
HUB = web.AppKey("hub", OfferHub)
HUB_ON_DEMAND = web.AppKey("hub_on_demand", bool)
SOCKETS = web.AppKey("sockets", LiveSockets)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with database(app[SETTINGS]):
        yield


async def amqp_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    name = f"{app[SERVICE_NAME]}{settings.instance_name}"
    async with robust_connection(settings.amqp_url, name) as connection:
        app[AMQP] = connection
        yield


async def offer_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = OfferHub()
    if app[HUB_ON_DEMAND]:
        hub.attach(app[AMQP])
    else:
        await hub.start(app[AMQP])
    app[HUB] = hub
    yield
    await hub.stop()


async def offers_stream(request: web.Request, application_id: uuid.UUID) -> web.WebSocketResponse:
    """The offers WebSocket of an application the caller may read, with this service's limits."""
    settings = request.app[SETTINGS]
    return await stream_offers(
        request,
        request.app[HUB],
        request.app[SOCKETS],
        application_id,
        heartbeat=settings.ws_heartbeat_s,
        max_message_bytes=settings.ws_max_message_bytes,
        idle_timeout=settings.ws_idle_timeout_s,
        max_per_application=settings.ws_max_sockets_per_application,
        # By then the sweeper (one round every relay interval) has closed every quote.
        end_after_deadline=settings.sweeper_grace_s + settings.relay_interval_s + END_MARGIN_S,
    )


async def close_sockets(app: web.Application) -> None:
    await app[SOCKETS].close_all()


async def readiness(app: web.Application) -> dict[str, bool]:
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
        database_ok = True
    except Exception:
        database_ok = False
    return {"database": database_ok, "broker": AMQP in app and not app[AMQP].is_closed}


def create_service_app(
    service: str, settings: Settings, *, middlewares: Iterable[Middleware] = (), hub_on_demand: bool = False
) -> web.Application:
    """An app with the database, the broker, the offer hub and the operator endpoints.

    ``hub_on_demand``: consume the offers fanout only from the first socket, for a service
    whose sockets are rare (every instance's queue gets every event, socket or not).
    """
    app = web.Application(
        middlewares=[metrics_middleware(service), error_middleware, *middlewares],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[SERVICE_NAME] = service
    app[HUB_ON_DEMAND] = hub_on_demand
    app[SOCKETS] = LiveSockets()
    app.cleanup_ctx.extend([database_ctx, amqp_ctx, offer_hub_ctx])
    app.on_shutdown.append(close_sockets)
    app.add_routes(health_routes(lambda: readiness(app)))
    app.router.add_get("/openapi.json", openapi_handler)
    return app


async def openapi_handler(request: web.Request) -> web.Response:
    # Each service documents the operations it serves (the aggregator has no list, no reference).
    return json_response(openapi_document("aggregator" if request.app[SERVICE_NAME] == "aggregator" else "core"))


def serve(service: str, create_app: Callable[[Settings], web.Application], default_port: int) -> None:
    """The entry point of an HTTP service: settings from the environment, JSON logs, run until SIGTERM."""
    settings = settings_or_exit()
    configure_logging(service, settings.log_level, json_lines=settings.log_json)
    logging.getLogger(service).info("starting", extra={"settings": settings.redacted()})
    app = create_app(settings)
    tune_garbage_collector()
    with exit_on_topology_mismatch(logging.getLogger(service)):
        _run_until_stopped(app, settings, default_port)


def _run_until_stopped(app: web.Application, settings: Settings, default_port: int) -> None:
    web.run_app(
        app,
        host=settings.host,
        port=settings.default_port(default_port),
        print=None,
        # In-flight requests get this long after SIGTERM; sockets are closed before it starts.
        shutdown_timeout=10,
        access_log=None,
        loop=new_event_loop(),
    )
