"""What the core app sends to the aggregator: only URLs built from typed parts.

The core app runs in this process on the run's real database and broker. Its
``aggregator_url`` points at a spy: a plain aiohttp server that answers 404 to anything and
records every request it receives (it plays no part of the aggregator's behaviour; it is
there to prove what was, or was not, sent with the service token).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer, TestClient

from aggregator_api.admin import insert_partner
from core_app.app import create_app
from shared.platform.settings import Settings
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import sample_application

SERVICE_TOKEN = "forwarding-test-service-token"
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
SOME_ID = "6f1c1f4e-3a57-4d55-9a43-0b5e2f6f0b1a"

# Ids a client may put in /api/v1/applications/{id}, as sent on the wire (already encoded).
HOSTILE_IDS = [
    "..%2F..%2F..%2Fmetrics",  # the reproduced one: GET /metrics on the aggregator
    "%2E%2E%2F%2E%2E%2F%2E%2E%2Fmetrics",  # the dots encoded too
    "..%2F..%2F..%2Fmetrics%3Fname%3Dosago_http_requests_total",  # a query smuggled in
    f"{SOME_ID}%3Fpartner_id%3Dx",  # a query after a valid id
    f"{SOME_ID}%23fragment",  # a fragment after a valid id
    "..%252F..%252F..%252Fmetrics",  # double encoding, decoded once by us and once upstream
    f"{SOME_ID}%2F",  # a trailing slash inside the id
    f"{SOME_ID}%2F..%2F..%2F..%2Fmetrics",  # a valid id, then a way out
    f"{SOME_ID}%20",  # whitespace after a valid id
    f"{{{SOME_ID}}}",  # forms uuid.UUID() takes but we do not issue
    f"urn:uuid:{SOME_ID}",
    SOME_ID.replace("-", ""),
]


@dataclass
class Spy:
    """Every request that reached the aggregator's address: (method, raw path with query, headers)."""

    url: str
    received: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture(scope="module")
async def spy() -> AsyncIterator[Spy]:
    # web.Server, not an Application: no router, so every request reaches the handler as sent.
    recorded = Spy(url="")

    async def record(request: web.BaseRequest) -> web.Response:
        recorded.received.append((request.method, request.raw_path, dict(request.headers)))
        return web.json_response({"error": {"code": "not_found", "message": "spy", "fields": []}}, status=404)

    server = RawTestServer(record, host="127.0.0.1")
    await server.start_server()
    recorded.url = str(server.make_url("")).rstrip("/")
    try:
        yield recorded
    finally:
        await server.close()


@pytest.fixture(scope="module")
async def core(infrastructure: RunInfrastructure, spy: Spy) -> AsyncIterator[TestClient]:
    settings = infrastructure.settings(
        aggregator_url=spy.url, service_token=SERVICE_TOKEN, browser_rps=10_000.0, allowed_origins=("http://ok.test",)
    )
    async with in_process(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def partner_key(core: TestClient) -> str:
    _, api_key = await insert_partner(f"Forwarding test partner {uuid.uuid4().hex[:6]}", 10_000)
    return api_key


@pytest.mark.parametrize("raw_id", HOSTILE_IDS)
async def test_hostile_application_id_is_404_and_nothing_reaches_the_aggregator(
    core: TestClient, spy: Spy, partner_key: str, raw_id: str
) -> None:
    spy.received.clear()
    # As a browser with some access token, and as a partner: both paths forward a GET.
    for headers in ({"Authorization": "Bearer some-token"}, {"X-API-Key": partner_key}):
        response = await core.get(f"/api/v1/applications/{raw_id}", headers=headers)
        assert response.status == 404, (raw_id, headers, await response.text())
        assert (await response.json())["error"]["code"] == "not_found"
    assert spy.received == [], f"{raw_id} reached the aggregator as {[r[:2] for r in spy.received]}"


@pytest.mark.parametrize("raw_id", HOSTILE_IDS)
async def test_hostile_application_id_on_the_offers_socket_is_404_before_the_upgrade(
    core: TestClient, spy: Spy, partner_key: str, raw_id: str
) -> None:
    spy.received.clear()
    for headers in ({}, {"X-API-Key": partner_key}):
        response = await core.get(
            f"/api/v1/applications/{raw_id}/offers?token=x", headers={**UPGRADE_HEADERS, **headers}
        )
        assert response.status == 404, (raw_id, headers)
    assert spy.received == []


async def test_a_path_with_a_literal_trailing_slash_is_404_and_not_forwarded(core: TestClient, spy: Spy) -> None:
    spy.received.clear()
    for path in (f"/api/v1/applications/{SOME_ID}/", "/api/v1/applications/", "/api/v1/applications//metrics"):
        response = await core.get(path, headers={"Authorization": "Bearer some-token"})
        assert response.status == 404, path
    assert spy.received == []


async def test_a_valid_id_is_forwarded_in_its_canonical_form_without_the_clients_query(
    core: TestClient, spy: Spy, partner_key: str
) -> None:
    spy.received.clear()
    application_id = uuid.uuid4()
    response = await core.get(
        f"/api/v1/applications/{str(application_id).upper()}?token=x&partner_id=y", headers={"X-API-Key": partner_key}
    )
    assert response.status == 404  # what the spy answered, passed on
    [(method, path, headers)] = spy.received
    assert (method, path) == ("GET", f"/api/v1/applications/{application_id}")
    assert headers["Authorization"] == f"Bearer {SERVICE_TOKEN}"


async def test_create_is_forwarded_to_the_fixed_path_only(core: TestClient, spy: Spy) -> None:
    spy.received.clear()
    response = await core.post("/api/v1/applications?x=..%2Fmetrics", json=sample_application())
    assert response.status == 404  # the spy's answer
    assert [(method, path) for method, path, _ in spy.received] == [("POST", "/api/v1/applications")]


def test_upstream_urls_are_the_configured_base_and_constant_segments(infrastructure: RunInfrastructure) -> None:
    from core_app.applications import aggregator_url

    application_id = uuid.UUID(SOME_ID)

    def built(base: str, application_id: uuid.UUID | None = None) -> str:
        settings: Settings = infrastructure.settings(aggregator_url=base)
        return str(aggregator_url(settings, application_id))

    assert built("http://agg:8081", application_id) == f"http://agg:8081/api/v1/applications/{SOME_ID}"
    assert built("http://agg:8081/", application_id) == f"http://agg:8081/api/v1/applications/{SOME_ID}"
    assert built("http://agg:8081/prefix/", application_id) == f"http://agg:8081/prefix/api/v1/applications/{SOME_ID}"
    assert built("http://agg:8081/prefix") == "http://agg:8081/prefix/api/v1/applications"
    assert built("http://agg:8081/p?q=1#f") == "http://agg:8081/p/api/v1/applications"


async def test_an_invalid_api_key_is_401_whatever_the_id(core: TestClient, spy: Spy) -> None:
    spy.received.clear()
    for raw_id in ("..%2F..%2F..%2Fmetrics", SOME_ID):
        response = await core.get(f"/api/v1/applications/{raw_id}", headers={"X-API-Key": "osk_nope"})
        assert response.status == 401  # API.md: 401 first, on any path
    assert spy.received == []
