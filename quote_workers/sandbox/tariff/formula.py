"""The OSAGO premium formula: premium = TB × KT × KBM × KVS × KO × KM × KS × KN.

Pure functions over the dated tables in ``tables.py``: no I/O, no clock (the policy start date
decides everything), ``Decimal`` only. Scope: an individual owner, a category B car registered in
Russia, personal or taxi use, 3–12 months (KS; KP for short terms is out of scope), no gross
violations (KN = 1).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Literal

from .tables import (
    KT_UNKNOWN_REGION,
    KVS_EXPERIENCE_BANDS,
    KVS_MIN_AGE,
    TB_ROW_FOR_PURPOSE,
    TERRITORIES,
    TariffError,
    TariffTables,
    tables_for,
)

# Named drivers allowed on one policy under our contract (API.md: 1 to 5).
MAX_NAMED_DRIVERS = 5

KOPECK = Decimal("0.01")
ROUBLE = Decimal("1")

# Enough digits that multiplying eight table values is always exact (the largest product has well
# under 30 significant digits), whatever decimal context the caller has set for its own thread.
_EXACT = Context(prec=60, rounding=ROUND_HALF_UP)

# KBM, KM and KS are single tables shared by every version, so the date-less public functions
# read them from the newest version. If a future ordinance changes one of them, give that
# function a start_date like kvs_coefficient has (price() already uses the dated version).
_LATEST = date.max

COEFFICIENT_ORDER: tuple[str, ...] = ("TB", "KT", "KBM", "KVS", "KO", "KM", "KS", "KN")


@dataclass(frozen=True, slots=True)
class DriverFacts:
    birth_date: date
    experience_since: date  # start of driving experience (first licence)
    kbm_class: str  # "M", "0" .. "13", as the bonus-malus register gives it


@dataclass(frozen=True, slots=True)
class TariffInput:
    start_date: date
    months: int
    power_hp: int
    purpose: Literal["personal", "taxi"]
    owner_city: str
    owner_region_code: str
    owner_kbm_class: str  # used only for unlimited drivers
    drivers: tuple[DriverFacts, ...]  # ignored when unlimited_drivers (the application has none)
    unlimited_drivers: bool
    base_rate: Decimal  # TB chosen by the insurer, whole roubles


@dataclass(frozen=True, slots=True)
class PriceBreakdown:
    premium: Decimal  # roubles, quantized to 0.01, ROUND_HALF_UP
    coefficients: dict[str, Decimal]  # keys in COEFFICIENT_ORDER
    tables_version: str  # e.g. "7204-U (from 2025-12-09)"

    def coefficient_strings(self) -> dict[str, str]:
        """The offer's coefficients: TB in whole roubles, the others as printed in the tables.

        Values are exact table Decimals, so their product rounded half up to kopecks is the
        premium (API.md promises this to clients).
        """
        return {
            key: _plain(value.quantize(ROUBLE, context=_EXACT) if key == "TB" else value)
            for key, value in self.coefficients.items()
        }


def _plain(value: Decimal) -> str:
    """Fixed-point text, never exponent notation ("1E+1")."""
    return format(value, "f")


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def _anniversary(since: date, year: int) -> date:
    """``since``'s day in ``year``; 29 February falls on 28 February in a common year.

    Civil Code art. 192(3): a term that would end on a day the month lacks ends on the month's
    last day, so someone born on 29.02 turns a year older on 28.02 of a common year (some
    calculators use 01.03 instead; this is the legal reading).
    """
    if since.month == 2 and since.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return since.replace(year=year)


def full_years(since: date, on: date) -> int:
    """Whole years from ``since`` to ``on``; the anniversary itself counts as a full year.

    Negative when ``since`` is after ``on`` (e.g. experience starting after the policy start).
    """
    years = on.year - since.year
    if on < _anniversary(since, on.year):
        years -= 1
    return years


# --------------------------------------------------------------------------------------------
# Single coefficients
# --------------------------------------------------------------------------------------------


def tb_corridor(start_date: date, purpose: str) -> tuple[Decimal, Decimal]:
    """(min, max) base rate in roubles for the purpose, both allowed, on the start date."""
    return _tb_corridor(tables_for(start_date), purpose)


def _tb_corridor(tables: TariffTables, purpose: str) -> tuple[Decimal, Decimal]:
    row = TB_ROW_FOR_PURPOSE.get(purpose)
    if row is None:
        raise TariffError(f"purpose {purpose!r} is not insured (personal or taxi only)")
    return tables.tb[row]


# Characters ignored when matching a city: spaces of any kind and every hyphen or dash that
# people type in "Ростов-на-Дону".
_CITY_IGNORED = dict.fromkeys(map(ord, "-\u2010\u2011\u2012\u2013\u2014\u2212"), None)


def normalize_city(city: str) -> str:
    """Matching key of a city name: case-insensitive, ё = е, hyphens and spaces ignored."""
    folded = city.casefold().replace("ё", "е")
    return "".join(folded.split()).translate(_CITY_IGNORED)


def normalize_region_code(region_code: str) -> str:
    """Plate region code without leading zeros ("02" → "2"); anything else just trimmed."""
    code = region_code.strip()
    if code.isascii() and code.isdigit():
        return str(int(code))
    return code.upper()


# Lookup indexes over TERRITORIES (which rows, not which values: values stay per version).
_ROW_BY_CITY: dict[str, str] = {normalize_city(city): key for key, t in TERRITORIES.items() for city in t.cities}
_ROW_BY_REGION: dict[str, str] = {code: key for key, t in TERRITORIES.items() for code in t.region_codes}


def territory_coefficient(city: str, region_code: str, start_date: date) -> Decimal:
    """KT of the owner's registration.

    A listed city decides by itself (the registration city decides KT, not the plate code); any
    other city takes its region's row (the capital's value, or the oblast's own where the table
    has one); a region no row lists takes 1.0 until the full table is loaded.
    """
    return _territory(tables_for(start_date), city, region_code)


def _territory(tables: TariffTables, city: str, region_code: str) -> Decimal:
    row = _ROW_BY_CITY.get(normalize_city(city))
    if row is not None:
        return tables.kt[row].city
    row = _ROW_BY_REGION.get(normalize_region_code(region_code))
    if row is not None:
        return tables.kt[row].rest_of_region
    return KT_UNKNOWN_REGION


def kbm_coefficient(kbm_class: str) -> Decimal:
    """KBM of a bonus-malus class ("M", "0" .. "13"); the scale is the same in every version."""
    return _kbm(tables_for(_LATEST), kbm_class)


def _normalize_kbm_class(kbm_class: str) -> str:
    # The worst class is often typed with a Cyrillic "М"; it is the same class.
    cleaned = kbm_class.strip()
    return "M" if cleaned in ("M", "m", "М", "м") else cleaned


def _kbm(tables: TariffTables, kbm_class: str) -> Decimal:
    value = tables.kbm.get(_normalize_kbm_class(kbm_class))
    if value is None:
        raise TariffError(f"bonus-malus class {kbm_class!r} does not exist (M, 0 to 13)")
    return value


def kvs_coefficient(age: int, experience: int, start_date: date) -> Decimal:
    """KVS for whole years of age and experience on the start date; TariffError for "–" cells."""
    return _kvs(tables_for(start_date), age, experience)


def _band_index(bounds: tuple[int, ...], value: int) -> int:
    """Index of the last band whose lower bound is ≤ value (bounds ascending, from bounds[0])."""
    index = 0
    for i, lower in enumerate(bounds):
        if lower <= value:
            index = i
    return index


def _kvs(tables: TariffTables, age: int, experience: int) -> Decimal:
    if age < KVS_MIN_AGE:
        raise TariffError(f"a driver aged {age} is under the minimum age of {KVS_MIN_AGE}")
    if experience < 0:
        raise TariffError("driving experience cannot start after the policy start date")
    if experience > age - KVS_MIN_AGE:
        # A licence is issued no earlier than the 16th birthday (domain/fields.md), so experience
        # is at most age − 16. The table's "–" cells are the bands where that fails for every
        # age of the band; this also catches impossible pairs inside a band (21 years, 6 years).
        raise TariffError(f"experience of {experience} years is impossible at age {age}")
    age_row = _band_index(tuple(lower for lower, _ in tables.kvs), age)
    cells = tables.kvs[age_row][1]
    value = cells[_band_index(KVS_EXPERIENCE_BANDS, experience)]
    if value is None:
        raise TariffError(f"experience of {experience} years is impossible at age {age}")
    return value


def power_coefficient(power_hp: int) -> Decimal:
    """KM: each band is "over the previous bound up to this bound inclusive"."""
    return _km(tables_for(_LATEST), power_hp)


def _km(tables: TariffTables, power_hp: int) -> Decimal:
    if power_hp <= 0:
        raise TariffError(f"engine power of {power_hp} hp is impossible")
    for upper, value in tables.km:
        if upper is None or power_hp <= upper:
            return value
    raise AssertionError("the KM table has no open top band")  # guarded by the table's shape


def period_coefficient(months: int) -> Decimal:
    """KS for individuals, 3 to 12 months."""
    return _ks(tables_for(_LATEST), months)


def _ks(tables: TariffTables, months: int) -> Decimal:
    value = tables.ks.get(months)
    if value is None:
        raise TariffError(f"a period of use of {months} months is not allowed (individuals: 3 to 12 months)")
    return value


# --------------------------------------------------------------------------------------------
# The premium
# --------------------------------------------------------------------------------------------


def _base_rate(tables: TariffTables, purpose: str, base_rate: Decimal) -> Decimal:
    if isinstance(base_rate, float) or not isinstance(base_rate, (Decimal, int)):
        # Money never goes through binary floating point.
        raise TypeError(f"base_rate must be a Decimal, not {type(base_rate).__name__}")
    tb = Decimal(base_rate)
    if not tb.is_finite() or tb != tb.to_integral_value():
        raise TariffError(f"base rate {base_rate} is not a whole number of roubles")
    low, high = _tb_corridor(tables, purpose)
    tb = tb.quantize(ROUBLE, context=_EXACT)
    if not low <= tb <= high:
        raise TariffError(
            f"base rate {_plain(tb)} is outside the {purpose} corridor {_plain(low)}–{_plain(high)} of {tables.version}"
        )
    return tb


def _drivers_kbm_kvs(
    tables: TariffTables, start_date: date, drivers: tuple[DriverFacts, ...]
) -> tuple[Decimal, Decimal]:
    """KBM and KVS of the driver whose KBM × KVS is the largest (the first such on a tie).

    This is the rule of 6007-U as usually quoted. ⚠ One source takes the largest KBM and the
    largest KVS independently (possibly from different drivers); to switch, return
    (max of the KBMs, max of the KVSs) here instead of the pair.
    """
    if not drivers:
        raise TariffError("at least one named driver is required unless drivers are unlimited")
    if len(drivers) > MAX_NAMED_DRIVERS:
        raise TariffError(f"{len(drivers)} named drivers given; at most {MAX_NAMED_DRIVERS} are allowed")
    best: tuple[Decimal, Decimal, Decimal] | None = None  # (product, KBM, KVS)
    for number, driver in enumerate(drivers, start=1):
        try:
            age = full_years(driver.birth_date, start_date)
            experience = full_years(driver.experience_since, start_date)
            kbm = _kbm(tables, driver.kbm_class)
            kvs = _kvs(tables, age, experience)
        except TariffError as error:
            # Say which driver, so the refusal reason is actionable for the person.
            raise TariffError(f"driver {number}: {error.reason}") from error
        product = _EXACT.multiply(kbm, kvs)
        if best is None or product > best[0]:
            best = (product, kbm, kvs)
    assert best is not None  # drivers is non-empty
    return best[1], best[2]


def price(inp: TariffInput) -> PriceBreakdown:
    """The premium and its coefficients with the tables in force on the policy start date."""
    tables = tables_for(inp.start_date)
    tb = _base_rate(tables, inp.purpose, inp.base_rate)
    kt = _territory(tables, inp.owner_city, inp.owner_region_code)
    if inp.unlimited_drivers:
        # Unlimited drivers: KVS is not applied, KBM is the owner's, KO the "unlimited" value.
        kbm = _kbm(tables, inp.owner_kbm_class)
        kvs = Decimal("1")
        ko = tables.ko_unlimited
    else:
        kbm, kvs = _drivers_kbm_kvs(tables, inp.start_date, inp.drivers)
        ko = tables.ko_named
    km = _km(tables, inp.power_hp)
    ks = _ks(tables, inp.months)
    kn = tables.kn[False]  # no gross violations in our scope; kept so the formula is complete
    coefficients = {"TB": tb, "KT": kt, "KBM": kbm, "KVS": kvs, "KO": ko, "KM": km, "KS": ks, "KN": kn}
    product = Decimal(1)
    for value in coefficients.values():
        product = _EXACT.multiply(product, value)
    premium = product.quantize(KOPECK, rounding=ROUND_HALF_UP, context=_EXACT)
    return PriceBreakdown(premium=premium, coefficients=coefficients, tables_version=tables.version)
