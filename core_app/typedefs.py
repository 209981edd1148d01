"""Typed application state of the core app (beyond what every service has)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from core_app.partner_keys import PartnerKeys
from core_app.quotas import QuotaBook
from shared.service.app import AMQP, HUB, SETTINGS, SOCKETS

AGGREGATOR = web.AppKey("aggregator", aiohttp.ClientSession)
QUOTAS = web.AppKey("quotas", QuotaBook)
PARTNER_KEYS = web.AppKey("partner_keys", PartnerKeys)

__all__ = ["AGGREGATOR", "AMQP", "HUB", "PARTNER_KEYS", "QUOTAS", "SETTINGS", "SOCKETS"]
