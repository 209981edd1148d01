"""Retry, circuit breaker and the worker's time budget, against the sandbox's real fault modes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from shared.models import QuoteStatus
from tests.faults.conftest import FAULT_DEADLINE_S
from tests.support.cluster import Cluster, application_row, eventually, quotes_of
from tests.support.samples import sample_application

# One worker, so that one breaker per insurer is in play and the counts are exact.
WORKER_ENV = {"OSAGO_RETRY_MAX_TRIES": "3", "OSAGO_BREAKER_FAILURES": "3", "OSAGO_BREAKER_RECOVERY_S": "2"}


async def started(make_cluster: Callable[..., Cluster]) -> Cluster:
    cluster = make_cluster(**WORKER_ENV)
    await cluster.start(cluster.sandbox(), cluster.aggregator())
    await cluster.start(cluster.worker("worker", metrics_port=True))
    await cluster.behave_all(mode="ok", latency_ms=[10, 30])
    return cluster


async def run_to_completion(cluster: Cluster) -> dict[str, object]:
    status, created = await cluster.create(sample_application())
    assert status == 201, created

    async def complete() -> bool:
        return (await application_row(created["id"])).status == "complete"

    assert await eventually(complete, FAULT_DEADLINE_S + 5), "application did not complete by deadline + 5 s"
    return created


async def quote_for(created: dict[str, object], code: str) -> object:
    return next(q for q in await quotes_of(str(created["id"])) if q.insurer_code == code)


async def test_transient_errors_are_retried_with_a_bound_and_recorded(make_cluster: Callable[..., Cluster]) -> None:
    cluster = await started(make_cluster)
    await cluster.behave("sever", mode="error")
    await cluster.behave("volga", mode="reset")
    await cluster.behave("ural", mode="malformed")
    await cluster.behave("baikal", mode="refuse")
    created = await run_to_completion(cluster)

    quotes = {q.insurer_code: q for q in await quotes_of(str(created["id"]))}
    assert quotes["sever"].status is QuoteStatus.FAILED and quotes["sever"].attempts == 3
    assert quotes["volga"].status is QuoteStatus.FAILED and quotes["volga"].attempts == 3
    # An unreadable answer is retried once, not more.
    assert quotes["ural"].status is QuoteStatus.FAILED and quotes["ural"].attempts == 2
    # A definitive refusal is never retried.
    assert quotes["baikal"].status is QuoteStatus.DECLINED and quotes["baikal"].attempts == 1
    for code in ("sever", "volga", "ural"):
        assert quotes[code].reason and quotes[code].last_error, code
    others = [q for code, q in quotes.items() if code not in {"sever", "volga", "ural", "baikal"}]
    assert all(q.status is QuoteStatus.OFFERED for q in others), "other insurers are unaffected"


async def test_a_mixed_fault_rate_still_ends_each_quote_once(make_cluster: Callable[..., Cluster]) -> None:
    cluster = await started(make_cluster)
    await cluster.behave_all(mode="ok", latency_ms=[5, 20], fail_rate=0.3, fault="error")
    created = await run_to_completion(cluster)
    quotes = await quotes_of(str(created["id"]))
    assert all(q.status in (QuoteStatus.OFFERED, QuoteStatus.FAILED, QuoteStatus.UNAVAILABLE) for q in quotes)
    assert all(1 <= q.attempts <= 3 for q in quotes if q.status is not QuoteStatus.UNAVAILABLE)


async def test_hanging_insurer_ends_timed_out_at_the_deadline(make_cluster: Callable[..., Cluster]) -> None:
    cluster = await started(make_cluster)
    await cluster.behave("kama", mode="hang")
    await cluster.behave("oka", mode="slow", latency_ms=[1500, 1500])
    started_at = time.monotonic()
    created = await run_to_completion(cluster)
    elapsed = time.monotonic() - started_at

    quotes = {q.insurer_code: q for q in await quotes_of(str(created["id"]))}
    assert quotes["kama"].status is QuoteStatus.TIMED_OUT
    assert "before the deadline" in (quotes["kama"].reason or "")
    assert quotes["oka"].status is QuoteStatus.OFFERED, "a slow answer within the budget is an offer"
    assert elapsed >= FAULT_DEADLINE_S - 1, "the hang was waited out, not cut short"


async def test_breaker_opens_fails_fast_and_closes_after_a_trial_call(make_cluster: Callable[..., Cluster]) -> None:
    cluster = await started(make_cluster)
    await cluster.behave("amur", mode="error")
    first = await run_to_completion(cluster)  # three failed attempts open amur's circuit
    assert (await quote_for(first, "amur")).status is QuoteStatus.FAILED  # type: ignore[attr-defined]

    second = await run_to_completion(cluster)
    amur = await quote_for(second, "amur")
    assert amur.status is QuoteStatus.UNAVAILABLE  # type: ignore[attr-defined]
    assert "circuit open" in amur.reason  # type: ignore[attr-defined]
    assert amur.attempts == 0  # type: ignore[attr-defined]

    await cluster.behave("amur", mode="ok", latency_ms=[10, 20])
    await asyncio.sleep(2.2)  # the recovery timeout (2 s) must pass before a trial call
    third = await run_to_completion(cluster)
    assert (await quote_for(third, "amur")).status is QuoteStatus.OFFERED  # type: ignore[attr-defined]

    transitions = [line for line in cluster.processes[-1].log_since_start().splitlines() if b"circuit breaker" in line]
    assert any(b'"to": "open"' in line for line in transitions)
    assert any(b'"to": "closed"' in line for line in transitions)
    async with cluster.session.get(f"{cluster.processes[-1].url}/metrics") as response:
        metrics = await response.text()
    assert 'osago_breaker_transitions_total{insurer="amur",state="open"} 1.0' in metrics
    assert 'osago_breaker_transitions_total{insurer="amur",state="closed"} 1.0' in metrics
