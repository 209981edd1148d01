"""The core app's limits and access rules, each set to a small configured value and hit for real.

The core app runs in this process on the run's real database and broker; its aggregator
is down on purpose (nothing here needs it). Applications are stored directly, without
quotes, so their streams stay open for as long as a test needs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core_app.app import create_app
from core_app.typedefs import HUB
from shared.platform.settings import Settings
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.stored import open_application

Client = TestClient[web.Request, web.Application]

ALLOWED_ORIGIN = "http://ok.test"
MAX_BODY_BYTES = 2048
MAX_MESSAGE_BYTES = 1024
IDLE_TIMEOUT_S = 1.5
MAX_SOCKETS = 2
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.fixture(scope="module")
def settings(infrastructure: RunInfrastructure) -> Settings:
    return infrastructure.settings(
        aggregator_url=f"http://127.0.0.1:{free_port()}",
        browser_rps=1000.0,
        allowed_origins=(ALLOWED_ORIGIN,),
        max_body_bytes=MAX_BODY_BYTES,
        ws_max_message_bytes=MAX_MESSAGE_BYTES,
        ws_idle_timeout_s=IDLE_TIMEOUT_S,
        ws_heartbeat_s=0.0,  # no pings: only the idle timeout can end a silent socket
        ws_max_sockets_per_application=MAX_SOCKETS,
    )


@pytest.fixture(scope="module")
async def core(settings: Settings) -> AsyncIterator[Client]:
    async with in_process(create_app(settings)) as client:
        yield client


def offers_path(application_id: str, token: str | None = None) -> str:
    path = f"/api/v1/applications/{application_id}/offers"
    return path if token is None else f"{path}?token={token}"


# --- request body ---------------------------------------------------------------------------


async def test_body_over_the_configured_limit_is_413_with_or_without_content_length(core: Client) -> None:
    oversized = b'{"padding": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = await core.post("/api/v1/applications", data=oversized, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        # Chunked: no Content-Length to refuse up front, so the read itself must stop.
        yield oversized[:1000]
        yield oversized[1000:]

    response = await core.post("/api/v1/applications", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413

    # Under the limit the gate lets it through (to an aggregator that is down here: 503).
    small = b'{"padding": "' + b"x" * (MAX_BODY_BYTES - 100) + b'"}'
    response = await core.post("/api/v1/applications", data=small, headers={"Content-Type": "application/json"})
    assert response.status == 503


# --- WebSocket frames, idleness, sockets per application ------------------------------------------


async def test_frame_over_the_configured_size_closes_the_socket_with_1009(core: Client, settings: Settings) -> None:
    application_id, token = await open_application(settings)
    async with core.ws_connect(offers_path(application_id, token)) as ws:
        await ws.send_str("x" * (MAX_MESSAGE_BYTES // 2))  # small frames are read and ignored
        await ws.send_str("x" * (MAX_MESSAGE_BYTES + 1))
        message = await ws.receive(timeout=10)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG  # 1009


async def test_offers_socket_declines_compression_that_browsers_offer(core: Client, settings: Settings) -> None:
    application_id, token = await open_application(settings)
    async with core.ws_connect(offers_path(application_id, token), compress=15) as ws:
        assert ws.compress == 0  # no permessage-deflate in the handshake answer
        assert core.app[HUB].subscriber_count(application_id) == 1


async def test_silent_client_is_closed_after_the_idle_timeout(core: Client, settings: Settings) -> None:
    application_id, token = await open_application(settings)
    async with core.ws_connect(offers_path(application_id, token), autoping=False) as ws:
        # The server has nothing to send (no quote will ever finish) and we say nothing.
        message = await ws.receive(timeout=IDLE_TIMEOUT_S * 10)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert message.extra == "idle timeout"


async def test_client_that_keeps_talking_outlives_the_idle_timeout(core: Client, settings: Settings) -> None:
    application_id, token = await open_application(settings)
    async with core.ws_connect(offers_path(application_id, token)) as ws:
        server_said = asyncio.create_task(ws.receive())
        # Twice the idle timeout, with a frame every sixth of it: never idle for long.
        for _ in range(12):
            await ws.send_str("still here")
            await asyncio.sleep(IDLE_TIMEOUT_S / 6)
        still_open = not server_said.done() and core.app[HUB].subscriber_count(application_id) == 1
        server_said.cancel()
        await asyncio.gather(server_said, return_exceptions=True)
    assert still_open, "the server closed a socket whose client was talking"


async def test_sockets_over_the_per_application_cap_are_refused_before_the_upgrade(
    core: Client, settings: Settings
) -> None:
    application_id, token = await open_application(settings)
    path = offers_path(application_id, token)
    held = [await core.ws_connect(path) for _ in range(MAX_SOCKETS)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await core.ws_connect(path)
        assert refused.value.status == 429
        # The same refusal, read as HTTP: the error shape and when to come back.
        response = await core.get(path, headers=UPGRADE_HEADERS)
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"]["code"] == "too_many_streams"

        # The cap is per application: another application's stream opens as usual.
        other_id, other_token = await open_application(settings)
        async with core.ws_connect(offers_path(other_id, other_token)) as other:
            assert not other.closed
    finally:
        first, *rest = held
        await first.close()
    try:
        # A closed socket frees its place (once the server has noticed the close).
        for _ in range(100):
            if core.app[HUB].subscriber_count(application_id) < MAX_SOCKETS:
                break
            await asyncio.sleep(0.05)
        async with core.ws_connect(path) as again:
            assert not again.closed
    finally:
        for ws in rest:
            await ws.close()


# --- who may open a stream ------------------------------------------------------------------------


async def test_streams_without_a_valid_token_are_refused_with_404_before_any_frame(
    core: Client, settings: Settings
) -> None:
    application_id, token = await open_application(settings)
    other_id, other_token = await open_application(settings)
    for path in (
        offers_path(application_id),
        offers_path(application_id, ""),
        offers_path(application_id, "not-a-token"),
        offers_path(application_id, other_token),
        offers_path(str(uuid.uuid4()), token),
        offers_path("not-a-uuid", token),
    ):
        response = await core.get(path, headers=UPGRADE_HEADERS)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"
    async with core.ws_connect(offers_path(other_id, other_token)) as ws:
        assert not ws.closed


async def test_browser_streams_are_accepted_only_from_configured_origins(core: Client, settings: Settings) -> None:
    application_id, token = await open_application(settings)
    async with core.ws_connect(offers_path(application_id, token), headers={"Origin": ALLOWED_ORIGIN}) as ws:
        assert not ws.closed
    for origin in ("http://evil.test", "null", f"{ALLOWED_ORIGIN}.evil.test"):
        response = await core.get(offers_path(application_id, token), headers={**UPGRADE_HEADERS, "Origin": origin})
        assert response.status == 403, origin
        assert (await response.json())["error"]["code"] == "forbidden_origin"


# --- CORS ---------------------------------------------------------------------------------------


async def test_cors_preflight_is_answered_for_configured_origins_only(core: Client) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key,idempotency-key",
    }
    response = await core.options("/api/v1/applications", headers={**preflight, "Origin": ALLOWED_ORIGIN})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-api-key", "idempotency-key"} <= allowed
    assert "Access-Control-Allow-Credentials" not in response.headers

    response = await core.options("/api/v1/applications", headers={**preflight, "Origin": "http://evil.test"})
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_headers_on_api_answers_but_not_on_the_page(core: Client) -> None:
    response = await core.get("/api/v1/reference", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]

    response = await core.get("/api/v1/reference", headers={"Origin": "http://evil.test"})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers

    for path in ("/", "/static/app.js"):
        response = await core.get(path, headers={"Origin": ALLOWED_ORIGIN})
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_reference_gives_the_form_what_the_server_checks_with(core: Client) -> None:
    response = await core.get("/api/v1/reference")
    assert response.status == 200
    body = await response.json()
    assert {"77", "102", "797"} <= set(body["region_codes"]) and "00" not in body["region_codes"]
    assert body["max_drivers"] == 5 and body["policy_start_max_days"] == 60
    assert body["max_body_bytes"] == MAX_BODY_BYTES
    assert len(body["today"]) == 10
