"""Personal data past OSAGO_RETENTION_DAYS is erased, on the real database (aggregator_api.retention).

The aggregator runs in this process with its retention job every 0.2 s (30 days, the
default); applications are aged by moving their ``created_at`` and ``deadline`` back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tortoise import Tortoise

from aggregator_api.admin import insert_partner
from aggregator_api.app import create_app
from aggregator_api.retention import erase_before, erase_past_retention
from aggregator_api.typedefs import SETTINGS
from shared.intake.access import TokenKeys, access_token_for
from shared.models import Application, Offer, Quote, QuoteStatus
from shared.platform.clock import utc_now
from shared.quoting.outcomes import FinalizeRequest, OfferOutcome, StatusOutcome, finalize_quotes
from tests.integration.conftest import SERVICE_TOKEN
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS, sample_application

AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
RETENTION_DAYS = 30
# Everything the sample application says about a person or a car, as stored.
PERSONAL = ("Иванов", "Иван", "1985-03-14", "4510", "7701", "XW7BF4FK60S123456", "А123ВС777", "Toyota", "Camry", "77ХХ")

_INSERT = """
INSERT INTO application (id, status, client_scope, idempotency_key, request_fingerprint, payload, vin, plate,
                         region_code, deadline, created_at, complete_event_published, pending_quotes)
SELECT id, 'complete', 'service', 'key-' || id, repeat('f', 64), $2::jsonb, 'XW7BF4FK60S123456', 'А123ВС777',
       '77', now() - $3::interval, now() - $3::interval, true, 0
FROM unnest($1::uuid[]) AS id
"""


@pytest.fixture(scope="module")
async def aggregator(infrastructure: RunInfrastructure) -> AsyncIterator[TestClient]:
    settings = infrastructure.settings(
        service_token=SERVICE_TOKEN,
        insurers=("sever", "volga", "ural"),
        retention_days=RETENTION_DAYS,
        retention_interval_s=0.2,
    )
    async with in_process(create_app(settings)) as client:
        yield client


async def sql(statement: str, *args: Any) -> list[Any]:
    _, rows = await Tortoise.get_connection("default").execute_query(statement, list(args))
    return list(rows)


async def insert_aged(count: int, age: timedelta) -> list[uuid.UUID]:
    """``count`` complete applications created (and due) ``age`` ago, each with a key, VIN and plate."""
    ids = [uuid.uuid4() for _ in range(count)]
    await sql(_INSERT, ids, json.dumps(sample_application(), ensure_ascii=False), age)
    return ids


async def age_by(application_ids: list[uuid.UUID], age: timedelta) -> None:
    await sql(
        "UPDATE application SET created_at = created_at - $2::interval, deadline = deadline - $2::interval "
        "WHERE id = ANY($1::uuid[])",
        application_ids,
        age,
    )


def kept_of(payload: dict[str, Any]) -> dict[str, Any]:
    """What an erased application keeps of its payload: statistics, nobody's identity."""
    return {
        "vehicle": {key: payload["vehicle"][key] for key in ("category", "year", "power_hp")},
        "owner": {"registration": {"region_code": payload["owner"]["registration"]["region_code"]}},
        "unlimited_drivers": payload["unlimited_drivers"],
        "drivers_count": len(payload.get("drivers") or []),
        "period": {key: payload["period"][key] for key in ("start_date", "months")},
    }


