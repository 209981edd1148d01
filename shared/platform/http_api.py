"""The JSON error shape of API.md and the request-reading rules every HTTP service shares."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from shared.platform.amqp import PublishFailed
from shared.platform.db import DATABASE_UNREACHABLE

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRY_AFTER_S = 2


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[Mapping[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = list(fields)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.fields, self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Sequence[Mapping[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "fields": list(fields)}}
    return web.json_response(body, status=status, headers=headers, dumps=dumps)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=dumps)


def service_unavailable(what: str) -> ApiError:
    return ApiError(
        503, "unavailable", f"{what} is unavailable; try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)}
    )


# Failures of a dependency, not of the request: answered with 503 + Retry-After.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_UNREACHABLE, PublishFailed)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status == 413:
            return error_response(413, "body_too_large", "request body is too large")
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason, headers=_keep_allow(exc))
    except DEPENDENCY_ERRORS as exc:
        log.warning("dependency failure", extra={"path": request.path, "error": type(exc).__name__})
        return service_unavailable("a dependency").response()
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal", "internal error")


def _keep_allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


async def read_json_body(request: web.Request, max_bytes: int) -> Any:
    """The request body as JSON, checked in API.md's order: 413, 415, 400.

    The whole body, however many TCP segments or chunks it arrives in: ``content.read(n)``
    would return only what is buffered so far.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "body_too_large", f"request body is over {max_bytes} bytes")
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await read_body(request, max_bytes)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the body is not valid UTF-8 JSON") from None


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """Every byte of the body up to its end; 413 as soon as it passes ``max_bytes``
    (a chunked body has no Content-Length to refuse it by)."""
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, "body_too_large", f"request body is over {max_bytes} bytes")
    return bytes(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
