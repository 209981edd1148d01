"""A body cut into TCP segments, through the core app to the aggregator and back as a 201."""

from __future__ import annotations

import json

import pytest

from tests.support.raw_http import post_in_pieces
from tests.support.samples import sample_application
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("chunked", [False, True], ids=["segments", "chunked"])
async def test_core_app_accepts_a_body_that_arrives_in_pieces(system: RunningSystem, chunked: bool) -> None:
    core = system.cores[0]
    assert core.port is not None
    raw = json.dumps(sample_application(), ensure_ascii=False).encode()
    status, created = await post_in_pieces(
        "127.0.0.1", core.port, "/api/v1/applications", raw, headers={}, chunked=chunked
    )
    assert status == 201, created
    status, view = await system.read(1, created)
    assert status == 200 and view["id"] == created["id"]
