"""Pure parts of the sandbox's issuance and payments: numbering, policy terms, price changes,
Russian amounts, the callback retry schedule."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest

from quote_workers.sandbox.behaviour import Behaviour
from quote_workers.sandbox.companies import COMPANIES
from quote_workers.sandbox.issuance import SERIES, Numbering, policy_term
from quote_workers.sandbox.payments.money import decimal_from_kopecks, format_rub, kopecks_from_decimal
from quote_workers.sandbox.payments.provider import RetryPolicy


def test_numbers_are_unique_per_series_even_from_the_same_start() -> None:
    # Every company starting at its block's lowest number: blocks alone keep series unique.
    class Lowest(random.Random):
        def randrange(self, *args: object, **kwargs: object) -> int:
            return 0

    numbering = Numbering(COMPANIES, Lowest())
    taken = [numbering.take(company.code) for _ in range(300) for company in COMPANIES]
    assert len(set(taken)) == len(taken)
    assert {series for series, _ in taken} == set(SERIES)
    assert all(len(number) == 10 and number.isdigit() for _, number in taken)


@pytest.mark.parametrize(
    ("start", "months", "today", "expected"),
    [
        (date(2026, 12, 1), 12, date(2026, 11, 20), (date(2026, 12, 1), date(2027, 11, 30))),
        (date(2026, 11, 20), 12, date(2026, 11, 25), (date(2026, 11, 26), date(2027, 11, 25))),
        (date(2027, 1, 31), 3, date(2027, 1, 1), (date(2027, 1, 31), date(2027, 4, 29))),
        (date(2028, 2, 29), 12, date(2028, 1, 1), (date(2028, 2, 29), date(2029, 2, 27))),
    ],
)
def test_policy_term(start: date, months: int, today: date, expected: tuple[date, date]) -> None:
    assert policy_term(start, months, today) == expected


@pytest.mark.parametrize(("change", "factor"), [(None, "1"), ("+3%", "1.03"), ("-2%", "0.98"), ("+1.5%", "1.015")])
def test_price_change_factor(change: str | None, factor: str) -> None:
    body = b'{"issue": {"price_change": "%s"}}' % change.encode() if change else b'{"issue": {}}'
    behaviour = Behaviour.from_body(body, (0, 0))
    assert behaviour.issue.price_factor() == Decimal(factor)


@pytest.mark.parametrize(
    ("kopecks", "shown"),
    [(944180, "9 441,80 ₽"), (50, "0,50 ₽"), (100000, "1 000,00 ₽"), (1234567890, "12 345 678,90 ₽")],
)
def test_russian_amounts(kopecks: int, shown: str) -> None:
    assert format_rub(kopecks) == shown.replace(" ", "\u00a0")
    assert kopecks_from_decimal(decimal_from_kopecks(kopecks)) == kopecks


@pytest.mark.parametrize("raw", ["9441.8", "9441", "-1.00", "1e3", "01.00", " 1.00", "1,00", "1.000"])
def test_decimal_amounts_take_two_places_only(raw: str) -> None:
    with pytest.raises(ValueError):
        kopecks_from_decimal(raw)


def test_callback_retry_schedule_is_exponential_and_bounded() -> None:
    policy = RetryPolicy()
    delays = [policy.delay_after(attempt) for attempt in range(1, policy.max_attempts)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and max(delays) == 30.0
    assert 60 < sum(delays) < 600  # gives up within minutes, not hours
