"""Typed application state of the aggregator API (beyond what every service has)."""

from __future__ import annotations

from aiohttp import web

from shared.platform.amqp import ConfirmingPublisher
from shared.platform.tasks import BackgroundTasks
from shared.quoting.insurers import InsurerInfo
from shared.quoting.publishing import JobMarks
from shared.service.app import AMQP, HUB, SETTINGS, SOCKETS

INSURERS = web.AppKey("insurers", tuple[InsurerInfo, ...])
PUBLISHER = web.AppKey("publisher", ConfirmingPublisher)
JOB_MARKS = web.AppKey("job_marks", JobMarks)
JOB_PUBLISHES = web.AppKey("job_publishes", BackgroundTasks)

__all__ = ["AMQP", "HUB", "INSURERS", "JOB_MARKS", "JOB_PUBLISHES", "PUBLISHER", "SETTINGS", "SOCKETS"]
