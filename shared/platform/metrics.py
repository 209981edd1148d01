"""Prometheus metrics: one registry per process, served at /metrics by every HTTP service."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter("osago_http_requests_total", "HTTP requests answered", ["service", "route", "status"])
QUOTES_FINISHED = Counter("osago_quotes_finished_total", "Quotes given a final status", ["insurer", "status"])
INSURER_CALL_SECONDS = Histogram(
    "osago_insurer_call_seconds",
    "Duration of one insurer call",
    ["insurer"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
OUTCOMES_ABANDONED = Counter(
    "osago_outcomes_abandoned_total", "Insurer answers not stored: the database stayed away past the deadline"
)
POISON_MESSAGES = Counter("osago_poison_messages_total", "Jobs rejected as unreadable or unknown", ["reason"])
BREAKER_TRANSITIONS = Counter("osago_breaker_transitions_total", "Circuit breaker state changes", ["insurer", "state"])
# One per query of a single application's snapshot (a socket's opening, resync or end, GET one):
# sockets of one application asking together share a read, so this grows with applications.
SNAPSHOT_READS = Counter("osago_snapshot_reads_total", "Single-application snapshot queries")
# Core app: API key lookups that queried the partner table (cached ones do not), by result;
# and unknown keys answered 401 without a query because their address failed too often.
PARTNER_KEY_LOOKUPS = Counter("osago_partner_key_lookups_total", "API key lookups in the database", ["result"])
# Every instance with an offers hub (core apps; an aggregator once a socket opened there):
# events taken from the offers fanout, and those of them some socket here was watching. With
# the plain fanout every instance receives every event; routed / received is the useful share.
OFFER_EVENTS_RECEIVED = Counter("osago_offer_events_received_total", "Events received from the offers fanout")
OFFER_EVENTS_ROUTED = Counter(
    "osago_offer_events_routed_total", "Events from the offers fanout that a socket on this instance was watching"
)
AUTH_THROTTLED = Counter("osago_auth_throttled_total", "Unknown API keys refused without a lookup")


async def metrics_handler(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_middleware(service: str) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        HTTP_REQUESTS.labels(service, route, str(response.status)).inc()
        return response

    return count
