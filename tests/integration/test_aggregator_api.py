"""The aggregator API's contract on the real database and broker: every refusal writes nothing."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from aggregator_api.typedefs import HUB, PUBLISHER
from shared.models import Application, Quote, QuoteStatus
from shared.quoting.outcomes import StatusOutcome, finalize_quote
from shared.quoting.publishing import publish_outcome
from tests.integration.conftest import SERVICE_TOKEN
from tests.support.samples import sample_application

AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


async def row_counts() -> tuple[int, int]:
    return await Application.all().count(), await Quote.all().count()


async def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/v1/applications", json=body, headers={**AUTH, **(headers or {})})
    return response.status, await response.json()


async def test_created_application_has_one_pending_quote_per_enabled_insurer(aggregator: TestClient) -> None:
    status, created = await post(aggregator, sample_application())
    assert status == 201, created
    assert [i["code"] for i in created["insurers"]] == ["sever", "ural", "volga"]
    assert created["links"]["offers"] == f"/api/v1/applications/{created['id']}/offers"
    quotes = await Quote.filter(application_id=created["id"])
    assert len(quotes) == 3 and all(q.status == "pending" for q in quotes)
    # Jobs are published after the commit, with confirms.
    for _ in range(50):
        if all(q.job_published for q in await Quote.filter(application_id=created["id"])):
            break
        await asyncio.sleep(0.05)
    assert all(q.job_published for q in await Quote.filter(application_id=created["id"]))

    response = await aggregator.get(
        f"/api/v1/applications/{created['id']}", headers={**AUTH, "X-Osago-Access-Token": created["access_token"]}
    )
    assert response.status == 200
    view = await response.json()
    assert view["status"] == "pending" and view["offers"] == []
    assert {i["status"] for i in view["insurers"]} == {"pending"}
    assert all(i["reason"] is None for i in view["insurers"])


async def test_every_bad_field_is_listed_in_one_422_and_nothing_is_written(aggregator: TestClient) -> None:
    body = sample_application()
    body["vehicle"]["vin"] = "XW7BF4FK60S12345O"  # O is not allowed
    body["vehicle"]["power_hp"] = 0
    body["drivers"][0]["birth_date"] = "2030-02-30"
    body["period"]["months"] = 2
    before = await row_counts()
    status, answer = await post(aggregator, body)
    assert status == 422
    assert answer["error"]["code"] == "invalid_fields"
    paths = {field["path"] for field in answer["error"]["fields"]}
    assert {"vehicle.vin", "vehicle.power_hp", "drivers.0.birth_date", "period.months"} <= paths
    assert all(field["message"] for field in answer["error"]["fields"])
    assert await row_counts() == before


async def test_refusals_follow_the_order_of_the_contract(aggregator: TestClient) -> None:
    before = await row_counts()
    big = json.dumps({"padding": "x" * 70_000})

    response = await aggregator.post("/api/v1/applications", data=big, headers={"Content-Type": "application/json"})
    assert response.status == 401  # no service token beats everything else

    response = await aggregator.post("/api/v1/applications", data=big, headers={**AUTH, "Content-Type": "text/plain"})
    assert response.status == 413  # too large beats the wrong content type

    response = await aggregator.post("/api/v1/applications", data="{}", headers={**AUTH, "Content-Type": "text/plain"})
    assert response.status == 415

    for malformed in ("{", "[1,", "\xff", "NaN", '{"a": Infinity}'):
        response = await aggregator.post(
            "/api/v1/applications",
            data=malformed.encode("latin-1"),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status == 400, malformed
        assert (await response.json())["error"]["code"] == "malformed_json"

    status, answer = await post(aggregator, [1, 2, 3])
    assert status == 422 and answer["error"]["fields"][0]["path"] == ""
    assert await row_counts() == before


async def test_idempotency_key_replays_the_same_answer_and_refuses_another_body(aggregator: TestClient) -> None:
    key = {"Idempotency-Key": f"test-{uuid.uuid4()}"}
    first_status, first = await post(aggregator, sample_application(), key)
    again_status, again = await post(aggregator, sample_application(), key)
    assert (first_status, again_status) == (201, 201)
    assert again == first  # access token included

    other = sample_application()
    other["vehicle"]["power_hp"] = 90
    status, conflict = await post(aggregator, other, key)
    assert status == 409 and conflict["error"]["code"] == "idempotency_conflict"
    assert await Application.filter(idempotency_key=key["Idempotency-Key"]).count() == 1


async def test_concurrent_requests_with_one_key_create_one_application(aggregator: TestClient) -> None:
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(post(aggregator, sample_application(), key) for _ in range(10)))
    assert {status for status, _ in answers} == {201}
    assert len({body["id"] for _, body in answers}) == 1
    assert await Application.filter(idempotency_key=key["Idempotency-Key"]).count() == 1


async def test_application_is_hidden_from_everybody_without_its_token(aggregator: TestClient) -> None:
    status, created = await post(aggregator, sample_application())
    assert status == 201
    _, other = await post(aggregator, sample_application())
    path = f"/api/v1/applications/{created['id']}"
    for headers in (
        AUTH,
        {**AUTH, "X-Osago-Access-Token": other["access_token"]},
        {**AUTH, "X-Osago-Access-Token": "garbage"},
        {**AUTH, "X-Osago-Partner-Id": (stranger := str(uuid.uuid4())), "X-Osago-Client-Scope": f"partner:{stranger}"},
    ):
        response = await aggregator.get(path, headers=headers)
        assert response.status == 404, headers
        assert (await response.json())["error"]["code"] == "not_found"
    response = await aggregator.get(path, headers={**AUTH, "X-Osago-Access-Token": other["access_token"]})
    assert response.status == 404
    response = await aggregator.get("/api/v1/applications/not-a-uuid", headers={**AUTH, "X-Osago-Access-Token": "x"})
    assert response.status == 404
    response = await aggregator.get(path, headers={"X-Osago-Access-Token": created["access_token"]})
    assert response.status == 401


async def test_served_openapi_document_describes_the_validated_body(aggregator: TestClient) -> None:
    response = await aggregator.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    post = document["paths"]["/api/v1/applications"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApplicationIn"
    }
    assert {"201", "400", "401", "409", "413", "415", "422", "429", "503"} <= set(post["responses"])
    request_schema = document["components"]["schemas"]["ApplicationIn"]
    assert set(request_schema["properties"]) == set(sample_application())
    # Every $ref resolves inside the document.
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= set(document["components"]["schemas"])


async def test_aggregator_consumes_events_only_once_a_socket_is_opened_and_streams_them(
    aggregator: TestClient,
) -> None:
    hub = aggregator.app[HUB]
    status, created = await post(aggregator, sample_application())
    assert status == 201
    assert not hub.consuming  # no socket yet: no instance queue taking a copy of every event

    path = f"{created['links']['offers']}?token={created['access_token']}"
    async with aggregator.ws_connect(path, headers=AUTH) as ws:
        assert hub.consuming
        quote = await Quote.filter(application_id=created["id"]).order_by("insurer_code").first()
        assert quote is not None
        result = await finalize_quote(quote.id, StatusOutcome(QuoteStatus.DECLINED, "test refusal"))
        assert await publish_outcome(aggregator.app[PUBLISHER], result)
        message = await ws.receive_json(timeout=10)
    assert message["type"] == "quote_status" and message["insurer"]["code"] == quote.insurer_code
    assert message["reason"] == "test refusal"
