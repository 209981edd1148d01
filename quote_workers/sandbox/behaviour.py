"""Switchable behaviour per insurer: how it answers (or fails) and how long it takes.

The control API sets one ``Behaviour`` per insurer; every incoming quote call rolls it once
into an ``Action`` (what to do, after how long), so ``fail_rate`` mixes faults into answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Mode = Literal["ok", "error", "hang", "slow", "malformed", "reset", "refuse"]
Fault = Literal["error", "hang", "slow", "malformed", "reset", "refuse"]

# A latency above this is a configuration mistake, not a test of timeouts (the deadline is 60 s).
MAX_LATENCY_MS = 600_000
# "slow" without an explicit latency: well past a typical per-call timeout, inside the deadline.
SLOW_DEFAULT_MS = (3_000, 6_000)
DEFAULT_REFUSE_REASON = "Страховая компания отказала в заключении договора"

# Behaviour is a simulation, not security: a plain PRNG is right (and fast).
_RNG = random.Random()


class BehaviourBody(BaseModel):
    """The PUT body; absent fields take the insurer's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Mode = "ok"
    latency_ms: tuple[int, int] | None = None
    fail_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault: Fault | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=300)

    @model_validator(mode="after")
    def _consistent(self) -> BehaviourBody:
        if self.latency_ms is not None:
            low, high = self.latency_ms
            if not 0 <= low <= high <= MAX_LATENCY_MS:
                raise ValueError(f"latency_ms must be [lo, hi] with 0 <= lo <= hi <= {MAX_LATENCY_MS}")
        return self


@dataclass(frozen=True, slots=True)
class Action:
    """One call's fate: ``kind`` is a mode other than "slow" (slow is ok, later)."""

    kind: Literal["ok", "error", "hang", "malformed", "reset", "refuse"]
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Behaviour:
    mode: Mode
    latency_ms: tuple[int, int]
    fail_rate: float
    fault: Fault | None
    reason: str | None

    @classmethod
    def default(cls, latency_ms: tuple[int, int]) -> Behaviour:
        return cls("ok", latency_ms, 0.0, None, None)

    @classmethod
    def from_body(cls, raw: bytes, default_latency_ms: tuple[int, int]) -> Behaviour:
        """Validate a raw PUT body (raises ``ValidationError``) and fill in the defaults."""
        parsed = BehaviourBody.model_validate_json(raw)
        latency = parsed.latency_ms
        if latency is None:
            latency = SLOW_DEFAULT_MS if parsed.mode == "slow" else default_latency_ms
        fault = parsed.fault
        if parsed.fail_rate > 0 and fault is None:
            fault = "error"  # a failure rate without a named fault means plain 5xx
        return cls(parsed.mode, latency, parsed.fail_rate, fault, parsed.reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "latency_ms": list(self.latency_ms),
            "fail_rate": self.fail_rate,
            "fault": self.fault,
            "reason": self.reason,
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
