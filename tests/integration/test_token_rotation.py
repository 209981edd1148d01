"""Rotating ``OSAGO_TOKEN_SECRET`` with ``OSAGO_TOKEN_PREVIOUS_SECRET``, through the real apps.

Each configuration is a real aggregator (and core app) in this process on the run's
database and broker, started one after the other as a deployment would roll them: before
the rotation (the old secret), during it (the new secret, the old one as previous), after
it (the new secret alone). Tortoise is one per process, so no app here outlives another.
"""

from __future__ import annotations

import uuid

from aggregator_api.app import create_app as create_aggregator_app
from core_app.app import create_app as create_core_app
from tests.integration.conftest import SERVICE_TOKEN
from tests.integration.test_access_tokens import AUTH, created, legacy_token, opens, token_parts
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import sample_application

OLD, NEW = "old-token-secret", "new-token-secret"


async def test_previous_secret_works_while_configured_and_stops_when_removed(
    infrastructure: RunInfrastructure,
) -> None:
    base = {"service_token": SERVICE_TOKEN, "insurers": ("sever",)}
    key = {"Idempotency-Key": f"rotation-{uuid.uuid4()}"}

    # Before: tokens of the old secret.
    async with in_process(create_aggregator_app(infrastructure.settings(**base, token_secret=OLD))) as before:
        application = await created(before)
        keyed = await before.post("/api/v1/applications", json=sample_application(), headers={**AUTH, **key})
        assert keyed.status == 201
        keyed_body = await keyed.json()
    application_id, old_token = application["id"], application["access_token"]
    legacy = legacy_token(application_id, OLD)

    # During: the new secret issues, the old one is still accepted (its tokens and legacy ones).
    during_settings = infrastructure.settings(**base, token_secret=NEW, token_previous_secret=OLD)
    async with in_process(create_aggregator_app(during_settings)) as during:
        assert await opens(during, application_id, old_token, service=True) == (200, 101)
        assert await opens(during, application_id, legacy, service=True) == (200, 101)
        new = await created(during)
        new_token = new["access_token"]
        assert await opens(during, new["id"], new_token, service=True) == (200, 101)
        # A replay during the rotation hands out a token of the new secret, with the same expiry.
        replayed = await during.post("/api/v1/applications", json=sample_application(), headers={**AUTH, **key})
        assert replayed.status == 201
        replayed_token = (await replayed.json())["access_token"]
        assert token_parts(replayed_token)[0] == token_parts(keyed_body["access_token"])[0]
        assert replayed_token != keyed_body["access_token"]
        assert await opens(during, keyed_body["id"], replayed_token, service=True) == (200, 101)
        assert await opens(during, keyed_body["id"], keyed_body["access_token"], service=True) == (200, 101)
    # The core app's own check (the offers socket) takes the same settings.
    async with in_process(create_core_app(infrastructure.settings(token_secret=NEW, token_previous_secret=OLD))) as c:
        assert (await opens(c, application_id, old_token, service=False))[1] == 101
        assert (await opens(c, new["id"], new_token, service=False))[1] == 101

    # After: the old secret removed; its tokens open nothing, the new secret's still do.
    async with in_process(create_aggregator_app(infrastructure.settings(**base, token_secret=NEW))) as after:
        assert await opens(after, application_id, old_token, service=True) == (404, 404)
        assert await opens(after, application_id, legacy, service=True) == (404, 404)
        assert await opens(after, keyed_body["id"], keyed_body["access_token"], service=True) == (404, 404)
        assert await opens(after, new["id"], new_token, service=True) == (200, 101)
        assert await opens(after, keyed_body["id"], replayed_token, service=True) == (200, 101)
    async with in_process(create_core_app(infrastructure.settings(token_secret=NEW))) as c:
        assert (await opens(c, application_id, old_token, service=False))[1] == 404
        assert (await opens(c, new["id"], new_token, service=False))[1] == 101

    # And the old secret alone never took the new one's tokens.
    async with in_process(create_aggregator_app(infrastructure.settings(**base, token_secret=OLD))) as old_only:
        assert await opens(old_only, new["id"], new_token, service=True) == (404, 404)
        assert await opens(old_only, application_id, old_token, service=True) == (200, 101)
