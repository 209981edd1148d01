"""Switchable behaviour per insurer: how it answers (or fails) and how long it takes.

The control API sets one ``Behaviour`` per insurer; every incoming quote call rolls it once
into an ``Action`` (what to do, after how long), so ``fail_rate`` mixes faults into answers.
Its ``issue`` part (an ``IssueBehaviour``) does the same for the final calculation and the
issuance, and carries ``price_change``, the final calculation's change to the quoted price.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Mode = Literal["ok", "error", "hang", "slow", "malformed", "reset", "refuse"]
Fault = Literal["error", "hang", "slow", "malformed", "reset", "refuse"]

# A latency above this is a configuration mistake, not a test of timeouts (the deadline is 60 s).
MAX_LATENCY_MS = 600_000
# "slow" without an explicit latency: well past a typical per-call timeout, inside the deadline.
SLOW_DEFAULT_MS = (3_000, 6_000)
DEFAULT_REFUSE_REASON = "Страховая компания отказала в заключении договора"
IssueMode = Literal["ok", "error", "hang", "refuse"]
IssueFault = Literal["error", "hang", "refuse"]
# "+3%", "-2%", "+1.5%": a signed percentage, at most 50 % either way.
_PRICE_CHANGE = re.compile(r"[+-](?:[0-9]|[1-4][0-9]|50)(?:\.[0-9]{1,2})?%")
QUOTE_FIELDS = frozenset({"mode", "latency_ms", "fail_rate", "fault", "reason"})

# Behaviour is a simulation, not security: a plain PRNG is right (and fast).
_RNG = random.Random()


def _check_latency(latency_ms: tuple[int, int] | None) -> None:
    if latency_ms is not None:
        low, high = latency_ms
        if not 0 <= low <= high <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be [lo, hi] with 0 <= lo <= hi <= {MAX_LATENCY_MS}")


class IssueBehaviourBody(BaseModel):
    """The ``issue`` part of the PUT body: final calculation and issuance."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: IssueMode = "ok"
    latency_ms: tuple[int, int] | None = None
    fail_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault: IssueFault | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=300)
    price_change: str | None = Field(default=None, max_length=8)

    @field_validator("price_change")
    @classmethod
    def _signed_percentage(cls, value: str | None) -> str | None:
        if value is not None and not _PRICE_CHANGE.fullmatch(value):
            raise ValueError('price_change must be a signed percentage within 50 %, e.g. "+3%" or "-2%"')
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IssueBehaviourBody:
        _check_latency(self.latency_ms)
        return self


class BehaviourBody(BaseModel):
    """The PUT body; absent fields take the insurer's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Mode = "ok"
    latency_ms: tuple[int, int] | None = None
    fail_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault: Fault | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=300)
    issue: IssueBehaviourBody | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BehaviourBody:
        _check_latency(self.latency_ms)
        return self


@dataclass(frozen=True, slots=True)
class Action:
    """One call's fate: ``kind`` is a mode other than "slow" (slow is ok, later)."""

    kind: Literal["ok", "error", "hang", "malformed", "reset", "refuse"]
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class IssueBehaviour:
    """How the final calculation and the issuance answer; ``price_change`` is a factor on the
    quoted premium (1 when absent) applied by the final calculation only."""

    mode: IssueMode
    latency_ms: tuple[int, int]
    fail_rate: float
    fault: IssueFault | None
    reason: str | None
    price_change: str | None

    @classmethod
    def default(cls, latency_ms: tuple[int, int]) -> IssueBehaviour:
        return cls("ok", latency_ms, 0.0, None, None, None)

    @classmethod
    def from_parsed(cls, parsed: IssueBehaviourBody, default_latency_ms: tuple[int, int]) -> IssueBehaviour:
        fault = parsed.fault
        if parsed.fail_rate > 0 and fault is None:
            fault = "error"
        latency = parsed.latency_ms if parsed.latency_ms is not None else default_latency_ms
        return cls(parsed.mode, latency, parsed.fail_rate, fault, parsed.reason, parsed.price_change)

    def price_factor(self) -> Decimal:
        if self.price_change is None:
            return Decimal(1)
        return Decimal(1) + Decimal(self.price_change.rstrip("%")) / 100

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "latency_ms": list(self.latency_ms),
            "fail_rate": self.fail_rate,
            "fault": self.fault,
            "reason": self.reason,
            "price_change": self.price_change,
        }

    def roll(self, rng: random.Random | None = None) -> Action:
        rng = rng or _RNG
        mode: IssueMode = self.mode
        if self.fail_rate and self.fault is not None and rng.random() < self.fail_rate:
            mode = self.fault
        low, high = self.latency_ms
        delay_ms = low if low == high else rng.uniform(low, high)
        return Action(mode, delay_ms / 1000.0, self.reason or DEFAULT_REFUSE_REASON)


@dataclass(frozen=True, slots=True)
class Behaviour:
    mode: Mode
    latency_ms: tuple[int, int]
    fail_rate: float
    fault: Fault | None
    reason: str | None
    issue: IssueBehaviour

    @classmethod
    def default(cls, latency_ms: tuple[int, int]) -> Behaviour:
        return cls("ok", latency_ms, 0.0, None, None, IssueBehaviour.default(latency_ms))

    @classmethod
    def from_body(cls, raw: bytes, default_latency_ms: tuple[int, int], current: Behaviour | None = None) -> Behaviour:
        """Validate a raw PUT body (raises ``ValidationError``) and fill in the defaults.

        A body without ``issue`` keeps ``current``'s issuance behaviour; a body with nothing
        but ``issue`` keeps ``current``'s quote behaviour (so either can be switched alone).
        """
        parsed = BehaviourBody.model_validate_json(raw)
        current = current or cls.default(default_latency_ms)
        issue = current.issue
        if parsed.issue is not None:
            issue = IssueBehaviour.from_parsed(parsed.issue, default_latency_ms)
            if not parsed.model_fields_set & QUOTE_FIELDS:
                return replace(current, issue=issue)
        latency = parsed.latency_ms
        if latency is None:
            latency = SLOW_DEFAULT_MS if parsed.mode == "slow" else default_latency_ms
        fault = parsed.fault
        if parsed.fail_rate > 0 and fault is None:
            fault = "error"  # a failure rate without a named fault means plain 5xx
        return cls(parsed.mode, latency, parsed.fail_rate, fault, parsed.reason, issue)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "latency_ms": list(self.latency_ms),
            "fail_rate": self.fail_rate,
            "fault": self.fault,
            "reason": self.reason,
            "issue": self.issue.to_json(),
        }

    def roll(self, rng: random.Random | None = None) -> Action:
        """Decide this call's outcome: the mode, or (with ``fail_rate``) the fault instead."""
        rng = rng or _RNG
        mode: Mode = self.mode
        if self.fail_rate and self.fault is not None and rng.random() < self.fail_rate:
            mode = self.fault
        low, high = self.latency_ms
        delay_ms = low if low == high else rng.uniform(low, high)
        if mode == "slow":
            if self.mode != "slow":
                # Slow as a mixed-in fault: slower than this insurer ever is when healthy.
                delay_ms = high + rng.uniform(*SLOW_DEFAULT_MS)
            mode = "ok"
        return Action(mode, delay_ms / 1000.0, self.reason or DEFAULT_REFUSE_REASON)


def validation_messages(error: ValidationError) -> list[dict[str, str]]:
    """422 body fields: dotted path and message, nothing echoed from the input."""
    return [
        {"path": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
        for item in error.errors(include_input=False, include_url=False)
    ]
