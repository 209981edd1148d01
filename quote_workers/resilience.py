"""Calling one insurer under a deadline, with retries and a circuit breaker.

Order matters: the breaker sits inside the retry loop, and the loop gives up at once
when the breaker is open, so retries never knock on an open circuit. Every attempt's
timeout is capped by what is left of the job's deadline, and so is the total time
backoff may spend.

The breaker judges the insurer, not our lack of time: an attempt whose timeout the deadline
cut below the insurer's full allowance (``call_timeout_s``) and which then ran out ends the
quote ``timed_out`` and leaves the breaker exactly as it was. A timeout at the full allowance,
a 5xx, a reset or a broken answer still counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from types import TracebackType

import backoff
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, CircuitBreaker, CircuitBreakerError

from quote_workers.adapters.base import (
    InsurerAdapter,
    InsurerAnswer,
    InsurerTimeout,
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


class AttemptCutShort(Exception):
    """The attempt had only what the deadline left (less than ``call_timeout_s``) and used it up.

    Not a TransientInsurerError: the breaker must not count it and backoff must not retry it
    (no time is left). ``reason`` is the adapter's, safe to show.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InsurerBreaker(CircuitBreaker):  # type: ignore[misc]  # circuitbreaker ships no annotations
    """The library's breaker with a third kind of outcome: no verdict.

    circuitbreaker 2.x counts an ``expected_exception`` as a failure and treats everything else
    that leaves the call, any other exception included, as a success: the failure count is reset
    and a half-open circuit closes. An attempt the deadline cut short, or one cancelled (worker
    shutdown), says nothing about the insurer, so it leaves the count and the state as they were;
    a half-open circuit stays half-open and the next call probes again.
    """

    NO_VERDICT: tuple[type[BaseException], ...] = (AttemptCutShort, asyncio.CancelledError)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc_type is not None and issubclass(exc_type, self.NO_VERDICT):
            return False  # re-raise, counting nothing
        return bool(super().__exit__(exc_type, exc_value, traceback))


class GuardedInsurer:
    """One insurer's adapter behind this process's breaker for that insurer."""

    def __init__(self, code: str, adapter: InsurerAdapter, retry: RetryPolicy, breaker: BreakerPolicy) -> None:
        self.code = code
        self._adapter = adapter
        self._retry = retry
        self.breaker = InsurerBreaker(
            failure_threshold=breaker.failure_threshold,
            recovery_timeout=breaker.recovery_timeout_s,
            expected_exception=TransientInsurerError,
            name=f"insurer:{code}",
        )
        self._guarded_call = self.breaker(self._call_insurer)
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
            timeout = min(self._retry.call_timeout_s, budget)
            try:
                return await self._call_through_breaker(request, timeout, timeout < self._retry.call_timeout_s)
            except (TransientInsurerError, PermanentInsurerError, AttemptCutShort) as exc:
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
        except AttemptCutShort as exc:
            return result(StatusOutcome(QuoteStatus.TIMED_OUT, f"no answer before the deadline ({exc.reason})"))
        except TransientInsurerError as exc:
            if remaining() < MIN_ATTEMPT_S:
                return result(StatusOutcome(QuoteStatus.TIMED_OUT, f"no answer before the deadline ({exc.reason})"))
            return result(StatusOutcome(QuoteStatus.FAILED, f"insurer error after {attempts} attempts: {exc.reason}"))
        except PermanentInsurerError as exc:
            return result(StatusOutcome(QuoteStatus.FAILED, f"insurer error: {exc.reason}"))
        return result(answer)

    async def _call_insurer(self, request: QuoteRequest, timeout: float, cut_short: bool) -> InsurerAnswer:
        """The call the breaker wraps: a timeout the deadline shortened becomes no verdict."""
        try:
            return await self._adapter.request_quote(request, timeout=timeout)
        except InsurerTimeout as exc:
            if not cut_short:
                raise  # the insurer had its full allowance: a failure like any other
            raise AttemptCutShort(exc.reason) from exc

    async def _call_through_breaker(self, request: QuoteRequest, timeout: float, cut_short: bool) -> InsurerAnswer:
        if self.breaker.state != STATE_HALF_OPEN:
            answer: InsurerAnswer = await self._guarded_call(request, timeout, cut_short)
            return answer
        # Half-open: the library lets every concurrent call through; one probe is enough.
        if self._probing:
            raise ProbeInFlight
        self._probing = True
        try:
            probe: InsurerAnswer = await self._guarded_call(request, timeout, cut_short)
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
