"""The web page and the reference data its form checks with.

The page's client-side checks mirror ``shared/intake/schema/``; what the browser
cannot know by itself (Moscow's "today", the region codes in use, the schema's limits)
comes from ``GET /api/v1/reference``, so the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from core_app.gate import admit
from core_app.typedefs import SETTINGS
from shared.intake.regions import REGION_CODES
from shared.intake.schema import fields as schema
from shared.platform.clock import moscow_today
from shared.platform.http_api import json_response

STATIC_DIR = Path(__file__).parent / "static"

# The page loads only its own script and style and talks only to its own origin;
# an injected <script> or a framing page gets nowhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


async def reference(request: web.Request) -> web.Response:
    await admit(request)
    return json_response(
        {
            "today": moscow_today().isoformat(),
            "region_codes": sorted(REGION_CODES, key=lambda code: (len(code), code)),
            "max_drivers": schema.MAX_DRIVERS,
            "policy_start_max_days": schema.POLICY_START_MAX_DAYS,
            "name_max": schema.NAME_MAX,
            "city_max": schema.CITY_MAX,
            "make_model_max": schema.MAKE_MODEL_MAX,
            "frame_number_max": schema.FRAME_NUMBER_MAX,
            "max_body_bytes": request.app[SETTINGS].max_body_bytes,
        }
    )
