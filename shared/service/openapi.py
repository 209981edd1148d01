"""The OpenAPI document served at /openapi.json, built from the same schema that validates.

The request body comes from ``ApplicationIn`` itself, so the document cannot drift from
what the server accepts; responses and errors follow API.md. Each service serves the
operations it has: the core app (people and partners) and the aggregator API (the core
app's upstream, behind the service token, told who the caller is in headers).

Every status a handler or a middleware can answer is listed with its operation, including
the ones aiohttp itself raises (405 for another method, 400 for a plain GET of a
WebSocket path); ``tests/fuzz/`` holds the servers to it with schemathesis.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from shared.intake.access import ACCESS_TOKEN_PATTERN
from shared.intake.api_keys import API_KEY_HEADER, API_KEY_PATTERN
from shared.intake.caller import (
    ACCESS_TOKEN_HEADER,
    CLIENT_SCOPE_HEADER,
    PARTNER_HEADER,
    PARTNER_ID_PATTERN,
    SCOPE_PATTERN,
)
from shared.intake.idempotency import IDEMPOTENCY_KEY_HEADER, KEY_PATTERN, KEY_RULE
from shared.intake.schema import ApplicationIn
from shared.intake.schema.beyond import RULES

REF = "#/components/schemas/{model}"

Service = Literal["core", "aggregator"]

_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "description": "whole seconds"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(_ref("Error"))}
    if retry_after:
        response["headers"] = _RETRY_AFTER
    return response


_401 = _error("missing or invalid API key or service token")
_404 = _error("unknown application, or not yours (no credentials, a wrong token, another partner)")
_429 = _error("over quota; on the offers socket also `too_many_streams` (the per-instance cap)", retry_after=True)
_503 = _error("a dependency is down", retry_after=True)
# aiohttp's own answers, in the error shape (shared.platform.http_api.error_middleware).
_405 = {
    "description": "another method than the ones documented for this path",
    "headers": {"Allow": {"schema": {"type": "string"}, "description": "the methods this path answers"}},
    "content": _json(_ref("Error")),
}
_NOT_AN_UPGRADE = _error("not a WebSocket upgrade (a plain GET of the socket's address)")

_STATUS = ["pending", "offered", "declined", "failed", "unavailable", "timed_out"]
_FINAL_NOT_OFFERED = ["declined", "failed", "unavailable", "timed_out"]
_UUID = {"type": "string", "format": "uuid"}
_EVENT_BASE = {"event_id": {"type": "string", "minLength": 1}, "application_id": _UUID}

# The offers socket's server -> client text frames (API.md), one JSON event each.
_EVENTS: dict[str, Any] = {
    "OfferEvent": {
        "type": "object",
        "description": "an insurer's offer: that insurer's final event",
        "required": ["type", "event_id", "application_id", "insurer", "offer"],
        "properties": {
            "type": {"const": "offer"},
            **_EVENT_BASE,
            "insurer": _ref("Insurer"),
            "offer": {
                "type": "object",
                "required": ["id", "premium", "currency", "coefficients", "valid_until", "insurer_reference"],
                "properties": {
                    "id": _UUID,
                    "premium": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"},
                    "currency": {"const": "RUB"},
                    "coefficients": {"type": "object", "additionalProperties": {"type": "string"}},
                    "valid_until": {"type": "string", "format": "date-time"},
                    "insurer_reference": {"type": "string"},
                },
            },
        },
    },
    "QuoteStatusEvent": {
        "type": "object",
        "description": "an insurer that gave no offer: that insurer's final event",
        "required": ["type", "event_id", "application_id", "insurer", "status", "reason"],
        "properties": {
            "type": {"const": "quote_status"},
            **_EVENT_BASE,
            "insurer": _ref("Insurer"),
            "status": {"enum": _FINAL_NOT_OFFERED},
            "reason": {"type": "string", "minLength": 1},
        },
    },
    "CompleteEvent": {
        "type": "object",
        "description": "always the last event; the server then closes with code 1000",
        "required": ["type", "event_id", "application_id", "offers", "statuses"],
        "properties": {
            "type": {"const": "complete"},
            **_EVENT_BASE,
            "offers": {"type": "integer", "minimum": 0},
            "statuses": {
                "type": "object",
                "required": ["offered", *_FINAL_NOT_OFFERED],
                "properties": {name: {"type": "integer", "minimum": 0} for name in ["offered", *_FINAL_NOT_OFFERED]},
            },
        },
    },
    "OffersSocketEvent": {
        "description": (
            "one text frame of the offers socket; clients ignore event types they do not know "
            "(progress events carry event_id and application_id too)"
        ),
        "oneOf": [_ref("OfferEvent"), _ref("QuoteStatusEvent"), _ref("CompleteEvent")],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                "offer": REF.format(model="OfferEvent"),
                "quote_status": REF.format(model="QuoteStatusEvent"),
                "complete": REF.format(model="CompleteEvent"),
            },
        },
    },
}

_COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "minLength": 1},
                    "message": {"type": "string", "minLength": 1},
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["path", "message"],
                            "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    "Offer": {
        "type": "object",
        "required": ["id", "insurer", "premium", "currency", "coefficients", "valid_until", "insurer_reference"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "insurer": _ref("Insurer"),
            "premium": {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"},
            "currency": {"const": "RUB"},
            "coefficients": {"type": "object", "additionalProperties": {"type": "string"}},
            "valid_until": {"type": "string", "format": "date-time"},
            "insurer_reference": {"type": "string"},
        },
    },
    "Insurer": {
        "type": "object",
        "required": ["code", "name"],
        "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
    },
    "Created": {
        "type": "object",
        "required": ["id", "status", "access_token", "deadline", "insurers", "links"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"const": "pending"},
            "access_token": {"type": "string", "minLength": 1},
            "deadline": {"type": "string", "format": "date-time"},
            "insurers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "name", "status"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "status": {"const": "pending"},
                    },
                },
            },
            "links": {
                "type": "object",
                "required": ["self", "offers"],
                "properties": {"self": {"type": "string"}, "offers": {"type": "string"}},
            },
        },
    },
    "Application": {
        "type": "object",
        "required": ["id", "status", "deadline", "created_at", "insurers", "offers"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"enum": ["pending", "complete"]},
            "deadline": {"type": "string", "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
            "insurers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "name", "status", "reason"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "status": {"enum": _STATUS},
                        # API.md: a non-empty string for every final status but `offered`, null otherwise.
                        "reason": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "null"}]},
                    },
                },
            },
            "offers": {"type": "array", "items": _ref("Offer")},
        },
    },
    "ApplicationPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref("Application")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Reference": {
        "type": "object",
        "required": [
            "today",
            "region_codes",
            "max_drivers",
            "policy_start_max_days",
            "name_max",
            "city_max",
            "make_model_max",
            "frame_number_max",
            "max_body_bytes",
        ],
        "properties": {
            "today": {"type": "string", "format": "date", "description": "Moscow's date"},
            "region_codes": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{2,3}$"}},
            "max_drivers": {"type": "integer"},
            "policy_start_max_days": {"type": "integer"},
            "name_max": {"type": "integer"},
            "city_max": {"type": "integer"},
            "make_model_max": {"type": "integer"},
            "frame_number_max": {"type": "integer"},
            "max_body_bytes": {"type": "integer"},
        },
    },
}

_APPLICATION_ID = {"name": "application_id", "in": "path", "required": True, "schema": _UUID}
_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_KEY_HEADER,
    "in": "header",
    "description": f"{KEY_RULE}; a repeat with the same body answers the same 201",
    "schema": {"type": "string", "pattern": KEY_PATTERN},
}
_ACCESS_TOKEN_SCHEMA = {"type": "string", "pattern": ACCESS_TOKEN_PATTERN}
# On the core app a key is optional where browsers call too: without one it is the browser path.
_API_KEY = {
    "name": API_KEY_HEADER,
    "in": "header",
    "description": "a partner's API key (optional: without one the call is the browser path; a key given must be valid)",
    "schema": {"type": "string", "pattern": API_KEY_PATTERN},
}
_TOKEN_QUERY = {
    "name": "token",
    "in": "query",
    "description": "the application's access token",
    "schema": _ACCESS_TOKEN_SCHEMA,
}
# What the core app tells the aggregator about its caller (shared.intake.caller).
_CALLER_HEADERS = [
    {
        "name": CLIENT_SCOPE_HEADER,
        "in": "header",
        "description": 'whose Idempotency-Keys: "service" (absent), "partner:<id>" or "browser:<address>"',
        "schema": {"type": "string", "pattern": SCOPE_PATTERN},
    },
    {
        "name": PARTNER_HEADER,
        "in": "header",
        "description": "the partner the core app authenticated (with the scope partner:<the same id>)",
        "schema": {"type": "string", "pattern": PARTNER_ID_PATTERN},
    },
]
_ACCESS_TOKEN = {
    "name": ACCESS_TOKEN_HEADER,
    "in": "header",
    "description": "the application's access token, as the caller gave it to the core app",
    "schema": _ACCESS_TOKEN_SCHEMA,
}

# What the document cannot say in JSON Schema, in words (shared.intake.schema.beyond).
_CREATE_DESCRIPTION = (
    "The body's schema states every rule of each field and the either-or rules (a VIN, body or "
    "chassis number; named drivers or `unlimited_drivers`; an ePTS without a series). A body it "
    "allows is refused (422, naming the field) only for these rules, which JSON Schema cannot say:\n\n"
    + "\n".join(f"- {rule.rule}" for rule in RULES)
    + "\n\nThe server also accepts what it normalises into the schema's spelling (any case, spaces, "
    "Cyrillic look-alikes of Latin letters in a VIN and the reverse in a plate); the 201 body's "
    "application holds the normalised values."
)


def _created() -> dict[str, Any]:
    return {
        "description": "accepted (also the replay of an Idempotency-Key)",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": "the application's address (a new one only)"},
            "Idempotent-Replayed": {"schema": {"const": "true"}, "description": "on a replay only"},
        },
        "content": _json(_ref("Created")),
    }


def _create(service: Service) -> dict[str, Any]:
    errors: dict[str, Any] = {
        "400": _error(
            "malformed JSON, a malformed Idempotency-Key"
            + (", or caller headers the core app would never send" if service == "aggregator" else "")
        ),
        "401": _401,
        "405": _405,
        "409": _error("Idempotency-Key reused with another body"),
        "413": _error("body over the limit"),
        "415": _error("not application/json"),
        "422": _error("invalid fields, every one listed"),
        "429": _error("over quota", retry_after=True),
        "503": _503,
    }
    return {
        "summary": "Submit an application; every enabled insurer is asked at once",
        "description": _CREATE_DESCRIPTION
        + (
            "\n\nCaller headers (a rule between two headers, which JSON Schema cannot say): "
            f"{PARTNER_HEADER}, when given, is the id of {CLIENT_SCOPE_HEADER} `partner:<id>`, and names "
            "a partner; otherwise a 400 `bad_client_scope`. The core app sends only partners it authenticated."
            if service == "aggregator"
            else ""
        ),
        "parameters": [_IDEMPOTENCY_KEY, *(_CALLER_HEADERS if service == "aggregator" else [_API_KEY])],
        "requestBody": {"required": True, "content": _json(_ref("ApplicationIn"))},
        "responses": {"201": _created(), **errors},
    }


def _read_one(service: Service) -> dict[str, Any]:
    parameters = [_APPLICATION_ID, *([_ACCESS_TOKEN, *_CALLER_HEADERS] if service == "aggregator" else [])]
    operation: dict[str, Any] = {
        "summary": "One application with every insurer's status and every offer",
        "parameters": parameters,
        "responses": {
            "200": {"description": "the application", "content": _json(_ref("Application"))},
            "401": _401,
            "404": _404,
            "405": _405,
            **({"429": _429} if service == "core" else {}),
            "503": _503,
        },
    }
    if service == "core":
        # Anybody may ask: without credentials that open it, the answer is the 404 of an unknown
        # application, never a 401 (API.md: whether an application exists is not told).
        operation["security"] = [{}, {"accessToken": []}, {"apiKey": []}]
    return operation


def _offers_socket(service: Service) -> dict[str, Any]:
    parameters = [
        _APPLICATION_ID,
        _TOKEN_QUERY,
        *([_ACCESS_TOKEN, *_CALLER_HEADERS] if service == "aggregator" else []),
    ]
    responses: dict[str, Any] = {
        "101": {"description": "switching protocols"},
        "400": _NOT_AN_UPGRADE,
        "401": _401,
    }
    if service == "core":
        responses["403"] = _error("a browser's Origin that is not configured (`forbidden_origin`)")
    responses.update({"404": _404, "405": _405, "429": _429, "503": _503})
    return {
        "summary": "WebSocket: stored events first, then live ones; `complete` last, then close 1000",
        "description": (
            "A WebSocket handshake (`Connection: Upgrade`, `Upgrade: websocket`); a plain GET that is "
            "admitted is answered 400. "
            "Server -> client text frames, one JSON event each: `#/components/schemas/OffersSocketEvent` "
            "(offer, quote_status, complete; API.md). Token as ?token=. Every refusal "
            "is an HTTP answer before the upgrade."
        ),
        "parameters": parameters,
        "responses": responses,
    }


def _list() -> dict[str, Any]:
    return {
        "summary": "A partner's own applications, newest first",
        "security": [{"apiKey": []}],
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
            {
                "name": "cursor",
                "in": "query",
                "description": ("opaque: a `next_cursor` this list returned; any other value is a 422 naming `cursor`"),
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,200}$"},
            },
        ],
        "responses": {
            "200": {"description": "a page", "content": _json(_ref("ApplicationPage"))},
            "401": _error("no API key, or one that is not valid"),
            "405": _405,
            "422": _error("bad limit or cursor"),
            "429": _429,
            "503": _503,
        },
    }


def _reference() -> dict[str, Any]:
    return {
        "summary": "What the page's form checks with: Moscow's date, region codes, the schema's limits",
        # Anybody may ask (the page does, without a key); an X-API-Key given must be valid.
        "security": [{}, {"apiKey": []}],
        "parameters": [_API_KEY],
        "responses": {
            "200": {"description": "the reference data", "content": _json(_ref("Reference"))},
            "401": _401,
            "405": _405,
            "429": _429,
            "503": _503,
        },
    }


@cache
def openapi_document(service: Service = "core") -> dict[str, Any]:
    request_schema = ApplicationIn.model_json_schema(ref_template=REF)
    nested = request_schema.pop("$defs", {})
    applications: dict[str, Any] = {"post": _create(service)}
    if service == "core":
        applications["get"] = _list()
        security_schemes: dict[str, Any] = {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": f"a partner's key, as `osago-admin create-partner` prints it ({API_KEY_PATTERN})",
            },
            "accessToken": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "application access token",
                "description": (
                    f"`Authorization: Bearer <access_token>`, the token of the 201 body ({ACCESS_TOKEN_PATTERN})"
                ),
            },
        }
    else:
        security_schemes = {"serviceToken": {"type": "http", "scheme": "bearer", "description": "OSAGO_SERVICE_TOKEN"}}
    paths: dict[str, Any] = {
        "/api/v1/applications": applications,
        "/api/v1/applications/{application_id}": {"get": _read_one(service)},
        "/api/v1/applications/{application_id}/offers": {"get": _offers_socket(service)},
    }
    if service == "core":
        paths["/api/v1/reference"] = {"get": _reference()}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "OSAGO aggregator" if service == "core" else "OSAGO aggregator API (internal)",
            "version": "1",
            "description": "One OSAGO application in, every insurer's offer streamed back live (see API.md).",
        },
        "components": {
            "schemas": {**nested, "ApplicationIn": request_schema, **_COMPONENTS, **_EVENTS},
            "securitySchemes": security_schemes,
        },
        "paths": paths,
    }
    if service == "aggregator":
        document["security"] = [{"serviceToken": []}]
    return document
