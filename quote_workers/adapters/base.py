"""What every insurer adapter promises: one call in, one classified outcome out.

An adapter speaks one insurer protocol over the wire and maps every answer to
exactly one of: an ``OfferOutcome``, a ``declined(reason)`` (a definitive business
refusal, never retried), or one of the two exceptions below; the first two are the
outcome types the worker stores as they are. Insurer answers are
untrusted input: size, schema and sanity are checked before anything is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from shared.models import QuoteStatus
from shared.quoting.outcomes import OfferOutcome, StatusOutcome


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    """One insurer's share of an application."""

    quote_id: str  # stable across redeliveries: usable as the insurer-side idempotency key
    application_id: str
    insurer_code: str
    # The validated application exactly as stored (the shape of API.md's POST body).
    application: dict[str, Any]


# What an insurer answers is what the worker stores: an offer, or a refusal.
InsurerAnswer = OfferOutcome | StatusOutcome


def declined(reason: str) -> StatusOutcome:
    """A definitive business refusal, never retried; ``reason`` is shown to the person."""
    return StatusOutcome(QuoteStatus.DECLINED, reason)


class InsurerError(Exception):
    """The insurer call failed; ``reason`` is safe to show (no personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientInsurerError(InsurerError):
    """Worth retrying: timeout, 5xx, connection error, (once) a malformed answer."""


class InsurerTimeout(TransientInsurerError):
    """The call's own time bound (the adapter's ``timeout``) ran out before the insurer answered.

    Distinct so that the caller, who chose that bound, can tell whether it was the insurer's
    usual allowance or only what a job's deadline had left (which says nothing about the insurer).
    """


class MalformedAnswerError(TransientInsurerError):
    """The answer could not be read (bad JSON/XML); worth one more try, not more."""


class PermanentInsurerError(InsurerError):
    """Retrying cannot help: 4xx other than 408/429, an absurd premium, a broken contract."""


class InsurerAdapter(Protocol):
    async def request_quote(self, request: QuoteRequest, *, timeout: float) -> InsurerAnswer:
        """Ask the insurer for a price; ``timeout`` bounds the whole call in seconds."""
        ...