async def until_erased(application_ids: list[uuid.UUID], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while await Application.filter(id__in=application_ids, erased_at__isnull=True).exists():
            await asyncio.sleep(0.1)


async def test_applications_past_the_retention_are_erased_and_newer_ones_kept(aggregator: TestClient) -> None:
    old = await insert_aged(5, timedelta(days=RETENTION_DAYS, hours=1))
    younger = await insert_aged(3, timedelta(days=RETENTION_DAYS - 1))
    new = await insert_aged(3, timedelta(0))
    before = {a.id: a for a in await Application.filter(id__in=old + younger + new)}

    await erase_past_retention(RETENTION_DAYS)  # the app's own job may take some of them first
    await until_erased(old)

    for application in await Application.filter(id__in=old):
        original = before[application.id]
        assert application.erased_at is not None
        assert application.payload == kept_of(original.payload)
        assert application.payload == {
            "vehicle": {"category": "B", "year": 2019, "power_hp": 181},
            "owner": {"registration": {"region_code": "77"}},
            "unlimited_drivers": False,
            "drivers_count": 1,
            "period": {"start_date": original.payload["period"]["start_date"], "months": 12},
        }
        stored = json.dumps(application.payload, ensure_ascii=False)
        assert not [word for word in PERSONAL if word in stored], stored
        assert (application.vin, application.plate) == (None, None)
        assert (application.idempotency_key, application.request_fingerprint) == (None, None)
        # What statistics read stays.
        assert (application.region_code, application.status) == (original.region_code, original.status)
        assert (application.created_at, application.deadline) == (original.created_at, original.deadline)
    for application in await Application.filter(id__in=younger + new):
        original = before[application.id]
        assert application.erased_at is None
        assert application.payload == original.payload
        assert (application.vin, application.plate) == ("XW7BF4FK60S123456", "А123ВС777")
        assert application.idempotency_key == f"key-{application.id}"
        assert application.request_fingerprint == "f" * 64

    # Nothing left to do: a second round erases nothing and changes nothing.
    erased_at = {a.id: a.erased_at for a in await Application.filter(id__in=old)}
    assert await erase_past_retention(RETENTION_DAYS) == 0
    assert {a.id: a.erased_at for a in await Application.filter(id__in=old)} == erased_at


async def test_the_aggregator_erases_on_its_own(aggregator: TestClient) -> None:
    old = await insert_aged(3, timedelta(days=RETENTION_DAYS + 2))
    await until_erased(old)  # nobody here calls the job: the aggregator's lifecycle runs it
    assert {(a.vin, a.idempotency_key) for a in await Application.filter(id__in=old)} == {(None, None)}


async def test_concurrent_runs_erase_each_application_once_without_deadlock(aggregator: TestClient) -> None:
    # 10 days old, erased here with a 5-day cutoff: the app's own 30-day job leaves them alone.
    ids = await insert_aged(400, timedelta(days=10))
    cutoff = utc_now() - timedelta(days=5)
    runs = await asyncio.wait_for(
        asyncio.gather(*(erase_before(cutoff, batch_size=7) for _ in range(3))),
        timeout=60,
    )
    # They ran at once and split the work (here about a third each), skipping what another held.
    assert sum(1 for run in runs if run) >= 2, [len(run) for run in runs]
    erased = [application_id for run in runs for application_id in run]
    assert len(erased) == len(set(erased)), "an application was erased twice"
    assert set(ids) <= set(erased)
    assert not await Application.filter(id__in=ids, erased_at__isnull=True).exists()
    assert await Application.filter(id__in=ids, vin__isnull=False).count() == 0
    # Every run ends; one more finds nothing of these.
    assert not set(ids) & set(await erase_before(cutoff, batch_size=7))


async def test_an_erased_application_still_reads_with_its_statuses_and_offers(aggregator: TestClient) -> None:
    partner, _ = await insert_partner("retention", 100.0)
    as_partner = {"X-Osago-Partner-Id": str(partner.id), "X-Osago-Client-Scope": f"partner:{partner.id}"}
    key = {"Idempotency-Key": f"retention-{uuid.uuid4()}"}
    response = await aggregator.post(
        "/api/v1/applications", json=sample_application(), headers={**AUTH, **as_partner, **key}
    )
    assert response.status == 201
    created = await response.json()
    application_id = uuid.UUID(created["id"])
    quotes = {q.insurer_code: q.id for q in await Quote.filter(application_id=application_id)}
    offer = OfferOutcome(Decimal("9441.80"), WORKED_EXAMPLE_COEFFICIENTS, "ref-sever", utc_now() + timedelta(days=30))
    await finalize_quotes(
        [
            FinalizeRequest(quotes["sever"], offer),
            FinalizeRequest(quotes["volga"], StatusOutcome(QuoteStatus.DECLINED, "test refusal")),
            FinalizeRequest(quotes["ural"], StatusOutcome(QuoteStatus.TIMED_OUT, "test timeout")),
        ]
    )
    path = created["links"]["self"]
    response = await aggregator.get(path, headers={**AUTH, **as_partner})
    assert response.status == 200
    view_before = await response.json()
    assert view_before["status"] == "complete" and len(view_before["offers"]) == 1

    await age_by([application_id], timedelta(days=RETENTION_DAYS + 1))
    await until_erased([application_id])
    erased = await Application.get(id=application_id)
    assert erased.vin is None and erased.idempotency_key is None and "owner" in erased.payload
    assert await Offer.filter(application_id=application_id).count() == 1

    response = await aggregator.get(path, headers={**AUTH, **as_partner})
    assert response.status == 200
    view_after = await response.json()
    assert {k: v for k, v in view_after.items() if k not in ("deadline", "created_at")} == {
        k: v for k, v in view_before.items() if k not in ("deadline", "created_at")
    }
    # Its token (issued 31 days ago, as the aged deadline gives it) expired at deadline + 7 days:
    # only the partner reads it now.
    token = access_token_for(created["id"], erased.deadline, TokenKeys.of(aggregator.app[SETTINGS]))
    response = await aggregator.get(path, headers={**AUTH, "X-Osago-Access-Token": token})
    assert response.status == 404
    # The offers socket replays what is stored and ends with complete.
    async with aggregator.ws_connect(created["links"]["offers"], headers={**AUTH, **as_partner}) as ws:
        events = [json.loads((await ws.receive(timeout=10)).data) for _ in range(4)]
    assert [e["type"] for e in events].count("complete") == 1 and events[-1]["type"] == "complete"
    assert events[-1]["statuses"] == {"offered": 1, "declined": 1, "failed": 0, "unavailable": 0, "timed_out": 1}
    # The key went with the personal data: the same key now makes a new application.
    response = await aggregator.post(
        "/api/v1/applications", json=sample_application(), headers={**AUTH, **as_partner, **key}
    )
    assert response.status == 201
    assert (await response.json())["id"] != created["id"]
