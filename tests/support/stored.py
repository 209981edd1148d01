"""Applications written straight to the database, for tests that need one without the
aggregator: no quotes unless the test adds them, so a stream of one stays open."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from shared.intake.access import TokenKeys, access_token_for
from shared.models import Application
from shared.platform.clock import utc_now
from shared.platform.settings import Settings
from tests.support.samples import sample_application


async def store_bare_application(deadline: datetime, *, pending_quotes: int = 0) -> uuid.UUID:
    application_id = uuid.uuid4()
    await Application.create(
        id=application_id,
        client_scope="service",
        request_fingerprint="0" * 64,
        payload=sample_application(),
        region_code="77",
        deadline=deadline,
        pending_quotes=pending_quotes,
    )
    return application_id


async def open_application(settings: Settings) -> tuple[str, str]:
    """An application with no quotes (its stream never completes): its id and access token."""
    deadline = utc_now() + timedelta(hours=1)
    application_id = str(await store_bare_application(deadline))
    return application_id, access_token_for(application_id, deadline, TokenKeys.of(settings))
