"""Control API for tests and demos: insurer behaviour and the bonus-malus register (API.md)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from .behaviour import Behaviour, validation_messages
from .companies import Company
from .kbm import CLASSES, MAX_DOCUMENT_LENGTH, normalise_class, normalise_document
from .payments.api import PAYMENTS_KEY
from .state import SANDBOX_KEY, Sandbox

MAX_CONTROL_BODY = 16 * 1024


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(), status=status, content_type="application/json"
    )


def _error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return _json({"error": error}, status)


def _company(request: web.Request) -> tuple[Sandbox, Company | None]:
    sandbox = request.app[SANDBOX_KEY]
    return sandbox, sandbox.companies.get(request.match_info["code"])


def _describe(sandbox: Sandbox, company: Company) -> dict[str, Any]:
    return {
        "code": company.code,
        "name": company.name,
        "protocol": company.protocol,
        "behaviour": sandbox.behaviours[company.code].to_json(),
        "default_latency_ms": list(company.latency_ms),
        "refusal_rules": company.describe_rules(),
    }


async def list_insurers(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    return _json([_describe(sandbox, company) for company in sandbox.companies.values()])


async def get_behaviour(request: web.Request) -> web.Response:
    sandbox, company = _company(request)
    if company is None:
        return _error(404, "not_found", "unknown insurer")
    return _json(sandbox.behaviours[company.code].to_json())


async def put_behaviour(request: web.Request) -> web.Response:
    sandbox, company = _company(request)
    if company is None:
        return _error(404, "not_found", "unknown insurer")
    raw = await request.read()
    try:
        behaviour = Behaviour.from_body(raw, company.latency_ms, sandbox.behaviours[company.code])
    except ValidationError as error:
        return _error(422, "invalid_behaviour", "invalid behaviour", validation_messages(error))
    sandbox.behaviours[company.code] = behaviour
    return _json(behaviour.to_json())


async def delete_behaviour(request: web.Request) -> web.Response:
    sandbox, company = _company(request)
    if company is None:
        return _error(404, "not_found", "unknown insurer")
    sandbox.behaviours[company.code] = sandbox.default_behaviour(company)
    return web.Response(status=204)


def _document(request: web.Request) -> str | None:
    document = normalise_document(request.match_info["document"])
    return document if 0 < len(document) <= MAX_DOCUMENT_LENGTH else None


async def put_kbm(request: web.Request) -> web.Response:
    document = _document(request)
    if document is None:
        return _error(
            422,
            "invalid_document",
            "document must be 1..32 characters",
            [{"path": "document", "message": "1..32 characters"}],
        )
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or set(body) != {"class"}:
        return _error(
            422,
            "invalid_kbm",
            'body must be {"class": "<class>"}',
            [{"path": "class", "message": "required; no other fields"}],
        )
    kbm_class = normalise_class(body["class"])
    if kbm_class is None:
        return _error(
            422,
            "invalid_kbm",
            "unknown bonus-malus class",
            [{"path": "class", "message": f"one of {', '.join(CLASSES)}"}],
        )
    request.app[SANDBOX_KEY].kbm.set(document, kbm_class)
    return _json({"document": document, "class": kbm_class})


async def get_kbm(request: web.Request) -> web.Response:
    document = _document(request)
    if document is None:
        return _error(422, "invalid_document", "document must be 1..32 characters")
    kbm_class, registered = request.app[SANDBOX_KEY].kbm.lookup(document)
    return _json({"document": document, "class": kbm_class, "registered": registered})


async def delete_kbm(request: web.Request) -> web.Response:
    document = _document(request)
    if document is None:
        return _error(422, "invalid_document", "document must be 1..32 characters")
    request.app[SANDBOX_KEY].kbm.delete(document)
    return web.Response(status=204)


async def reset_all(request: web.Request) -> web.Response:
    """Every behaviour back to default and the register emptied (between test cases)."""
    sandbox = request.app[SANDBOX_KEY]
    sandbox.reset_behaviours()
    sandbox.kbm.clear()
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    """Counters that show bounded memory (hung calls, live poll operations, remembered keys),
    how often the most-asked quote was priced, and issuances per order."""
    sandbox = request.app[SANDBOX_KEY]
    return _json(
        {
            "hanging": sandbox.hanging,
            "poll_operations": sandbox.operations_count(),
            "idempotency_keys": sandbox.quoter.remembered(),
            "quotes_asked": sandbox.quoter.quotes_asked(),
            "most_times_one_quote_was_asked": sandbox.quoter.most_times_asked(),
            "quotes_asked_again": sandbox.quoter.quotes_asked_again(),
            "most_calls_at_once": dict(sandbox.calls_at_once.peak),
            # Final calculations and issuance: most_policies_for_one_order stays at most 1.
            **sandbox.back_office.stats(),
            **request.app[PAYMENTS_KEY].stats(),
        }
    )


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get("/sandbox/insurers", list_insurers)
    router.add_get("/sandbox/insurers/{code}/behaviour", get_behaviour)
    router.add_put("/sandbox/insurers/{code}/behaviour", put_behaviour)
    router.add_delete("/sandbox/insurers/{code}/behaviour", delete_behaviour)
    router.add_get("/sandbox/kbm/{document}", get_kbm)
    router.add_put("/sandbox/kbm/{document}", put_kbm)
    router.add_delete("/sandbox/kbm/{document}", delete_kbm)
    router.add_post("/sandbox/reset", reset_all)
    router.add_get("/sandbox/stats", stats)
