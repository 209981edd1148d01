"""POST/GET /api/v1/applications and the offers WebSocket of the aggregator API.

The aggregator trusts only callers holding the service token (the core app), which
names the person or partner it authenticated in headers (``shared.intake.caller``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from aggregator_api.typedefs import INSURERS, JOB_MARKS, JOB_PUBLISHES, PUBLISHER, SETTINGS
from shared.intake.access import TokenKeys, access_token_for, readable_application_id
from shared.intake.caller import ACCESS_TOKEN_HEADER, PARTNER_HEADER, Caller
from shared.intake.idempotency import idempotency_key
from shared.intake.schema import ApplicationInvalid, parse_application
from shared.intake.store import store_application
from shared.live.application_view import ApplicationSnapshot, reload_snapshot
from shared.models import Application, ApplicationStatus, Quote
from shared.platform.amqp import ConfirmingPublisher
from shared.platform.clock import iso_utc, moscow_today, utc_now
from shared.platform.db import REPLICA_READS
from shared.platform.http_api import ApiError, json_response, read_json_body
from shared.quoting.jobs import QuoteJob
from shared.quoting.publishing import JobMarks, publish_jobs
from shared.service.app import offers_stream

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def creation_body(
    application_id: uuid.UUID, deadline: datetime, insurers: list[tuple[str, str]], token_keys: TokenKeys
) -> dict[str, Any]:
    """The 201 body; rebuilt identically for an idempotent replay (the state at creation).

    The access token is derived from the stored deadline, so a replay hands out the same one
    (under the current secret: after a rotation, a replay gets a token of the new one).
    """
    path = f"/api/v1/applications/{application_id}"
    return {
        "id": str(application_id),
        "status": "pending",
        "access_token": access_token_for(str(application_id), deadline, token_keys),
        "deadline": iso_utc(deadline),
        "insurers": [{"code": code, "name": name, "status": "pending"} for code, name in insurers],
        "links": {"self": path, "offers": f"{path}/offers"},
    }


async def replay(application: Application, body_fingerprint: str, token_keys: TokenKeys) -> web.Response:
    if application.request_fingerprint != body_fingerprint:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used with another body")
    quotes = (
        await Quote.filter(application_id=application.id)
        .order_by("insurer_code")
        .values_list("insurer_code", "insurer_name")
    )
    body = creation_body(application.id, application.deadline, list(quotes), token_keys)
    return json_response(body, status=201, headers={"Idempotent-Replayed": "true"})


@routes.post("/api/v1/applications")
async def create_application(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    caller = Caller.from_headers(request.headers)
    key = idempotency_key(request.headers)
    body = await read_json_body(request, settings.max_body_bytes)
    body_fingerprint = fingerprint(body)
    if key is not None:
        existing = await Application.get_or_none(client_scope=caller.scope, idempotency_key=key)
        if existing is not None:
            return await replay(existing, body_fingerprint, TokenKeys.of(settings))
    try:
        parsed = parse_application(body, today=moscow_today())
    except ApplicationInvalid as exc:
        raise ApiError(422, "invalid_fields", "some fields are invalid", exc.fields) from None
    payload = parsed.to_payload()

    insurers = request.app[INSURERS]  # sorted by code, like every listing of quotes
    application_id = uuid.uuid4()
    deadline = utc_now() + timedelta(seconds=settings.quote_deadline_s)
    quotes = [
        Quote(id=uuid.uuid4(), application_id=application_id, insurer_code=i.code, insurer_name=i.name)
        for i in insurers
    ]
    try:
        await store_application(
            application_id,
            caller,
            key,
            body_fingerprint,
            payload,
            deadline,
            quotes,
        )
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first.
        existing = await Application.get_or_none(client_scope=caller.scope, idempotency_key=key)
        if existing is None:
            raise
        return await replay(existing, body_fingerprint, TokenKeys.of(settings))

    # The 201 does not wait for the broker's confirms (a quorum queue confirms after its disk
    # write): the application is committed, and the outbox relay publishes any job this
    # background publish does not get confirmed, crash included.
    request.app[JOB_PUBLISHES].start(
        publish_new_jobs(request.app[PUBLISHER], request.app[JOB_MARKS], application_id, deadline, quotes)
    )
    log.info("application accepted", extra={"application_id": str(application_id), "quotes": len(quotes)})
    body = creation_body(application_id, deadline, [(i.code, i.name) for i in insurers], TokenKeys.of(settings))
    return json_response(body, status=201, headers={"Location": body["links"]["self"]})


async def publish_new_jobs(
    publisher: ConfirmingPublisher, marks: JobMarks, application_id: uuid.UUID, deadline: datetime, quotes: list[Quote]
) -> int:
    """Publish after commit; what the broker did not confirm stays for the outbox relay."""
    deadline_epoch = deadline.timestamp()
    jobs = [QuoteJob(str(q.id), str(application_id), q.insurer_code, deadline_epoch) for q in quotes]
    published = await publish_jobs(publisher, jobs)
    if published:
        marks.add(published)
    if len(published) < len(quotes):
        log.warning(
            "jobs left to the outbox relay",
            extra={"application_id": str(application_id), "unpublished": len(quotes) - len(published)},
        )
    return len(published)


async def _readable_id(request: web.Request, connection: BaseDBAsyncClient | None = None) -> uuid.UUID | None:
    return await readable_application_id(
        request.match_info["application_id"],
        access_token=request.headers.get(ACCESS_TOKEN_HEADER) or request.query.get("token"),
        partner_id=request.headers.get(PARTNER_HEADER),
        token_keys=TokenKeys.of(request.app[SETTINGS]),
        connection=connection,
    )


def _complete(snapshot: ApplicationSnapshot | None) -> bool:
    """A complete application never changes again: the replica's copy of it is the whole answer.
    Anything else (not there yet, still pending) may be behind the primary, which answers instead."""
    return snapshot is not None and snapshot.application.status is ApplicationStatus.COMPLETE


@routes.get("/api/v1/applications/{application_id}")
async def get_application(request: web.Request) -> web.Response:
    async def read(connection: BaseDBAsyncClient) -> ApplicationSnapshot | None:
        application_id = await _readable_id(request, connection)
        return None if application_id is None else await reload_snapshot(application_id, connection)

    snapshot = await REPLICA_READS.read(read, fresh_enough=_complete)
    if snapshot is None:
        raise ApiError(404, "not_found", "no such application")
    return json_response(snapshot.view())


@routes.get("/api/v1/applications/{application_id}/offers")
async def offers_socket(request: web.Request) -> web.StreamResponse:
    application_id = await _readable_id(request)  # the primary, like the snapshot the socket opens with
    if application_id is None:
        raise ApiError(404, "not_found", "no such application")
    return await offers_stream(request, application_id)
