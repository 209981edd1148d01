"""The core app: app factory and the lifecycle of what it holds beyond every service's share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from core_app.applications import routes
from core_app.quotas import QuotaBook
from core_app.typedefs import AGGREGATOR, QUOTAS
from shared.service_app import create_service_app
from shared.settings import Settings

SERVICE = "core"
STATIC_DIR = Path(__file__).parent / "static"
AGGREGATOR_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=2)


async def aggregator_client_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, timeout=AGGREGATOR_TIMEOUT) as session:
        app[AGGREGATOR] = session
        yield


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def create_app(settings: Settings) -> web.Application:
    app = create_service_app(SERVICE, settings)
    app[QUOTAS] = QuotaBook()
    app.cleanup_ctx.append(aggregator_client_ctx)
    app.add_routes(routes)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    return app
