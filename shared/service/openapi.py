"""The OpenAPI document served at /openapi.json, built from the same schema that validates.

The request body comes from ``ApplicationIn`` itself, so the document cannot drift from
what the server accepts; responses and errors follow API.md.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.intake.schema import ApplicationIn

REF = "#/components/schemas/{model}"


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "whole seconds"}}
    return response


_ERRORS = {
    "401": _error("missing or invalid API key or service token"),
    "404": _error("unknown application, or not yours"),
    "429": _error("over quota", retry_after=True),
    "503": _error("a dependency is down", retry_after=True),
}

_STATUS = ["pending", "offered", "declined", "failed", "unavailable", "timed_out"]

_COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
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
        "required": ["id", "premium", "currency", "coefficients", "valid_until", "insurer_reference"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "insurer": {"$ref": "#/components/schemas/Insurer"},
            "premium": {"type": "string", "pattern": r"^\d+\.\d{2}$"},
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
            "access_token": {"type": "string"},
            "deadline": {"type": "string", "format": "date-time"},
            "insurers": {"type": "array", "items": {"$ref": "#/components/schemas/Insurer"}},
            "links": {"type": "object", "properties": {"self": {"type": "string"}, "offers": {"type": "string"}}},
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
                        "reason": {"type": ["string", "null"]},
                    },
                },
            },
            "offers": {"type": "array", "items": {"$ref": "#/components/schemas/Offer"}},
        },
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    request_schema = ApplicationIn.model_json_schema(ref_template=REF)
    nested = request_schema.pop("$defs", {})
    application_id = {"name": "application_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OSAGO aggregator",
            "version": "1",
            "description": "One OSAGO application in, every insurer's offer streamed back live (see API.md).",
        },
        "components": {
            "schemas": {**nested, "ApplicationIn": request_schema, **_COMPONENTS},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "accessToken": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": {
            "/api/v1/applications": {
                "post": {
                    "summary": "Submit an application; every enabled insurer is asked at once",
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApplicationIn"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "accepted (also the replay of an Idempotency-Key)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Created"}}},
                        },
                        "400": _error("malformed JSON"),
                        "409": _error("Idempotency-Key reused with another body"),
                        "413": _error("body over the limit"),
                        "415": _error("not application/json"),
                        "422": _error("invalid fields, every one listed"),
                        **_ERRORS,
                    },
                },
                "get": {
                    "summary": "A partner's own applications, newest first",
                    "security": [{"apiKey": []}],
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "a page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Application"},
                                            },
                                            "next_cursor": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "422": _error("bad limit or cursor"),
                        **_ERRORS,
                    },
                },
            },
            "/api/v1/applications/{application_id}": {
                "get": {
                    "summary": "One application with every insurer's status and every offer",
                    "security": [{"accessToken": []}, {"apiKey": []}],
                    "parameters": [application_id],
                    "responses": {
                        "200": {
                            "description": "the application",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Application"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/api/v1/applications/{application_id}/offers": {
                "get": {
                    "summary": "WebSocket: stored events first, then live ones; `complete` last, then close 1000",
                    "description": "Events: offer, quote_status, complete (API.md). Token as ?token=.",
                    "parameters": [application_id, {"name": "token", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"101": {"description": "switching protocols"}, **_ERRORS},
                }
            },
        },
    }
