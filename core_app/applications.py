"""What people and partners call: applications forwarded to the aggregator, offers streamed live.

Checks run in API.md's order (401, 429, 413, 415, 400) before anything is forwarded;
field validation (422) is the aggregator's, so there is one schema in one place.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from core_app.gate import admit
from core_app.typedefs import AGGREGATOR, SETTINGS
from shared.intake.access import bearer_token, readable_application_id
from shared.intake.caller import ACCESS_TOKEN_HEADER
from shared.platform.http_api import ApiError, dumps, read_json_body, service_unavailable
from shared.service.app import offers_stream

log = logging.getLogger(__name__)

FORWARDED_RESPONSE_HEADERS = ("Retry-After", "Location", "Idempotent-Replayed")


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
    except (TimeoutError, aiohttp.ClientError):
        log.warning("aggregator unreachable", extra={"path": request.path})
        raise service_unavailable("the quoting service") from None


async def create_application(request: web.Request) -> web.Response:
    client = await admit(request)
    body = await read_json_body(request, request.app[SETTINGS].max_body_bytes)
    headers = client.headers
    if "Idempotency-Key" in request.headers:
        headers["Idempotency-Key"] = request.headers["Idempotency-Key"]
    return await forward(request, "POST", "/api/v1/applications", headers=headers, body=dumps(body).encode())


async def get_application(request: web.Request) -> web.Response:
    client = await admit(request)
    headers = client.headers
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        headers[ACCESS_TOKEN_HEADER] = token
    return await forward(
        request, "GET", f"/api/v1/applications/{request.match_info['application_id']}", headers=headers
    )


async def offers_socket(request: web.Request) -> web.StreamResponse:
    """The live stream; every refusal (403, 401, 429, 404) is an HTTP answer before the upgrade."""
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    # Browsers always send Origin on a WebSocket; other pages must not read our streams
    # with the visitor's network position (cross-site WebSocket hijacking).
    if origin is not None and origin not in settings.allowed_origins:
        raise ApiError(403, "forbidden_origin", "this origin may not open offer streams")
    client = await admit(request)
    application_id = await readable_application_id(
        request.match_info["application_id"],
        access_token=request.query.get("token") or bearer_token(request.headers.get("Authorization")),
        partner_id=client.partner_id,
        token_secret=settings.token_secret,
    )
    if application_id is None:
        raise ApiError(404, "not_found", "no such application")
    return await offers_stream(request, application_id)
