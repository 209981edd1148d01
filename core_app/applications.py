"""What people and partners call: applications forwarded to the aggregator, offers streamed live.

Checks run in API.md's order (401, 429, 413, 415, 400) before anything is forwarded;
field validation (422) is the aggregator's, so there is one schema in one place.

Upstream URLs are built from typed parts only: the configured base, constant path segments
and an application id parsed here as a UUID and written in its canonical form. Nothing a
client typed (path, query, fragment, however encoded) ever becomes part of a URL that
carries the service token; an id that is not a UUID is a 404 before anything is forwarded.
"""

from __future__ import annotations

import logging
import re
import uuid

import aiohttp
from aiohttp import web
from yarl import URL

from core_app.gate import admit
from core_app.typedefs import AGGREGATOR, SETTINGS
from shared.intake.access import TokenKeys, bearer_token, readable_application_id
from shared.intake.caller import ACCESS_TOKEN_HEADER
from shared.intake.idempotency import IDEMPOTENCY_KEY_HEADER, idempotency_key
from shared.platform.http_api import ApiError, dumps, read_json_body, service_unavailable
from shared.platform.settings import Settings
from shared.service.app import offers_stream

log = logging.getLogger(__name__)

FORWARDED_RESPONSE_HEADERS = ("Retry-After", "Location", "Idempotent-Replayed")
APPLICATIONS_PATH = ("api", "v1", "applications")
# The only spelling of an id we issue (str(uuid), any case); uuid.UUID() would also take
# braces, "urn:uuid:" and hex without hyphens, which no client of ours was ever given.
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def application_id_or_404(raw: str) -> uuid.UUID:
    """The id in the path as a UUID; 404 for anything else, before any forwarding or query."""
    if _UUID_TEXT.fullmatch(raw) is None:
        raise not_found()
    return uuid.UUID(raw)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "no such application")


def aggregator_url(settings: Settings, application_id: uuid.UUID | None = None) -> URL:
    """``<aggregator_url>/api/v1/applications[/<id>]``: constant segments and a canonical UUID only.

    The base's own path is kept (a prefix behind a balancer), its query and fragment dropped.
    """
    segments = [*APPLICATIONS_PATH]
    if application_id is not None:
        segments.append(str(application_id))  # 36 characters of hex and hyphens
    return URL(settings.aggregator_url).joinpath(*segments)


async def forward(
    request: web.Request, method: str, url: URL, *, headers: dict[str, str], body: bytes | None = None
) -> web.Response:
    settings = request.app[SETTINGS]
    session = request.app[AGGREGATOR]
    headers = {**headers, "Authorization": f"Bearer {settings.service_token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        # Never follow a redirect: it would carry the service token wherever it points.
        # (A Location the aggregator sets is passed on to the client as it is.)
        async with session.request(method, url, data=body, headers=headers, allow_redirects=False) as upstream:
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
    key = idempotency_key(request.headers)
    if key is not None:
        headers[IDEMPOTENCY_KEY_HEADER] = key
    url = aggregator_url(request.app[SETTINGS])
    return await forward(request, "POST", url, headers=headers, body=dumps(body).encode())


async def get_application(request: web.Request) -> web.Response:
    # 401 and 429 first (API.md: an invalid X-API-Key is 401 on any path), then the id.
    client = await admit(request)
    application_id = application_id_or_404(request.match_info["application_id"])
    headers = client.headers
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        headers[ACCESS_TOKEN_HEADER] = token
    return await forward(request, "GET", aggregator_url(request.app[SETTINGS], application_id), headers=headers)


async def offers_socket(request: web.Request) -> web.StreamResponse:
    """The live stream; every refusal (403, 401, 429, 404) is an HTTP answer before the upgrade."""
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    # Browsers always send Origin on a WebSocket; other pages must not read our streams
    # with the visitor's network position (cross-site WebSocket hijacking).
    if origin is not None and origin not in settings.allowed_origins:
        raise ApiError(403, "forbidden_origin", "this origin may not open offer streams")
    client = await admit(request)
    parsed_id = application_id_or_404(request.match_info["application_id"])
    application_id = await readable_application_id(
        str(parsed_id),
        access_token=request.query.get("token") or bearer_token(request.headers.get("Authorization")),
        partner_id=client.partner_id,
        token_keys=TokenKeys.of(settings),
    )
    if application_id is None:
        raise not_found()
    return await offers_stream(request, application_id)
