"""Who is calling and whether they may call now: API key (401) and quota (429), in API.md's order.

Every request to ``/api/`` passes here first, so a partner's quota counts every kind of
request (create, read, list, socket), and an ``X-API-Key`` that is not valid is a 401 on
any of them. Keys are looked up through ``core_app.partner_keys`` (cached for
``OSAGO_API_KEY_CACHE_S``; unknown keys from an address that failed too often are refused
without a query, with the same 401).
"""

from __future__ import annotations

from aiohttp import web

from core_app.partner_keys import address_scope
from core_app.quotas import retry_after_header
from core_app.typedefs import PARTNER_KEYS, QUOTAS, SETTINGS
from shared.intake.api_keys import API_KEY_HEADER, hash_api_key
from shared.intake.caller import Caller
from shared.platform.http_api import ApiError


def unauthorized() -> ApiError:
    # One body for a missing and a wrong key: the answer tells nothing about which keys exist.
    return ApiError(401, "unauthorized", "a valid X-API-Key is required")


async def identify(request: web.Request) -> tuple[Caller, float]:
    """The caller and its quota in requests per second; 401 for an unknown API key."""
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key is None:
        address = request.remote or "unknown"
        return Caller.browser(address), request.app[SETTINGS].browser_rps
    # Keys are stored as SHA-256: the lookup compares hashes, never the key itself.
    partner = await request.app[PARTNER_KEYS].partner(hash_api_key(api_key), address_scope(request.remote))
    if partner is None:
        raise unauthorized()
    return Caller.partner(partner.partner_id), partner.requests_per_second


async def admit(request: web.Request, *, partner_only: bool = False) -> Caller:
    """The caller, once the API key (401) and then the quota (429) have let it through."""
    if partner_only and API_KEY_HEADER not in request.headers:
        raise unauthorized()
    client, rate = await identify(request)
    wait_s = await request.app[QUOTAS].try_acquire(client.scope, rate)
    if wait_s is not None:
        raise ApiError(429, "rate_limited", "too many requests; slow down", headers=retry_after_header(wait_s))
    return client
