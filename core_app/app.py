"""The core app: app factory and the lifecycle of what it holds beyond every service's share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import aiohttp_cors
from aiohttp import web

from core_app import application_list, applications, page
from core_app.partner_keys import PartnerKeys
from core_app.quotas import QuotaBook
from core_app.typedefs import AGGREGATOR, PARTNER_KEYS, QUOTAS
from shared.platform.settings import Settings
from shared.service.app import create_service_app

SERVICE = "core"
AGGREGATOR_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=2)

# Headers a partner's browser code may send and read across origins.
CORS_REQUEST_HEADERS = ("Content-Type", "X-API-Key", "Authorization", "Idempotency-Key")
CORS_EXPOSED_HEADERS = ("Retry-After", "Location", "Idempotent-Replayed")


async def aggregator_client_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, timeout=AGGREGATOR_TIMEOUT) as session:
        app[AGGREGATOR] = session
        yield


def add_cors(app: web.Application, routes: list[web.AbstractRoute], origins: tuple[str, ...]) -> None:
    """CORS for the configured origins only, on the REST routes only.

    The page itself, its static files and the WebSocket are not listed: the page is
    same-origin, and WebSockets are not subject to CORS (their Origin is checked in the
    handler instead).
    """
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]  # aiohttp-cors ships no annotations here
        allow_credentials=False,  # keys travel in headers, never in cookies
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        allow_methods=("GET", "POST"),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in routes:
        cors.add(route)


def create_app(settings: Settings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app[QUOTAS] = QuotaBook()
    # Unknown keys never take more than half the pool, however many addresses send them.
    app[PARTNER_KEYS] = PartnerKeys(
        settings.api_key_cache_s,
        settings.auth_failures_per_minute,
        max_concurrent_lookups=max(1, settings.db_pool_max // 2),
    )
    app.cleanup_ctx.append(aggregator_client_ctx)
    router = app.router
    # Explicit routes, the two methods of one path added one after the other so that they
    # share one resource (aiohttp-cors refuses preflights on split resources).
    rest = [
        router.add_post("/api/v1/applications", applications.create_application),
        router.add_get("/api/v1/applications", application_list.list_applications, allow_head=False),
        router.add_get("/api/v1/applications/{application_id}", applications.get_application, allow_head=False),
        router.add_get("/api/v1/reference", page.reference, allow_head=False),
    ]
    router.add_get("/api/v1/applications/{application_id}/offers", applications.offers_socket, allow_head=False)
    router.add_get("/", page.index)
    router.add_static("/static/", page.STATIC_DIR)
    add_cors(app, rest, settings.allowed_origins)
    return app
