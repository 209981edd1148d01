"""The core app's gate, in front of any forwarding: 401, 429, 413, 415, 400, and 503 when
the aggregator cannot be reached. Runs on the real database and broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from aggregator_api.admin import insert_partner
from core_app.app import create_app
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.samples import sample_application

PARTNER_RPS = 2


@pytest.fixture(scope="module")
async def core_without_aggregator(infrastructure: RunInfrastructure) -> AsyncIterator[TestClient]:
    settings = infrastructure.settings(
        aggregator_url=f"http://127.0.0.1:{free_port()}", browser_rps=1000.0, allowed_origins=("http://ok.test",)
    )
    async with in_process(create_app(settings)) as client:
        yield client


async def test_unknown_api_key_is_401_before_anything_else(core_without_aggregator: TestClient) -> None:
    response = await core_without_aggregator.post(
        "/api/v1/applications", data=b"{", headers={"X-API-Key": "osk_nope", "Content-Type": "text/plain"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    response = await core_without_aggregator.get("/api/v1/applications/x", headers={"X-API-Key": "osk_nope"})
    assert response.status == 401


async def test_partner_key_passes_the_gate_and_missing_aggregator_is_503(
    core_without_aggregator: TestClient,
) -> None:
    _, api_key = await insert_partner("Gate test partner", 50)
    response = await core_without_aggregator.post(
        "/api/v1/applications", json=sample_application(), headers={"X-API-Key": api_key}
    )
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["error"]["code"] == "unavailable"


async def test_body_checks_run_in_contract_order(core_without_aggregator: TestClient) -> None:
    too_big = json.dumps({"padding": "x" * 70_000})
    cases = [(too_big, "text/plain", 413), ("{}", "text/plain", 415), ("{", "application/json", 400)]
    for body, content_type, expected in cases:
        response = await core_without_aggregator.post(
            "/api/v1/applications", data=body, headers={"Content-Type": content_type}
        )
        assert response.status == expected
        error = (await response.json())["error"]
        assert error["message"] and error["fields"] == []


async def test_partner_over_quota_gets_429_with_retry_after(core_without_aggregator: TestClient) -> None:
    _, api_key = await insert_partner("Quota test partner", PARTNER_RPS)
    statuses = []
    for _ in range(PARTNER_RPS * 3):
        response = await core_without_aggregator.post(
            "/api/v1/applications", data=b"{", headers={"Content-Type": "application/json", "X-API-Key": api_key}
        )
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "rate_limited"
    # A burst of up to the rate is admitted (then refused before the body is even read).
    assert statuses[:PARTNER_RPS] == [400] * PARTNER_RPS
    assert 429 in statuses[PARTNER_RPS:]


async def test_websocket_from_a_foreign_origin_is_refused(core_without_aggregator: TestClient) -> None:
    response = await core_without_aggregator.get(
        "/api/v1/applications/00000000-0000-4000-8000-000000000000/offers?token=x",
        headers={
            "Origin": "http://evil.test",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status == 403


async def test_an_api_key_that_is_not_utf8_is_the_401_of_any_wrong_key(core_without_aggregator: TestClient) -> None:
    """Header bytes that are not UTF-8 arrive as surrogate escapes; hashing them was a 500."""
    assert core_without_aggregator.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", core_without_aggregator.port)
    try:
        writer.write(
            b"GET /api/v1/applications HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"X-API-Key: osk_\xff\xfe\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"401", answer[:300]
    assert json.loads(body)["error"]["code"] == "unauthorized"
