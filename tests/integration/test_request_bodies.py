"""Bodies as real networks deliver them: in several TCP segments with pauses, or chunked.

A body is read to its end before it is parsed; before, only what had arrived so far was
read, and a valid application cut in two was refused as malformed JSON.
"""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient

from aggregator_api.typedefs import SETTINGS
from shared.models import Application
from tests.integration.conftest import SERVICE_TOKEN
from tests.support.raw_http import post_in_pieces
from tests.support.samples import sample_application

AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
PATH = "/api/v1/applications"


def address(client: TestClient) -> tuple[str, int]:
    assert client.port is not None
    return "127.0.0.1", client.port


def body() -> bytes:
    return json.dumps(sample_application(), ensure_ascii=False).encode()


async def test_a_body_in_three_segments_with_pauses_is_accepted(aggregator: TestClient) -> None:
    raw = body()
    assert len(raw) > 700
    status, answer = await post_in_pieces(*address(aggregator), PATH, raw, headers=AUTH, cuts=(300, 600))
    assert status == 201, answer
    assert await Application.exists(id=answer["id"])


async def test_a_chunked_body_is_accepted(aggregator: TestClient) -> None:
    status, answer = await post_in_pieces(
        *address(aggregator), PATH, body(), headers=AUTH, cuts=(100, 250, 500), pause_s=0.1, chunked=True
    )
    assert status == 201, answer
    assert await Application.exists(id=answer["id"])


async def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(aggregator: TestClient) -> None:
    assert aggregator.app is not None
    limit = aggregator.app[SETTINGS].max_body_bytes
    oversized = json.dumps({**sample_application(), "padding": "x" * limit}).encode()
    before = await Application.all().count()
    status, answer = await post_in_pieces(
        *address(aggregator), PATH, oversized, headers=AUTH, cuts=(1000, 40_000), pause_s=0.05, chunked=True
    )
    assert status == 413, answer
    assert answer["error"]["code"] == "body_too_large"
    assert await Application.all().count() == before
