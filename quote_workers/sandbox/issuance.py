"""Each insurer's back office after the quote: numbered drafts (final calculation) and policies.

The final calculation prices the application again, as the quick quote does, applies the
issuance behaviour's ``price_change`` and saves a numbered draft; it is idempotent by the
system's order id (the same order id, the same draft). Issuance turns a draft into a policy
with the company's own numbering: its series and a 10-digit number, unique per series for the
sandbox's life. An order never gets two policies: a second issuance for the same order id is
refused with ``AlreadyIssued``, which carries the policy issued first.
"""

from __future__ import annotations

import calendar
import random
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.platform.clock import moscow_today

from .companies import COMPANIES, Company
from .model import Applicant, Priced, Refused
from .pricing import Quoter

MAX_ORDER_ID_LENGTH = 100
MAX_PAYMENT_REFERENCE_LENGTH = 100
DRAFT_VALIDITY = timedelta(days=1)
# Real electronic OSAGO policies carry the series ХХХ or ТТТ (Cyrillic letters); the companies
# alternate between them, so two companies share each series and need disjoint number blocks.
SERIES = ("ХХХ", "ТТТ")
# Company i numbers inside [i * BLOCK, (i + 1) * BLOCK), from a random start in the block's
# first half: unique within a process, and unlikely to repeat a number after a restart.
NUMBER_BLOCK = 1_000_000_000
_KOPECK = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Draft:
    draft_id: str
    company: str
    order_id: str
    premium: str  # roubles, two places: the final price
    quoted_premium: str  # what the quick quote of the same application gives
    start_date: date
    months: int
    created_at: datetime
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class Policy:
    series: str
    number: str  # 10 digits
    company: str
    order_id: str
    draft_id: str
    payment_reference: str
    premium: str
    issued_at: datetime
    starts_on: date
    ends_on: date


class UnknownDraft(LookupError):
    """No such draft at this company (a typo, another insurer's, or a sandbox restart)."""

    code = "unknown_draft"


class DraftMismatch(ValueError):
    """The draft was made for another order."""

    code = "draft_mismatch"


@dataclass(frozen=True, slots=True)
class AlreadyIssued:
    """A second issuance for one order: refused, with the policy issued the first time."""

    policy: Policy
    code: str = "already_issued"


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def policy_term(start_date: date, months: int, today: date) -> tuple[date, date]:
    """A policy cannot start before tomorrow (Moscow); it ends the day before its term is up."""
    starts_on = max(start_date, today + timedelta(days=1))
    return starts_on, _add_months(starts_on, months) - timedelta(days=1)


class Numbering:
    """Each company's policy series and its next number."""

    def __init__(self, companies: tuple[Company, ...] = COMPANIES, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self._series: dict[str, str] = {}
        self._next: dict[str, int] = {}
        self._end: dict[str, int] = {}
        for index, company in enumerate(companies):
            block = index * NUMBER_BLOCK
            self._series[company.code] = SERIES[index % len(SERIES)]
            self._next[company.code] = block + rng.randrange(NUMBER_BLOCK // 2)
            self._end[company.code] = block + NUMBER_BLOCK

    def series_of(self, company_code: str) -> str:
        return self._series[company_code]

    def take(self, company_code: str) -> tuple[str, str]:
        number = self._next[company_code]
        if number >= self._end[company_code]:
            raise RuntimeError(f"policy numbers of {company_code} exhausted")  # 5·10^8 policies in
        self._next[company_code] = number + 1
        return self._series[company_code], f"{number:010d}"


class BackOffice:
    """Drafts and policies of every company in one sandbox process (kept in memory)."""

    def __init__(self, quoter: Quoter, numbering: Numbering | None = None) -> None:
        self._quoter = quoter
        self.numbering = numbering or Numbering()
        self._drafts: dict[str, Draft] = {}
        self._draft_by_order: dict[tuple[str, str], str] = {}
        self._policy_by_order: dict[tuple[str, str], Policy] = {}
        # Counters for /sandbox/stats: the invariant "one policy per order" is visible there.
        self.final_calculations = 0
        self.issuance_requests: Counter[str] = Counter()
        self.policies_per_order: Counter[str] = Counter()
        self.second_issuance_refused = 0

    def final_calculation(
        self, company: Company, applicant: Applicant, order_id: str, price_factor: Decimal
    ) -> Draft | Refused:
        self.final_calculations += 1
        known = self._draft_by_order.get((company.code, order_id))
        if known is not None:
            return self._drafts[known]
        answer = self._quoter.price_once(company, applicant)
        if not isinstance(answer, Priced):
            return answer
        quoted = Decimal(answer.premium)
        final = (quoted * price_factor).quantize(_KOPECK, rounding=ROUND_HALF_UP)
        now = datetime.now(UTC).replace(microsecond=0)
        draft = Draft(
            draft_id=f"{company.reference_prefix}-D-{secrets.token_hex(6).upper()}",
            company=company.code,
            order_id=order_id,
            premium=format(final, "f"),
            quoted_premium=answer.premium,
            start_date=applicant.start_date,
            months=applicant.months,
            created_at=now,
            valid_until=now + DRAFT_VALIDITY,
        )
        self._drafts[draft.draft_id] = draft
        self._draft_by_order[(company.code, order_id)] = draft.draft_id
        return draft

    def issued(self, company: Company, order_id: str) -> Policy | None:
        return self._policy_by_order.get((company.code, order_id))

    def issue(self, company: Company, draft_id: str, order_id: str, payment_reference: str) -> Policy | AlreadyIssued:
        """The policy, or the refusal of a second one; raises ``UnknownDraft``/``DraftMismatch``.

        Synchronous from the check to the insert: two concurrent issuances of one order cannot
        both pass the check (one event loop, no await in between).
        """
        self.issuance_requests[order_id] += 1
        existing = self._policy_by_order.get((company.code, order_id))
        if existing is not None:
            self.second_issuance_refused += 1
            return AlreadyIssued(existing)
        draft = self._drafts.get(draft_id)
        if draft is None or draft.company != company.code:
            raise UnknownDraft(draft_id)
        if draft.order_id != order_id:
            raise DraftMismatch(draft_id)
        series, number = self.numbering.take(company.code)
        starts_on, ends_on = policy_term(draft.start_date, draft.months, moscow_today())
        policy = Policy(
            series=series,
            number=number,
            company=company.code,
            order_id=order_id,
            draft_id=draft_id,
            payment_reference=payment_reference,
            premium=draft.premium,
            issued_at=datetime.now(UTC).replace(microsecond=0),
            starts_on=starts_on,
            ends_on=ends_on,
        )
        self._policy_by_order[(company.code, order_id)] = policy
        self.policies_per_order[order_id] += 1
        return policy

    def stats(self) -> dict[str, int]:
        return {
            "final_calculations": self.final_calculations,
            "drafts": len(self._drafts),
            "issuance_requests": sum(self.issuance_requests.values()),
            "policies_issued": sum(self.policies_per_order.values()),
            "second_issuance_refused": self.second_issuance_refused,
            "most_policies_for_one_order": max(self.policies_per_order.values(), default=0),
            "most_issuance_requests_for_one_order": max(self.issuance_requests.values(), default=0),
        }


def check_order_id(raw: object) -> str:
    """The system's order id as an insurer accepts it: 1..100 printable ASCII characters."""
    if (
        not isinstance(raw, str)
        or not 1 <= len(raw) <= MAX_ORDER_ID_LENGTH
        or not raw.isascii()
        or not raw.isprintable()
    ):
        raise ValueError("order id must be 1..100 printable ASCII characters")
    return raw
