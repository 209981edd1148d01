"""Typed application state of the core app (beyond what every service has)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from core_app.quotas import QuotaBook
from shared.service.app import AMQP, HUB, SETTINGS, SOCKETS

AGGREGATOR = web.AppKey("aggregator", aiohttp.ClientSession)
QUOTAS = web.AppKey("quotas", QuotaBook)

__all__ = ["AGGREGATOR", "AMQP", "HUB", "QUOTAS", "SETTINGS", "SOCKETS"]
