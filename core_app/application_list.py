"""``GET /api/v1/applications``: a partner's own applications, newest first, page by page.

Keyset pagination on ``(created_at, id)``: a page is "the next ``limit`` rows strictly
older than the last one seen", so rows created meanwhile neither shift nor repeat pages,
and each page costs one index range scan however deep the client has paged. The cursor
is opaque to clients (base64url of the last row's key); the query is always scoped to the
caller, so a cursor copied from another partner only says where to start in one's own list.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from core_app.gate import admit
from shared.live.application_view import load_snapshots
from shared.models import Application
from shared.platform.db import REPLICA_READS
from shared.platform.http_api import ApiError, json_response

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Longer than any cursor we issue; longer input is not worth decoding.
MAX_CURSOR_CHARS = 200


@dataclass(frozen=True, slots=True)
class Cursor:
    """The key of the last application of a page; the next page starts strictly after it."""

    created_at: datetime
    application_id: uuid.UUID

    def encode(self) -> str:
        # Full microseconds (not the milliseconds of the JSON bodies): the key must be exact.
        raw = json.dumps([self.created_at.isoformat(), str(self.application_id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        if not text or len(text) > MAX_CURSOR_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            created_at, application_id = json.loads(raw)
            moment = datetime.fromisoformat(created_at)
            if moment.tzinfo is None:
                return None
            return cls(moment, uuid.UUID(application_id))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            return None


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    cursor: Cursor | None


def parse_page_request(query: MultiMapping[str]) -> PageRequest:
    """``limit`` and ``cursor`` from the query string; one 422 naming every bad parameter."""
    fields: list[dict[str, str]] = []
    limit = DEFAULT_LIMIT
    raw_limit = query.get("limit")
    if raw_limit is not None:
        # Digits only: int() would also take " 7", "+7" and "٧" (an Arabic-Indic seven).
        if raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_LIMIT:
            limit = int(raw_limit)
        else:
            fields.append({"path": "limit", "message": f"must be a whole number from 1 to {MAX_LIMIT}"})
    cursor = None
    raw_cursor = query.get("cursor")
    if raw_cursor is not None:
        cursor = Cursor.decode(raw_cursor)
        if cursor is None:
            fields.append({"path": "cursor", "message": "must be a next_cursor value returned by this list"})
    if fields:
        raise ApiError(422, "invalid_fields", "some query parameters are invalid", fields)
    return PageRequest(limit, cursor)


async def list_applications(request: web.Request) -> web.Response:
    client = await admit(request, partner_only=True)
    page = parse_page_request(request.query)
    assert client.partner_id is not None  # partner_only
    # A list may be a moment behind (an application created just now shows on the next read):
    # it is read from the replica when there is one, and from the primary when it is down.
    body = await REPLICA_READS.read(lambda connection: read_page(connection, client.partner_id or "", page))
    return json_response(body)


async def read_page(connection: BaseDBAsyncClient, partner_id: str, page: PageRequest) -> dict[str, Any]:
    query = Application.filter(partner_id=partner_id).using_db(connection)
    if page.cursor is not None:
        after = page.cursor
        query = query.filter(
            Q(created_at__lt=after.created_at) | Q(created_at=after.created_at, id__lt=after.application_id)
        )
    # One row more than asked tells whether another page exists without a COUNT.
    rows = list(await query.order_by("-created_at", "-id").limit(page.limit + 1))
    shown = rows[: page.limit]
    next_cursor = None
    if len(rows) > page.limit:
        last = shown[-1]
        next_cursor = Cursor(last.created_at, last.id).encode()
    snapshots = await load_snapshots(shown, connection)
    return {"items": [snapshot.view() for snapshot in snapshots], "next_cursor": next_cursor}
