"""Who is calling and whether they may call now: API key (401) and quota (429), in API.md's order.

Every request to ``/api/`` passes here first, so a partner's quota counts every kind of
request (create, read, list, socket), and an ``X-API-Key`` that is not valid is a 401 on
any of them. Keys are looked up through ``core_app.partner_keys`` (cached for
``OSAGO_API_KEY_CACHE_S``; unknown keys from an address that failed too often are refused
without a query, with the same 401).

Who the client is: the TCP peer, unless the peer is a trusted proxy (``OSAGO_TRUSTED_PROXIES``,
the balancers): then the right-most address of ``X-Forwarded-For`` that is not a trusted proxy
(everything left of it was written by the client and may be forged). A malformed entry on the
way falls back to the peer. Browsers' quotas and every address's failed-key budget are kept per
IPv4 address or IPv6 /64 (``address_scope``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from aiohttp import web

from core_app.partner_keys import address_scope
from core_app.quotas import retry_after_header
from core_app.typedefs import PARTNER_KEYS, QUOTAS, SETTINGS
from shared.intake.api_keys import API_KEY_HEADER, hash_api_key
from shared.intake.caller import Caller
from shared.platform.http_api import ApiError

FORWARDED_FOR_HEADER = "X-Forwarded-For"
# A chain longer than this is not from our balancers: nobody in it is believed.
MAX_FORWARDED_HOPS = 20

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _parse_address(raw: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[str, ...]) -> str:
    """The client's address: the peer's, or, from a trusted proxy, the right-most untrusted hop."""
    peer_address = _parse_address(peer) if peer else None
    if peer_address is None:
        return peer or "unknown"
    networks = _networks(trusted)
    if not networks or not _is_trusted(peer_address, networks):
        return str(peer_address)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    if len(hops) > MAX_FORWARDED_HOPS:
        return str(peer_address)
    client = peer_address
    for hop in reversed(hops):
        address = _parse_address(hop)
        if address is None:
            return str(peer_address)  # not what a proxy of ours writes: believe none of it
        client = address
        if not _is_trusted(address, networks):
            break
    return str(client)


def request_client_address(request: web.Request) -> str:
    return client_address(
        request.remote, request.headers.getall(FORWARDED_FOR_HEADER, ()), request.app[SETTINGS].trusted_proxies
    )


def unauthorized() -> ApiError:
    # One body for a missing and a wrong key: the answer tells nothing about which keys exist.
    return ApiError(401, "unauthorized", "a valid X-API-Key is required")


async def identify(request: web.Request) -> tuple[Caller, str, float]:
    """The caller, the key of its quota bucket and its quota in requests per second; 401 for an
    unknown API key."""
    address = request_client_address(request)
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key is None:
        # The caller's scope (its Idempotency-Keys') is its own address; the quota is its /64's.
        return Caller.browser(address), f"browser:{address_scope(address)}", request.app[SETTINGS].browser_rps
    # Keys are stored as SHA-256: the lookup compares hashes, never the key itself.
    partner = await request.app[PARTNER_KEYS].partner(hash_api_key(api_key), address_scope(address))
    if partner is None:
        raise unauthorized()
    caller = Caller.partner(partner.partner_id)
    return caller, caller.scope, partner.requests_per_second


async def admit(request: web.Request, *, partner_only: bool = False) -> Caller:
    """The caller, once the API key (401) and then the quota (429) have let it through."""
    if partner_only and API_KEY_HEADER not in request.headers:
        raise unauthorized()
    client, bucket, rate = await identify(request)
    wait_s = await request.app[QUOTAS].try_acquire(bucket, rate)
    if wait_s is not None:
        raise ApiError(429, "rate_limited", "too many requests; slow down", headers=retry_after_header(wait_s))
    return client
