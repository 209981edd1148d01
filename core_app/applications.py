"""What people and partners call: applications forwarded to the aggregator, offers streamed live.

Checks run in API.md's order (401, 429, 413, 415, 400) before anything is forwarded;
field validation (422) is the aggregator's, so there is one schema in one place.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from core_app.quotas import retry_after_header
from core_app.typedefs import AGGREGATOR, HUB, QUOTAS, SETTINGS, SOCKETS
from shared.access import bearer_token, readable_application
from shared.access_tokens import hash_api_key
from shared.http_api import ApiError, dumps, read_json_body, service_unavailable
from shared.live_stream import stream_offers
from shared.models import Partner

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

FORWARDED_RESPONSE_HEADERS = ("Retry-After", "Location", "Idempotent-Replayed")


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling: a partner (by API key) or a browser (by address)."""

    scope: str
    partner_id: str | None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"X-Osago-Client-Scope": self.scope}
        if self.partner_id is not None:
            headers["X-Osago-Partner-Id"] = self.partner_id
        return headers


async def identify(request: web.Request) -> tuple[Client, float]:
    """The caller and its quota in requests per second; 401 for an unknown API key."""
    api_key = request.headers.get("X-API-Key")
    if api_key is None:
        address = request.remote or "unknown"
        return Client(f"browser:{address}", None), request.app[SETTINGS].browser_rps
    partner = await Partner.get_or_none(api_key_hash=hash_api_key(api_key), active=True)
    if partner is None:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return Client(f"partner:{partner.id}", str(partner.id)), partner.requests_per_second


async def admit(request: web.Request) -> Client:
    client, rate = await identify(request)
    wait_s = await request.app[QUOTAS].try_acquire(client.scope, rate)
    if wait_s is not None:
        raise ApiError(429, "rate_limited", "too many requests; slow down", headers=retry_after_header(wait_s))
    return client


async def forward(
    request: web.Request, method: str, path: str, *, headers: dict[str, str], body: bytes | None = None
) -> web.Response:
    settings = request.app[SETTINGS]
    session = request.app[AGGREGATOR]
    headers = {**headers, "Authorization": f"Bearer {settings.service_token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        async with session.request(method, f"{settings.aggregator_url}{path}", data=body, headers=headers) as upstream:
            payload = await upstream.read()
            kept = {name: upstream.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in upstream.headers}
            if upstream.status >= 500 and upstream.status != 503:
                log.warning("aggregator error", extra={"status": upstream.status, "path": request.path})
                raise service_unavailable("the quoting service")
            return web.Response(body=payload, status=upstream.status, content_type="application/json", headers=kept)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        log.warning("aggregator unreachable", extra={"path": request.path})
        raise service_unavailable("the quoting service") from None


@routes.post("/api/v1/applications")
async def create_application(request: web.Request) -> web.Response:
    client = await admit(request)
    body = await read_json_body(request, request.app[SETTINGS].max_body_bytes)
    headers = client.headers
    if "Idempotency-Key" in request.headers:
        headers["Idempotency-Key"] = request.headers["Idempotency-Key"]
    return await forward(request, "POST", "/api/v1/applications", headers=headers, body=dumps(body).encode())


@routes.get("/api/v1/applications/{application_id}")
async def get_application(request: web.Request) -> web.Response:
    client = await admit(request)
    headers = client.headers
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        headers["X-Osago-Access-Token"] = token
    return await forward(request, "GET", f"/api/v1/applications/{request.match_info['application_id']}", headers=headers)


@routes.get("/api/v1/applications/{application_id}/offers")
async def offers_socket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and origin not in settings.allowed_origins:
        raise ApiError(403, "forbidden_origin", "this origin may not open offer streams")
    client = await admit(request)
    application = await readable_application(
        request.match_info["application_id"],
        access_token=request.query.get("token") or bearer_token(request.headers.get("Authorization")),
        partner_id=client.partner_id,
        token_secret=settings.token_secret,
    )
    if application is None:
        raise ApiError(404, "not_found", "no such application")
    return await stream_offers(
        request, request.app[HUB], request.app[SOCKETS], application.id, heartbeat=settings.ws_heartbeat_s
    )
