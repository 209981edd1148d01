"""Calling one insurer under a deadline, with retries and a circuit breaker.

Order matters: the breaker sits inside the retry loop, and the loop gives up at once
when the breaker is open, so retries never knock on an open circuit. Every attempt's
timeout is capped by what is left of the job's deadline, and so is the total time
backoff may spend.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import backoff
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, CircuitBreaker, CircuitBreakerError

from quote_workers.adapters.base import (
    InsurerAdapter,
    InsurerAnswer,
    MalformedAnswerError,
    PermanentInsurerError,
    QuoteRequest,
    TransientInsurerError,
)
from shared.models import QuoteStatus
from shared.platform.metrics import BREAKER_TRANSITIONS
from shared.quoting.outcomes import Outcome, StatusOutcome

log = logging.getLogger(__name__)

# Below this much remaining budget another attempt cannot finish in time.
MIN_ATTEMPT_S = 0.05


class DeadlineReached(Exception):
    """No time is left for another attempt."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_tries: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0
    call_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    recovery_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class CallResult:
    outcome: Outcome
    attempts: int
    last_error: str | None = None


class ProbeInFlight(Exception):
    """The circuit is half-open and another call is already probing the insurer."""


class GuardedInsurer:
    """One insurer's adapter behind this process's breaker for that insurer."""

    def __init__(self, code: str, adapter: InsurerAdapter, retry: RetryPolicy, breaker: BreakerPolicy) -> None:
        self.code = code
        self._adapter = adapter
        self._retry = retry
        self.breaker = CircuitBreaker(
            failure_threshold=breaker.failure_threshold,
            recovery_timeout=breaker.recovery_timeout_s,
            expected_exception=TransientInsurerError,
            name=f"insurer:{code}",
        )
        self._guarded_call = self.breaker(self._adapter.request_quote)
        self._last_state = STATE_CLOSED
        self._probing = False

    async def quote(self, request: QuoteRequest, deadline_epoch: float) -> CallResult:
        attempts = 0
        last_error: str | None = None

        def remaining() -> float:
            return deadline_epoch - time.time()

        async def attempt() -> InsurerAnswer:
            nonlocal attempts, last_error
            budget = remaining()
            if budget < MIN_ATTEMPT_S:
                raise DeadlineReached
            if self.breaker.opened:
                raise CircuitBreakerError(self.breaker)  # fail fast: the insurer is not called
            attempts += 1
            try:
                return await self._call_through_breaker(request, min(self._retry.call_timeout_s, budget))
            except (TransientInsurerError, PermanentInsurerError) as exc:
                last_error = exc.reason
                raise
            finally:
                self._note_breaker_state()

        def give_up(exc: Exception) -> bool:
            # An unreadable answer is retried once: a second one means a broken integration.
            return isinstance(exc, MalformedAnswerError) and attempts >= 2

        retrying = backoff.on_exception(
            backoff.expo,
            TransientInsurerError,
            max_tries=self._retry.max_tries,
            max_time=lambda: max(0.0, remaining()),
            giveup=give_up,
            jitter=backoff.full_jitter,
            factor=self._retry.base_delay_s,
            max_value=self._retry.max_delay_s,
            logger=None,
        )(attempt)

        def result(outcome: Outcome) -> CallResult:
            return CallResult(outcome, attempts, last_error)

        try:
            answer = await retrying()
        except (CircuitBreakerError, ProbeInFlight):
            return result(
                StatusOutcome(QuoteStatus.UNAVAILABLE, "the insurer is temporarily unavailable (circuit open)")
            )
        except DeadlineReached:
            return result(StatusOutcome(QuoteStatus.TIMED_OUT, "no answer from the insurer before the deadline"))
        except TransientInsurerError as exc:
            if remaining() < MIN_ATTEMPT_S:
                return result(StatusOutcome(QuoteStatus.TIMED_OUT, f"no answer before the deadline ({exc.reason})"))
            return result(StatusOutcome(QuoteStatus.FAILED, f"insurer error after {attempts} attempts: {exc.reason}"))
        except PermanentInsurerError as exc:
            return result(StatusOutcome(QuoteStatus.FAILED, f"insurer error: {exc.reason}"))
        return result(answer)

    async def _call_through_breaker(self, request: QuoteRequest, timeout: float) -> InsurerAnswer:
        if self.breaker.state != STATE_HALF_OPEN:
            answer: InsurerAnswer = await self._guarded_call(request, timeout=timeout)
            return answer
        # Half-open: the library lets every concurrent call through; one probe is enough.
        if self._probing:
            raise ProbeInFlight
        self._probing = True
        try:
            probe: InsurerAnswer = await self._guarded_call(request, timeout=timeout)
            return probe
        finally:
            self._probing = False

    def _note_breaker_state(self) -> None:
        state = self.breaker.state
        if state != self._last_state:
            log.warning(
                "circuit breaker changed state", extra={"insurer": self.code, "from": self._last_state, "to": state}
            )
            BREAKER_TRANSITIONS.labels(self.code, state).inc()
            self._last_state = state
