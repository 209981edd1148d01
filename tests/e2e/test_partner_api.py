"""Partners over REST and WebSocket on the real processes: keys from the admin CLI, own
applications only (404 for anybody else's), keyset-paged lists, per-partner quotas."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from multidict import CIMultiDictProxy

from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import sample_application
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

ADMIN = Path(sys.executable).with_name("osago-admin")
# Generous enough that functional tests never meet the quota; the quota tests make their own partners.
ROOMY_RPS = 500


async def create_partner(infrastructure: RunInfrastructure, name: str, rps: float) -> tuple[str, str]:
    """The README's command, as an operator runs it: its whole output and the key it printed."""
    process = await asyncio.create_subprocess_exec(
        str(ADMIN), "create-partner", "--name", name, "--rps", str(rps),
        env=infrastructure.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode()
    return text, text.strip().splitlines()[-1]


def key_headers(api_key: str) -> dict[str, str]:
    return {"X-API-Key": api_key}


async def call(
    system: RunningSystem, core: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    async with system.session.request(
        method, f"{system.cores[core].url}{path}", headers=headers, json=body
    ) as response:
        return response.status, await response.json(), response.headers


@pytest.fixture(scope="module")
async def partners(infrastructure: RunInfrastructure) -> dict[str, str]:
    names = ("Партнёр А", "Партнёр Б", "Партнёр В")
    keys = await asyncio.gather(
        *(create_partner(infrastructure, f"{name} {uuid.uuid4().hex[:6]}", ROOMY_RPS) for name in names)
    )
    return {"a": keys[0][1], "b": keys[1][1], "c": keys[2][1]}


async def test_create_partner_prints_the_key_once_and_stores_only_its_hash(
    infrastructure: RunInfrastructure, system: RunningSystem
) -> None:
    name = f"CLI partner {uuid.uuid4().hex[:8]}"
    output, api_key = await create_partner(infrastructure, name, 7.5)
    assert api_key.startswith("osk_") and len(api_key) > 40
    assert output.count(api_key) == 1, "the key is printed once, alone on the last line"

    connection = await asyncpg.connect(infrastructure.database_url)
    try:
        row = await connection.fetchrow("SELECT * FROM partner WHERE name = $1", name)
    finally:
        await connection.close()
    assert row is not None
    assert row["api_key_hash"] == hashlib.sha256(api_key.encode()).hexdigest()
    assert all(api_key not in str(value) for value in dict(row).values()), "the key itself is never stored"
    assert row["requests_per_second"] == 7.5

    status, body, _ = await call(system, 0, "GET", "/api/v1/applications", headers=key_headers(api_key))
    assert status == 200 and body == {"items": [], "next_cursor": None}


async def test_partner_reads_its_own_application_and_everybody_else_gets_404(
    calm_system: RunningSystem, partners: dict[str, str]
) -> None:
    status, created, _ = await call(
        calm_system, 0, "POST", "/api/v1/applications", headers=key_headers(partners["a"]), body=sample_application()
    )
    assert status == 201, created
    path = created["links"]["self"]

    # The creating partner needs no access token, on any instance.
    status, view, _ = await call(calm_system, 1, "GET", path, headers=key_headers(partners["a"]))
    assert status == 200 and view["id"] == created["id"]

    # Another partner, nobody, or a wrong token: 404, the same as an id that does not exist.
    for headers in (key_headers(partners["b"]), {}, {"Authorization": "Bearer not-the-token"}):
        status, body, _ = await call(calm_system, 1, "GET", path, headers=headers)
        assert status == 404 and body["error"]["code"] == "not_found", headers
    status, unknown, _ = await call(
        calm_system, 1, "GET", f"/api/v1/applications/{uuid.uuid4()}", headers=key_headers(partners["b"])
    )
    assert (status, unknown) == (404, body)
    status, body, _ = await call(calm_system, 0, "GET", path, headers=key_headers("osk_not-a-key"))
    assert status == 401

    # The same over WebSocket: refused at the upgrade, before any frame.
    url = f"{calm_system.cores[1].url}{created['links']['offers']}"
    for headers, expected in ((key_headers(partners["b"]), 404), ({}, 404), (key_headers("osk_not-a-key"), 401)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with calm_system.session.ws_connect(url, headers=headers):
                pass
        assert refused.value.status == expected, headers

    # Its own stream, by API key alone, to the end.
    events = []
    async with asyncio.timeout(calm_system.deadline_s + 15):
        async with calm_system.session.ws_connect(url, headers=key_headers(partners["a"])) as ws:
            async for message in ws:
                events.append(json.loads(message.data))
    assert ws.close_code == 1000
    assert events[-1]["type"] == "complete"
    assert Counter(e["event_id"] for e in events).most_common(1)[0][1] == 1


async def test_partner_lists_its_own_applications_newest_first_in_stable_pages(
    calm_system: RunningSystem, partners: dict[str, str]
) -> None:
    mine: list[str] = []
    for _ in range(5):  # one after another: distinct creation times
        status, created, _ = await call(
            calm_system,
            0,
            "POST",
            "/api/v1/applications",
            headers=key_headers(partners["c"]),
            body=sample_application(),
        )
        assert status == 201
        mine.append(created["id"])
    status, theirs, _ = await call(
        calm_system, 1, "POST", "/api/v1/applications", headers=key_headers(partners["b"]), body=sample_application()
    )
    assert status == 201
    newest_first = mine[::-1]

    status, first_page, _ = await call(
        calm_system, 1, "GET", "/api/v1/applications?limit=2", headers=key_headers(partners["c"])
    )
    assert status == 200
    assert [item["id"] for item in first_page["items"]] == newest_first[:2]
    assert first_page["next_cursor"]

    # Created after page 1 was read: it is on a fresh first page, and shifts no later page.
    status, newer, _ = await call(
        calm_system, 0, "POST", "/api/v1/applications", headers=key_headers(partners["c"]), body=sample_application()
    )
    assert status == 201
    seen = [item["id"] for item in first_page["items"]]
    cursor = first_page["next_cursor"]
    pages = 1
    while cursor is not None:
        status, page, _ = await call(
            calm_system,
            pages % 2,
            "GET",
            f"/api/v1/applications?limit=2&cursor={cursor}",
            headers=key_headers(partners["c"]),
        )
        assert status == 200, page
        seen += [item["id"] for item in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
    assert seen == newest_first and pages == 3
    assert theirs["id"] not in seen and newer["id"] not in seen

    # Each item is what GET of that application answers.
    status, listed, _ = await call(
        calm_system, 0, "GET", "/api/v1/applications?limit=1", headers=key_headers(partners["c"])
    )
    assert status == 200 and [item["id"] for item in listed["items"]] == [newer["id"]]
    status, one, _ = await call(calm_system, 0, "GET", newer["links"]["self"], headers=key_headers(partners["c"]))
    item = listed["items"][0]
    assert item.keys() == one.keys()
    assert (item["id"], item["created_at"], item["deadline"]) == (one["id"], one["created_at"], one["deadline"])
    assert [i["code"] for i in item["insurers"]] == [i["code"] for i in one["insurers"]]

    status, other, _ = await call(
        calm_system, 0, "GET", "/api/v1/applications?limit=100", headers=key_headers(partners["b"])
    )
    assert theirs["id"] in [i["id"] for i in other["items"]]
    assert not set(mine) & {i["id"] for i in other["items"]}


async def test_list_refuses_bad_parameters_with_422_and_anonymous_callers_with_401(
    system: RunningSystem, partners: dict[str, str]
) -> None:
    headers = key_headers(partners["a"])
    for query, paths in (
        ("limit=0", ["limit"]),
        ("limit=101", ["limit"]),
        ("limit=ten", ["limit"]),
        ("cursor=not-a-cursor", ["cursor"]),
        ("limit=-5&cursor=%00", ["limit", "cursor"]),
    ):
        status, body, _ = await call(system, 0, "GET", f"/api/v1/applications?{query}", headers=headers)
        assert status == 422, query
        assert [field["path"] for field in body["error"]["fields"]] == paths
    for anonymous in ({}, key_headers("osk_not-a-key")):
        status, body, _ = await call(system, 0, "GET", "/api/v1/applications?limit=0", headers=anonymous)
        assert status == 401 and body["error"]["code"] == "unauthorized"


async def burst(system: RunningSystem, core: int, api_key: str, count: int) -> Counter[int]:
    """`count` list requests at once; how many were admitted (200) and refused (429)."""

    async def one() -> int:
        async with system.session.get(
            f"{system.cores[core].url}/api/v1/applications?limit=1", headers=key_headers(api_key)
        ) as response:
            if response.status == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert (await response.json())["error"]["code"] == "rate_limited"
            return response.status

    return Counter(await asyncio.gather(*(one() for _ in range(count))))


async def test_each_partner_has_its_own_quota_and_429_says_when_to_retry(
    infrastructure: RunInfrastructure, system: RunningSystem
) -> None:
    burst_size = 30
    _, slow = await create_partner(infrastructure, f"Quota 5 rps {uuid.uuid4().hex[:6]}", 5)
    _, fast = await create_partner(infrastructure, f"Quota 50 rps {uuid.uuid4().hex[:6]}", 50)
    slow_counts, fast_counts = await asyncio.gather(
        burst(system, 0, slow, burst_size), burst(system, 0, fast, burst_size)
    )
    print(f"\nquota: partner at 5 rps: {slow_counts[200]} of {burst_size} admitted at once, {slow_counts[429]} refused")
    print(f"quota: partner at 50 rps: {fast_counts[200]} of {burst_size} admitted at once")
    assert set(slow_counts) <= {200, 429} and 5 <= slow_counts[200] < burst_size
    # A bucket holds one second's worth: 50 > 30, so the bigger quota admits the whole burst,
    # and the small partner's refusals did not spend it.
    assert fast_counts == Counter({200: burst_size})

    # Buckets live in each core app process: behind two instances a partner gets up to twice its rate.
    _, spread = await create_partner(infrastructure, f"Quota 5 rps x2 {uuid.uuid4().hex[:6]}", 5)
    per_instance = await asyncio.gather(burst(system, 0, spread, burst_size), burst(system, 1, spread, burst_size))
    admitted = [counts[200] for counts in per_instance]
    print(f"quota: partner at 5 rps on two instances: {admitted[0]} + {admitted[1]} of {2 * burst_size} admitted")
    assert all(5 <= n < burst_size for n in admitted)


async def test_every_kind_of_request_counts_against_the_quota(
    infrastructure: RunInfrastructure, calm_system: RunningSystem
) -> None:
    # One request per 5 s: the create spends it; reading, listing and streaming are refused.
    _, api_key = await create_partner(infrastructure, f"Quota 0.2 rps {uuid.uuid4().hex[:6]}", 0.2)
    status, created, _ = await call(
        calm_system, 0, "POST", "/api/v1/applications", headers=key_headers(api_key), body=sample_application()
    )
    assert status == 201
    for path in (created["links"]["self"], "/api/v1/applications"):
        status, body, headers = await call(calm_system, 0, "GET", path, headers=key_headers(api_key))
        assert status == 429 and int(headers["Retry-After"]) == 5, path
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with calm_system.session.ws_connect(
            f"{calm_system.cores[0].url}{created['links']['offers']}", headers=key_headers(api_key)
        ):
            pass
    assert refused.value.status == 429
