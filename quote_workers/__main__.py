"""``osago-worker`` / ``python -m quote_workers``: serve the insurers of OSAGO_INSURERS (default all)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import aiohttp

from quote_workers.adapters.registry import build_adapter
from quote_workers.resilience import BreakerPolicy, GuardedInsurer, RetryPolicy
from quote_workers.worker import QuoteWorker
from shared.platform.amqp import ConfirmingPublisher, robust_connection
from shared.platform.db import database
from shared.platform.health import operator_site
from shared.platform.log_setup import configure_logging
from shared.platform.runtime import new_event_loop, tune_garbage_collector
from shared.platform.settings import Settings, settings_or_exit
from shared.quoting import insurers as insurer_catalogue
from shared.quoting.settlement import Answer
from shared.quoting.topology import declare_offers_exchange, exit_on_topology_mismatch

SERVICE = "worker"
SHUTDOWN_GRACE_S = 10.0

log = logging.getLogger(__name__)


async def run(settings: Settings, stop: asyncio.Event, *, burst: int | None = None) -> Counter[Answer]:
    """Serve until ``stop`` is set, or (``burst``) until that many jobs are settled; how each was."""
    served = insurer_catalogue.select(settings.insurers)
    retry = RetryPolicy(max_tries=settings.retry_max_tries, call_timeout_s=settings.insurer_call_timeout_s)
    breaker = BreakerPolicy(settings.breaker_failures, settings.breaker_recovery_s)
    # Every insurer may be on one host (the sandbox is): the per-insurer bound is the worker's.
    connector = aiohttp.TCPConnector(limit=settings.insurer_concurrency * len(served), ttl_dns_cache=300)
    async with (
        operator_site(settings.host, settings.port),
        database(settings),
        robust_connection(settings.amqp_url, f"{SERVICE}{settings.instance_name}") as connection,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        publisher = await ConfirmingPublisher.open(connection, settings.publish_timeout_s)
        publisher.register(await declare_offers_exchange(publisher.channel))
        guarded = {
            insurer.code: GuardedInsurer(
                insurer.code, build_adapter(insurer, session, settings.sandbox_url), retry, breaker
            )
            for insurer in served
        }
        worker = QuoteWorker(
            guarded,
            publisher,
            prefetch=settings.worker_prefetch,
            insurer_concurrency=settings.insurer_concurrency,
            write_grace_s=settings.sweeper_grace_s,
            failpoint=settings.failpoint,
            burst=burst,
            quorum_group_size=settings.amqp_quorum_group_size,
        )
        await worker.start(connection)
        log.info("worker consuming", extra={"insurers": ",".join(guarded)})
        await first_of(stop.wait(), worker.burst_done.wait())
        log.info("worker stopping", extra={"in_flight_grace_s": SHUTDOWN_GRACE_S})
        await worker.stop(SHUTDOWN_GRACE_S)
        return worker.answers


async def first_of(*waits: Coroutine[Any, Any, object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    settings = settings_or_exit()
    configure_logging(SERVICE, settings.log_level, json_lines=settings.log_json, secret=settings.token_secret)
    log.info("starting", extra={"settings": settings.redacted()})

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    tune_garbage_collector()
    with exit_on_topology_mismatch(log), asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main()
