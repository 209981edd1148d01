"""Typed application state of the aggregator API (beyond what every service has)."""

from __future__ import annotations

from aiohttp import web

from shared.amqp import ConfirmingPublisher
from shared.background_tasks import BackgroundTasks
from shared.event_marks import PublishedJobMarks
from shared.insurers import InsurerInfo
from shared.service_app import AMQP, HUB, SETTINGS, SOCKETS

INSURERS = web.AppKey("insurers", tuple[InsurerInfo, ...])
PUBLISHER = web.AppKey("publisher", ConfirmingPublisher)
JOB_MARKS = web.AppKey("job_marks", PublishedJobMarks)
JOB_PUBLISHES = web.AppKey("job_publishes", BackgroundTasks)

__all__ = ["AMQP", "HUB", "INSURERS", "JOB_MARKS", "JOB_PUBLISHES", "PUBLISHER", "SETTINGS", "SOCKETS"]
