"""From a parsed application to an insurer's answer: underwriting, then the tariff.

Also keeps each insurer's memory of idempotency keys: a repeat of the same key gets the same
reference and price, as a real insurer's pre-calculation does.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from .companies import Company
from .kbm import KbmRegister
from .model import Applicant, Priced, Refused
from .rules import DriverProfile, Facts
from .tariff import DriverFacts, TariffError, TariffInput, full_years, price

# Bounded memory: at 1,500 quotes/s this keeps the last ~30 s of keys at the very least, and far
# longer at normal rates; a worker's retries come within one 60 s deadline.
IDEMPOTENCY_CAPACITY = 100_000
IDEMPOTENCY_TTL_S = 3600.0


class Quoter:
    """Prices applications for every company; one per sandbox process."""

    def __init__(self, kbm: KbmRegister, *, capacity: int = IDEMPOTENCY_CAPACITY) -> None:
        self.kbm = kbm
        self._capacity = capacity
        self._answers: OrderedDict[tuple[str, str], tuple[float, Priced | Refused]] = OrderedDict()
        # How often each (company, key) was priced: an aggregator asking twice for one quote
        # shows here (the fault tests count "insurer calls per quote").
        self._times_asked: OrderedDict[tuple[str, str], int] = OrderedDict()
        # References only need to be unique per company; a random start keeps them from
        # repeating after a sandbox restart (the aggregator may have stored earlier ones).
        self._rng = random.Random()
        self._serials: dict[str, int] = {}

    def quote(self, company: Company, applicant: Applicant, idempotency_key: str | None) -> Priced | Refused:
        if idempotency_key:
            key = (company.code, idempotency_key)
            self._count_asked(key)
            remembered = self._answers.get(key)
            now = time.monotonic()
            if remembered is not None and now - remembered[0] < IDEMPOTENCY_TTL_S:
                return remembered[1]
            answer = self._answer(company, applicant)
            self._answers[key] = (now, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self._capacity:
                self._answers.popitem(last=False)
            return answer
        return self._answer(company, applicant)

    def price_once(self, company: Company, applicant: Applicant) -> Priced | Refused:
        """Price without remembering a key (the final calculation keeps its own memory by order)."""
        return self._answer(company, applicant)

    def _count_asked(self, key: tuple[str, str]) -> None:
        self._times_asked[key] = self._times_asked.get(key, 0) + 1
        self._times_asked.move_to_end(key)
        while len(self._times_asked) > self._capacity:
            self._times_asked.popitem(last=False)

    def most_times_asked(self) -> int:
        """The most any one quote (company and idempotency key) was priced; 0 before any."""
        return max(self._times_asked.values(), default=0)

    def quotes_asked(self) -> int:
        return len(self._times_asked)

    def quotes_asked_again(self) -> int:
        """Quotes priced more than once (a client that lost the first answer, or asked twice)."""
        return sum(1 for times in self._times_asked.values() if times > 1)

    def _answer(self, company: Company, applicant: Applicant) -> Priced | Refused:
        try:
            facts = self._facts(applicant)
            refused = company.underwrite(facts)
            if refused is not None:
                return refused
            breakdown = price(
                TariffInput(
                    start_date=applicant.start_date,
                    months=applicant.months,
                    power_hp=applicant.power_hp,
                    purpose=applicant.purpose,
                    owner_city=applicant.city,
                    owner_region_code=applicant.region_code,
                    owner_kbm_class=facts.owner_class,
                    drivers=tuple(
                        DriverFacts(d.birth_date, d.experience_since, p.kbm_class)
                        for d, p in zip(applicant.drivers, facts.drivers, strict=True)
                    ),
                    unlimited_drivers=applicant.unlimited,
                    base_rate=company.base_rate(applicant.start_date, applicant.purpose, applicant.region_code),
                )
            )
        except TariffError as error:
            # The tariff cannot price this (e.g. no tables for the date, impossible experience):
            # a real insurer refuses with its reason rather than failing.
            return Refused("TARIFF", error.reason)
        return Priced(
            reference=self._next_reference(company, applicant),
            premium=format(breakdown.premium, "f"),
            coefficients=breakdown.coefficient_strings(),
            valid_until=datetime.now(UTC).replace(microsecond=0) + timedelta(days=company.validity_days),
            tables_version=breakdown.tables_version,
        )

    def _facts(self, applicant: Applicant) -> Facts:
        on = applicant.start_date
        drivers = tuple(
            DriverProfile(
                age=full_years(d.birth_date, on),
                experience=full_years(d.experience_since, on),
                kbm_class=self.kbm.class_of(d.document),
            )
            for d in applicant.drivers
        )
        owner_class = self.kbm.class_of(applicant.owner_document) if applicant.owner_document else "3"
        return Facts(applicant, drivers, owner_class, on.year - applicant.year)

    def _next_reference(self, company: Company, applicant: Applicant) -> str:
        serial = self._serials.get(company.code)
        serial = self._rng.randrange(1_000_000, 9_000_000) if serial is None else serial + 1
        self._serials[company.code] = serial
        return f"{company.reference_prefix}-{applicant.start_date.year}-{serial:07d}"

    def remembered(self) -> int:
        return len(self._answers)
