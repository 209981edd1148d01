"""What every sandbox protocol parses its request into: the facts an insurer prices on.

Each protocol has its own wire format (as real insurers do); they all end up here, so pricing,
refusal rules and idempotency are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal


class BadRequest(ValueError):
    """The request breaks the insurer's contract; the protocol answers with its 4xx form."""


@dataclass(frozen=True, slots=True)
class DriverIn:
    birth_date: date
    experience_since: date
    document: str  # licence series + number, for the bonus-malus register


@dataclass(frozen=True, slots=True)
class Applicant:
    start_date: date
    months: int
    category: str
    year: int
    power_hp: int
    purpose: Literal["personal", "taxi"]
    region_code: str
    city: str
    unlimited: bool
    owner_document: str | None  # passport, needed only for unlimited drivers (owner's KBM)
    drivers: tuple[DriverIn, ...]


@dataclass(frozen=True, slots=True)
class Priced:
    reference: str
    premium: str  # roubles, two places
    coefficients: dict[str, str]  # TB, KT, KBM, KVS, KO, KM, KS, KN
    valid_until: datetime  # UTC
    tables_version: str


@dataclass(frozen=True, slots=True)
class Refused:
    code: str
    reason: str


def check_applicant(app: Applicant) -> Applicant:
    """Contract checks every protocol shares; BadRequest names the broken rule."""
    if app.category != "B":
        raise BadRequest("only category B is quoted")
    if app.purpose not in ("personal", "taxi"):
        raise BadRequest("purpose must be personal or taxi")
    if not 1 <= app.power_hp <= 2000:
        raise BadRequest("power out of range")
    if not 1900 <= app.year <= 2100:
        raise BadRequest("year out of range")
    if not 3 <= app.months <= 12:
        raise BadRequest("months must be 3..12")
    if not app.region_code or len(app.region_code) > 3 or not app.region_code.isdigit():
        raise BadRequest("region code must be 1..3 digits")
    if len(app.city) > 100:
        raise BadRequest("city too long")
    if app.unlimited:
        if app.drivers:
            raise BadRequest("no named drivers with unlimited drivers")
        if not app.owner_document:
            raise BadRequest("owner document required for unlimited drivers")
    elif not 1 <= len(app.drivers) <= 5:
        raise BadRequest("1..5 named drivers required")
    for driver in app.drivers:
        if not driver.document or len(driver.document) > 32:
            raise BadRequest("driver licence required")
    return app


def parse_date(raw: object) -> date:
    if not isinstance(raw, str) or len(raw) != 10:
        raise BadRequest("dates are YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest("dates are YYYY-MM-DD") from None
