"""The aggregator API: app factory and the lifecycle of everything it holds."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator

from aiohttp import web

from aggregator_api.applications import routes
from aggregator_api.deadlines import DeadJobConsumer, sweep_once
from aggregator_api.outbox import relay_once, settle_time
from aggregator_api.retention import erase_past_retention
from aggregator_api.typedefs import AMQP, INSURERS, JOB_MARKS, JOB_PUBLISHES, PUBLISHER, SETTINGS
from shared.intake.access import bearer_token
from shared.platform.amqp import ConfirmingPublisher, close_within
from shared.platform.http_api import ApiError, Handler
from shared.platform.settings import Settings
from shared.platform.tasks import BackgroundTasks, background
from shared.quoting import insurers as insurer_catalogue
from shared.quoting.publishing import JobMarks
from shared.quoting.topology import (
    declare_dead_jobs_queue,
    declare_job_queues,
    declare_jobs_exchange,
    declare_offers_exchange,
)
from shared.service.app import create_service_app

SERVICE = "aggregator"


@web.middleware
async def service_token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        expected = request.app[SETTINGS].service_token
        # bearer_token() gives printable ASCII or None; the configured token is compared as
        # bytes (compare_digest refuses str that is not ASCII), surrogate escapes kept.
        given = bearer_token(request.headers.get("Authorization")) or ""
        if not hmac.compare_digest(given.encode(), expected.encode("utf-8", "surrogateescape")):
            raise ApiError(401, "unauthorized", "a valid service token is required")
    return await handler(request)


async def publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    publisher = await ConfirmingPublisher.open(app[AMQP], settings.publish_timeout_s)
    # Declared here too, so that jobs are routable before any worker has started.
    codes = [insurer.code for insurer in app[INSURERS]]
    await declare_job_queues(publisher.channel, codes, quorum_group_size=settings.amqp_quorum_group_size)
    publisher.register(await declare_jobs_exchange(publisher.channel))
    publisher.register(await declare_offers_exchange(publisher.channel))
    app[PUBLISHER] = publisher
    app[JOB_MARKS] = JobMarks()
    app[JOB_PUBLISHES] = BackgroundTasks("job publishes")
    yield
    await app[JOB_PUBLISHES].wait(timeout_s=settings.publish_timeout_s + 1)
    await app[JOB_MARKS].close()
    await close_within(publisher.channel.close, "publisher channel", connection=app[AMQP])


async def deadline_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, publisher = app[SETTINGS], app[PUBLISHER]
    channel = await app[AMQP].channel()
    await channel.set_qos(prefetch_count=64)
    dead_queue = await declare_dead_jobs_queue(channel)
    dead_jobs = DeadJobConsumer(publisher)
    consumer_tag = await dead_jobs.start(dead_queue)
    # The relay leaves each row to its own publisher until that publish has timed out.
    settle = settle_time(settings.publish_timeout_s)
    async with (
        background("outbox-relay", settings.relay_interval_s, lambda: relay_once(publisher, settle)),
        background(
            "deadline-sweeper", settings.relay_interval_s, lambda: sweep_once(publisher, settings.sweeper_grace_s)
        ),
    ):
        yield
    await close_within(lambda: dead_queue.cancel(consumer_tag), "dead jobs consumer", connection=app[AMQP])
    await dead_jobs.close()
    await close_within(channel.close, "dead jobs channel", connection=app[AMQP])


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Erase personal data past OSAGO_RETENTION_DAYS, on every instance (they split the work)."""
    settings = app[SETTINGS]
    if settings.retention_days == 0:  # kept forever
        yield
        return
    async with background(
        "retention", settings.retention_interval_s, lambda: erase_past_retention(settings.retention_days)
    ):
        yield


def create_app(settings: Settings) -> web.Application:
    # Browsers and partners stream from the core apps; the aggregator's own socket is for
    # other internal callers, so its instance queue (a copy of every event) exists only once
    # somebody opens one.
    app = create_service_app(SERVICE, settings, middlewares=[service_token_middleware], hub_on_demand=True)
    app[INSURERS] = tuple(sorted(insurer_catalogue.select(settings.insurers), key=lambda i: i.code))
    app.cleanup_ctx.extend([publisher_ctx, deadline_ctx, retention_ctx])
    app.add_routes(routes)
    return app
