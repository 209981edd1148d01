"""The circuit breaker counts the insurer's failures, not our lack of time.

A job that arrives with little of its deadline left gives the insurer less than the full
per-call timeout; when that shortened timeout expires the quote is ``timed_out`` and the
insurer's breaker is untouched (neither a failure nor a success). A timeout at the full
per-call timeout, a 5xx or a reset still counts. Every test talks to the real in-process
sandbox over loopback HTTP through the real protocol adapter.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import aiohttp
import pytest
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from quote_workers.adapters.base import QuoteRequest
from quote_workers.adapters.registry import build_adapter
from quote_workers.resilience import BreakerPolicy, CallResult, GuardedInsurer, RetryPolicy
from shared.models import QuoteStatus
from shared.quoting.insurers import BY_CODE
from shared.quoting.outcomes import OfferOutcome, StatusOutcome
from tests.integration.sandbox_fixtures import http, sample_application, sandbox_url, set_behaviour

__all__ = ["http", "sandbox_url"]  # fixtures, imported explicitly (no shared conftest)

# One insurer per protocol (JSON, poll, XML): the timeout is guarded in code all three share.
PROTOCOL_INSURERS = ["sever", "volga", "ural"]
FAST = [0, 0]
SLOW = [1000, 1000]  # a healthy insurer that takes a second
THRESHOLD = 3
SHORT_BUDGET_S = 0.3  # what is left of a job's deadline after a backlog
AMPLE_BUDGET_S = 5.0


def guarded_insurer(
    http: aiohttp.ClientSession,
    base: str,
    code: str,
    *,
    max_tries: int = 3,
    call_timeout_s: float = 20.0,
    recovery_timeout_s: float = 30.0,
) -> GuardedInsurer:
    retry = RetryPolicy(max_tries=max_tries, base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=call_timeout_s)
    breaker = BreakerPolicy(failure_threshold=THRESHOLD, recovery_timeout_s=recovery_timeout_s)
    return GuardedInsurer(code, build_adapter(BY_CODE[code], http, base), retry, breaker)


async def quote(insurer: GuardedInsurer, budget_s: float) -> CallResult:
    request = QuoteRequest(str(uuid.uuid4()), "app-1", insurer.code, sample_application())
    return await insurer.quote(request, time.time() + budget_s)


def status_of(result: CallResult) -> QuoteStatus | None:
    return result.outcome.status if isinstance(result.outcome, StatusOutcome) else None


def transitions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(r.to) for r in caplog.records if r.getMessage() == "circuit breaker changed state"]


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_timeouts_cut_short_by_the_deadline_leave_the_breaker_closed(
    http: aiohttp.ClientSession, sandbox_url: str, code: str
) -> None:
    await set_behaviour(http, sandbox_url, code, latency_ms=SLOW)
    insurer = guarded_insurer(http, sandbox_url, code)
    for n in range(2 * THRESHOLD):
        result = await quote(insurer, SHORT_BUDGET_S)
        assert status_of(result) is QuoteStatus.TIMED_OUT, (n, result)
        assert result.attempts == 1 and "no answer" in (result.last_error or ""), (n, result)
        assert "before the deadline" in result.outcome.reason  # type: ignore[union-attr]
    assert insurer.breaker.state == STATE_CLOSED and insurer.breaker.failure_count == 0

    offer = await quote(insurer, AMPLE_BUDGET_S)
    assert isinstance(offer.outcome, OfferOutcome), offer
    assert insurer.breaker.state == STATE_CLOSED


@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_timeouts_at_the_full_call_timeout_still_open_the_breaker(
    http: aiohttp.ClientSession, sandbox_url: str, code: str
) -> None:
    await set_behaviour(http, sandbox_url, code, latency_ms=SLOW)
    insurer = guarded_insurer(http, sandbox_url, code, max_tries=1, call_timeout_s=0.2)
    for n in range(THRESHOLD):
        result = await quote(insurer, AMPLE_BUDGET_S)
        assert status_of(result) is QuoteStatus.FAILED and "no answer within" in result.outcome.reason, (n, result)
    assert insurer.breaker.state == STATE_OPEN

    shut = await quote(insurer, AMPLE_BUDGET_S)
    assert status_of(shut) is QuoteStatus.UNAVAILABLE and shut.attempts == 0, shut


@pytest.mark.parametrize("budget_s", [AMPLE_BUDGET_S, SHORT_BUDGET_S])
@pytest.mark.parametrize("code", PROTOCOL_INSURERS)
async def test_real_failures_still_open_the_breaker(
    http: aiohttp.ClientSession, sandbox_url: str, code: str, budget_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    """5xx counts whatever the budget: the insurer answered, and the answer was a failure."""
    caplog.set_level(logging.WARNING, logger="quote_workers.resilience")
    await set_behaviour(http, sandbox_url, code, mode="error", latency_ms=FAST)
    insurer = guarded_insurer(http, sandbox_url, code)
    failed = await quote(insurer, budget_s)
    assert status_of(failed) is QuoteStatus.FAILED and failed.attempts == THRESHOLD, failed
    assert insurer.breaker.state == STATE_OPEN
    assert transitions(caplog) == [STATE_OPEN]

    shut = await quote(insurer, AMPLE_BUDGET_S)
    assert status_of(shut) is QuoteStatus.UNAVAILABLE and shut.attempts == 0, shut


async def test_a_cut_short_timeout_neither_counts_nor_forgives_failures(
    http: aiohttp.ClientSession, sandbox_url: str
) -> None:
    """The library treats every exception it does not count as a success; a cut-short one is neither."""
    insurer = guarded_insurer(http, sandbox_url, "sever", max_tries=1)
    await set_behaviour(http, sandbox_url, "sever", mode="error", latency_ms=FAST)
    for _ in range(THRESHOLD - 1):
        assert status_of(await quote(insurer, AMPLE_BUDGET_S)) is QuoteStatus.FAILED
    assert insurer.breaker.failure_count == THRESHOLD - 1

    await set_behaviour(http, sandbox_url, "sever", latency_ms=SLOW)
    assert status_of(await quote(insurer, SHORT_BUDGET_S)) is QuoteStatus.TIMED_OUT
    assert insurer.breaker.state == STATE_CLOSED and insurer.breaker.failure_count == THRESHOLD - 1

    await set_behaviour(http, sandbox_url, "sever", mode="error", latency_ms=FAST)
    assert status_of(await quote(insurer, AMPLE_BUDGET_S)) is QuoteStatus.FAILED
    assert insurer.breaker.state == STATE_OPEN


async def test_a_cut_short_probe_leaves_the_circuit_half_open(
    http: aiohttp.ClientSession, sandbox_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A half-open trial call the deadline cut short proves nothing: the next call probes again."""
    caplog.set_level(logging.WARNING, logger="quote_workers.resilience")
    insurer = guarded_insurer(http, sandbox_url, "sever", recovery_timeout_s=1.0)
    await set_behaviour(http, sandbox_url, "sever", mode="error", latency_ms=FAST)
    assert status_of(await quote(insurer, AMPLE_BUDGET_S)) is QuoteStatus.FAILED
    assert insurer.breaker.state == STATE_OPEN

    await set_behaviour(http, sandbox_url, "sever", latency_ms=SLOW)
    began = time.monotonic()
    while insurer.breaker.state != STATE_HALF_OPEN:
        assert time.monotonic() - began < 3.0, "the recovery timeout never passed"
        await asyncio.sleep(0.05)
    probe = await quote(insurer, SHORT_BUDGET_S)
    assert status_of(probe) is QuoteStatus.TIMED_OUT and probe.attempts == 1, probe
    assert insurer.breaker.state == STATE_HALF_OPEN

    offer = await quote(insurer, AMPLE_BUDGET_S)
    assert isinstance(offer.outcome, OfferOutcome), offer
    assert insurer.breaker.state == STATE_CLOSED
    assert transitions(caplog) == [STATE_OPEN, STATE_HALF_OPEN, STATE_CLOSED]


async def test_a_cancelled_call_gives_no_verdict(http: aiohttp.ClientSession, sandbox_url: str) -> None:
    """A call cancelled mid-flight (worker shutdown) neither counts nor resets the failures."""
    insurer = guarded_insurer(http, sandbox_url, "sever", max_tries=1)
    await set_behaviour(http, sandbox_url, "sever", mode="error", latency_ms=FAST)
    for _ in range(THRESHOLD - 1):
        assert status_of(await quote(insurer, AMPLE_BUDGET_S)) is QuoteStatus.FAILED

    await set_behaviour(http, sandbox_url, "sever", latency_ms=SLOW)
    call = asyncio.create_task(quote(insurer, AMPLE_BUDGET_S))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert insurer.breaker.state == STATE_CLOSED and insurer.breaker.failure_count == THRESHOLD - 1
