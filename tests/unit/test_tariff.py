"""Unit tests of the OSAGO tariff engine (quote_workers.sandbox.tariff): pure, no I/O.

Expected values are transcribed independently from /work/shared/domain/osago-tariff.md (the
single source of facts), so a typo in the engine's tables shows up as a failure here.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from quote_workers.sandbox.tariff import (
    COEFFICIENT_ORDER,
    KBM_CLASSES,
    VERSIONS,
    DriverFacts,
    PriceBreakdown,
    TariffError,
    TariffInput,
    TariffTables,
    full_years,
    kbm_coefficient,
    kvs_coefficient,
    normalize_city,
    period_coefficient,
    power_coefficient,
    price,
    tables_for,
    tb_corridor,
    territory_coefficient,
)
from quote_workers.sandbox.tariff import tables as tariff_tables
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS

OLD = date(2025, 12, 8)  # last day of the 13.09.2022 tables (6209-U)
NEW = date(2025, 12, 9)  # first day of the 09.12.2025 tables (7204-U)
KOPECK = Decimal("0.01")


def years_before(on: date, years: int) -> date:
    return on.replace(year=on.year - years)


def driver(age: int = 35, experience: int = 10, kbm_class: str = "13", on: date = NEW) -> DriverFacts:
    """A driver who is exactly ``age`` with exactly ``experience`` years on ``on``."""
    return DriverFacts(
        birth_date=years_before(on, age), experience_since=years_before(on, experience), kbm_class=kbm_class
    )


# The domain notes' worked example: Moscow, 35 y, 10 y experience, class 13, 150 hp, 12 months.
EXAMPLE = TariffInput(
    start_date=NEW,
    months=12,
    power_hp=150,
    purpose="personal",
    owner_city="Москва",
    owner_region_code="77",
    owner_kbm_class="3",
    drivers=(driver(),),
    unlimited_drivers=False,
    base_rate=Decimal("8665"),
)


def make(**changes: object) -> TariffInput:
    return dataclasses.replace(EXAMPLE, **changes)  # type: ignore[arg-type]


def rounded_product(strings: dict[str, str]) -> Decimal:
    """What a client does with an offer: multiply the strings, round half up to kopecks."""
    with localcontext() as ctx:
        ctx.prec = 60
        product = Decimal(1)
        for text in strings.values():
            product *= Decimal(text)
        return product.quantize(KOPECK, rounding=ROUND_HALF_UP)


def reason_of(excinfo: pytest.ExceptionInfo[TariffError]) -> str:
    reason = excinfo.value.reason
    assert reason and reason == str(excinfo.value)
    return reason


# ----------------------------------------------------------------------------------------------
# The worked example and the offer shape
# ----------------------------------------------------------------------------------------------


def test_worked_example_from_the_domain_notes() -> None:
    result = price(EXAMPLE)
    assert result.premium == Decimal("9441.80")
    assert str(result.premium) == "9441.80"
    assert result.coefficient_strings() == WORKED_EXAMPLE_COEFFICIENTS
    assert result.tables_version == "7204-U (from 2025-12-09)"


def test_coefficients_are_decimals_in_the_contract_order() -> None:
    result = price(EXAMPLE)
    assert isinstance(result, PriceBreakdown)
    assert tuple(result.coefficients) == COEFFICIENT_ORDER
    assert COEFFICIENT_ORDER == ("TB", "KT", "KBM", "KVS", "KO", "KM", "KS", "KN")
    assert tuple(result.coefficient_strings()) == COEFFICIENT_ORDER
    assert all(type(v) is Decimal for v in result.coefficients.values())
    assert result.premium.as_tuple().exponent == -2


def test_tb_string_is_whole_roubles_even_when_given_with_kopecks() -> None:
    result = price(make(base_rate=Decimal("8000.00")))
    assert result.coefficient_strings()["TB"] == "8000"
    assert result.premium == rounded_product(result.coefficient_strings())


def test_premium_is_rounded_half_up_not_half_even() -> None:
    # 1399 × 1.0 × 2.25 × 1.00 × 1 × 1.0 × 0.7 × 1 = 2203.425 exactly.
    result = price(
        make(
            base_rate=Decimal("1399"),
            owner_city="Тверь",
            owner_region_code="69",
            drivers=(driver(age=35, experience=3, kbm_class="1"),),
            power_hp=60,
            months=6,
        )
    )
    assert result.coefficient_strings() == {
        "TB": "1399",
        "KT": "1.0",
        "KBM": "2.25",
        "KVS": "1.00",
        "KO": "1",
        "KM": "1.0",
        "KS": "0.7",
        "KN": "1",
    }
    assert result.premium == Decimal("2203.43")


def test_result_does_not_depend_on_the_callers_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = "ROUND_DOWN"
        result = price(EXAMPLE)
    assert result.premium == Decimal("9441.80")


def test_kn_is_one_and_the_violation_value_is_kept_as_data() -> None:
    assert price(EXAMPLE).coefficients["KN"] == Decimal("1")
    assert {str(v) for v in tables_for(NEW).kn.values()} == {"1", "1.5"}


# ----------------------------------------------------------------------------------------------
# KM, engine power: every band edge ("over X up to Y inclusive")
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("power_hp", "expected"),
    [
        (1, "0.6"),
        (50, "0.6"),
        (51, "1.0"),
        (70, "1.0"),
        (71, "1.1"),
        (100, "1.1"),
        (101, "1.2"),
        (120, "1.2"),
        (121, "1.4"),
        (150, "1.4"),
        (151, "1.6"),
        (1000, "1.6"),
    ],
)
def test_power_bands(power_hp: int, expected: str) -> None:
    assert str(power_coefficient(power_hp)) == expected
    assert price(make(power_hp=power_hp)).coefficient_strings()["KM"] == expected


@pytest.mark.parametrize("power_hp", [0, -1])
def test_impossible_power_is_rejected(power_hp: int) -> None:
    with pytest.raises(TariffError) as excinfo:
        power_coefficient(power_hp)
    assert "hp" in reason_of(excinfo)


# ----------------------------------------------------------------------------------------------
# KS, period of use
# ----------------------------------------------------------------------------------------------

KS_EXPECTED = {3: "0.5", 4: "0.6", 5: "0.65", 6: "0.7", 7: "0.8", 8: "0.9", 9: "0.95", 10: "1", 11: "1", 12: "1"}


@pytest.mark.parametrize(("months", "expected"), sorted(KS_EXPECTED.items()))
def test_every_period_month(months: int, expected: str) -> None:
    assert str(period_coefficient(months)) == expected
    assert price(make(months=months)).coefficient_strings()["KS"] == expected


@pytest.mark.parametrize("months", [-1, 0, 1, 2, 13, 24])
def test_periods_outside_3_to_12_months_are_rejected(months: int) -> None:
    with pytest.raises(TariffError) as excinfo:
        period_coefficient(months)
    assert f"{months} months" in reason_of(excinfo)
    with pytest.raises(TariffError):
        price(make(months=months))


# ----------------------------------------------------------------------------------------------
# KBM, bonus-malus
# ----------------------------------------------------------------------------------------------

KBM_EXPECTED = dict(
    zip(
        "M 0 1 2 3 4 5 6 7 8 9 10 11 12 13".split(),
        "3.92 2.94 2.25 1.76 1.17 1.00 0.91 0.83 0.78 0.74 0.68 0.63 0.57 0.52 0.46".split(),
        strict=True,
    )
)


@pytest.mark.parametrize(("kbm_class", "expected"), list(KBM_EXPECTED.items()))
def test_every_kbm_class(kbm_class: str, expected: str) -> None:
    assert str(kbm_coefficient(kbm_class)) == expected
    named = price(make(drivers=(driver(kbm_class=kbm_class),)))
    assert named.coefficient_strings()["KBM"] == expected
    unlimited = price(make(unlimited_drivers=True, drivers=(), owner_kbm_class=kbm_class))
    assert unlimited.coefficient_strings()["KBM"] == expected


def test_kbm_classes_are_exactly_the_scale() -> None:
    assert KBM_CLASSES == tuple(KBM_EXPECTED)
    assert kbm_coefficient(tariff_tables.KBM_DEFAULT_CLASS) == Decimal("1.17")


def test_cyrillic_m_is_the_same_class() -> None:
    assert kbm_coefficient("М") == kbm_coefficient("M") == Decimal("3.92")


@pytest.mark.parametrize("kbm_class", ["14", "-1", "", "03", "A", "1.0"])
def test_unknown_kbm_class_is_rejected(kbm_class: str) -> None:
    with pytest.raises(TariffError) as excinfo:
        kbm_coefficient(kbm_class)
    assert "class" in reason_of(excinfo)


# ----------------------------------------------------------------------------------------------
# KVS, age × experience: the whole table, its "–" cells and the limits
# ----------------------------------------------------------------------------------------------

KVS_TABLE = """
16 | 2.27 | 1.92 | 1.84 | 1.65 | 1.62 | – | – | –
22 | 1.88 | 1.72 | 1.71 | 1.13 | 1.10 | 1.09 | – | –
25 | 1.72 | 1.60 | 1.54 | 1.09 | 1.08 | 1.07 | 1.02 | –
30 | 1.56 | 1.50 | 1.48 | 1.05 | 1.04 | 1.01 | 0.97 | 0.95
35 | 1.54 | 1.47 | 1.46 | 1.00 | 0.97 | 0.95 | 0.94 | 0.93
40 | 1.50 | 1.44 | 1.43 | 0.96 | 0.95 | 0.94 | 0.93 | 0.91
50 | 1.46 | 1.40 | 1.39 | 0.93 | 0.92 | 0.91 | 0.90 | 0.86
60 | 1.43 | 1.36 | 1.35 | 0.91 | 0.90 | 0.89 | 0.88 | 0.83
"""
AGE_BANDS = [(16, 21), (22, 24), (25, 29), (30, 34), (35, 39), (40, 49), (50, 59), (60, 99)]
EXPERIENCE_BANDS = [(0, 0), (1, 1), (2, 2), (3, 4), (5, 6), (7, 9), (10, 14), (15, 99)]
KVS_CELLS: dict[tuple[int, int], str | None] = {}
for _age_band, _line in zip(AGE_BANDS, KVS_TABLE.strip().splitlines(), strict=True):
    for _exp_band, _cell in zip(EXPERIENCE_BANDS, _line.split(" | ")[1:], strict=True):
        for _age in range(_age_band[0], _age_band[1] + 1):
            for _exp in range(_exp_band[0], min(_exp_band[1], _age) + 1):
                KVS_CELLS[(_age, _exp)] = None if _cell == "–" else _cell
# A licence comes no earlier than the 16th birthday (domain/fields.md): experience ≤ age − 16.
VALID_KVS = sorted(k for k, v in KVS_CELLS.items() if v is not None and k[1] <= k[0] - 16)
DASH_KVS = sorted(k for k, v in KVS_CELLS.items() if v is None)
# Pairs whose band has a value but that no real driver can have (licence before 16).
TOO_EARLY_KVS = sorted(k for k, v in KVS_CELLS.items() if v is not None and k[1] > k[0] - 16)


def test_kvs_every_valid_age_and_experience() -> None:
    # Every (age, experience) pair from 16 to 99 years, not just the band edges.
    for age, experience in VALID_KVS:
        for on in (OLD, NEW):
            got = kvs_coefficient(age, experience, on)
            assert str(got) == KVS_CELLS[(age, experience)], (age, experience, on)


@pytest.mark.parametrize(("age", "experience"), DASH_KVS)
def test_kvs_dash_cells_are_rejected_with_a_reason(age: int, experience: int) -> None:
    with pytest.raises(TariffError) as excinfo:
        kvs_coefficient(age, experience, NEW)
    assert reason_of(excinfo) == f"experience of {experience} years is impossible at age {age}"


def test_every_kvs_cell_is_reachable_by_a_possible_driver() -> None:
    reached = {KVS_CELLS[pair] for pair in VALID_KVS}
    assert reached == {v for v in KVS_CELLS.values() if v is not None}
    assert len(VALID_KVS) > 1000 and len(DASH_KVS) > 50 and len(TOO_EARLY_KVS) > 100


def test_experience_from_before_the_16th_birthday_is_rejected() -> None:
    # Every such pair from 16 to 99 years (a loop: a thousand test ids would drown the report).
    for age, experience in TOO_EARLY_KVS:
        with pytest.raises(TariffError) as excinfo:
            kvs_coefficient(age, experience, NEW)
        assert reason_of(excinfo) == f"experience of {experience} years is impossible at age {age}"


@pytest.mark.parametrize(
    ("age", "experience", "expected"),
    [
        (21, 5, "1.62"),
        (24, 8, "1.09"),
        (29, 13, "1.02"),
        (31, 15, "0.95"),
        (99, 83, "0.83"),
    ],
)
def test_experience_from_the_16th_birthday_is_priced(age: int, experience: int, expected: str) -> None:
    assert str(kvs_coefficient(age, experience, NEW)) == expected


def test_kvs_dash_cell_reason_from_price_names_the_driver() -> None:
    second = driver(age=22, experience=8)
    with pytest.raises(TariffError) as excinfo:
        price(make(drivers=(driver(), second)))
    assert reason_of(excinfo) == "driver 2: experience of 8 years is impossible at age 22"


@pytest.mark.parametrize("age", [-1, 0, 10, 15])
def test_under_16_is_rejected(age: int) -> None:
    with pytest.raises(TariffError) as excinfo:
        kvs_coefficient(age, 0, NEW)
    assert "16" in reason_of(excinfo)


def test_negative_experience_is_rejected() -> None:
    with pytest.raises(TariffError):
        kvs_coefficient(30, -1, NEW)
    future = DriverFacts(date(1990, 1, 1), NEW + timedelta(days=1), "3")
    with pytest.raises(TariffError) as excinfo:
        price(make(drivers=(future,)))
    assert reason_of(excinfo).startswith("driver 1: ")


def test_experience_longer_than_life_is_rejected() -> None:
    with pytest.raises(TariffError):
        kvs_coefficient(60, 61, NEW)
    before_birth = DriverFacts(date(1990, 6, 1), date(1990, 5, 31), "3")
    with pytest.raises(TariffError) as excinfo:
        price(make(drivers=(before_birth,)))
    assert reason_of(excinfo) == "driver 1: experience of 35 years is impossible at age 35"


def test_policy_starting_before_birth_is_rejected() -> None:
    unborn = DriverFacts(NEW + timedelta(days=1), NEW + timedelta(days=2), "3")
    with pytest.raises(TariffError):
        price(make(drivers=(unborn,)))


# ----------------------------------------------------------------------------------------------
# Whole years on the start date
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "on", "expected"),
    [
        (date(2000, 12, 9), date(2025, 12, 9), 25),  # anniversary on the start date counts
        (date(2000, 12, 9), date(2025, 12, 8), 24),  # the day before does not
        (date(2000, 12, 9), date(2025, 12, 10), 25),
        (date(2000, 1, 1), date(2025, 12, 31), 25),
        (date(2000, 12, 31), date(2026, 1, 1), 25),
        (date(2025, 12, 9), date(2025, 12, 9), 0),
        (date(2025, 12, 10), date(2025, 12, 9), -1),  # a date after the start date is negative
        (date(2026, 12, 9), date(2025, 12, 9), -1),
        (date(2026, 12, 10), date(2025, 12, 9), -2),
        # 29 February: in a common year the anniversary is 28 February (Civil Code art. 192(3)).
        (date(2004, 2, 29), date(2025, 2, 27), 20),
        (date(2004, 2, 29), date(2025, 2, 28), 21),
        (date(2004, 2, 29), date(2025, 3, 1), 21),
        (date(2004, 2, 29), date(2024, 2, 28), 19),
        (date(2004, 2, 29), date(2024, 2, 29), 20),
        (date(2004, 2, 28), date(2024, 2, 28), 20),
        (date(2004, 3, 1), date(2025, 2, 28), 20),
    ],
)
def test_full_years(since: date, on: date, expected: int) -> None:
    assert full_years(since, on) == expected


def test_age_boundary_on_the_start_date_moves_the_kvs_row() -> None:
    # 22 on the start date: row 22–24 (1.88); one day short: still 21, row 16–21 (2.27).
    experience_since = date(2025, 6, 1)  # 0 full years
    on_birthday = DriverFacts(date(2003, 12, 9), experience_since, "3")
    day_short = DriverFacts(date(2003, 12, 10), experience_since, "3")
    assert price(make(drivers=(on_birthday,))).coefficient_strings()["KVS"] == "1.88"
    assert price(make(drivers=(day_short,))).coefficient_strings()["KVS"] == "2.27"


def test_experience_boundary_on_the_start_date_moves_the_kvs_column() -> None:
    # 35 years old; 3 full years of experience on the start date → 1.00, one day short → 1.46.
    birth = date(1990, 1, 1)
    on_anniversary = DriverFacts(birth, date(2022, 12, 9), "3")
    day_short = DriverFacts(birth, date(2022, 12, 10), "3")
    assert price(make(drivers=(on_anniversary,))).coefficient_strings()["KVS"] == "1.00"
    assert price(make(drivers=(day_short,))).coefficient_strings()["KVS"] == "1.46"


def test_minimum_age_boundary_on_the_start_date() -> None:
    sixteen_today = DriverFacts(date(2009, 12, 9), date(2025, 12, 9), "3")
    sixteen_tomorrow = DriverFacts(date(2009, 12, 10), date(2025, 12, 9), "3")
    assert price(make(drivers=(sixteen_today,))).coefficient_strings()["KVS"] == "2.27"
    with pytest.raises(TariffError) as excinfo:
        price(make(drivers=(sixteen_tomorrow,)))
    assert reason_of(excinfo).startswith("driver 1: a driver aged 15")


def test_leap_day_birthday_in_a_common_year() -> None:
    start = date(2027, 2, 28)  # 2027 is a common year
    born = DriverFacts(date(2005, 2, 28), date(2026, 6, 1), "3")  # 28.02.2005 → 22
    leap_born = DriverFacts(date(2004, 2, 29), date(2026, 6, 1), "3")  # 29.02.2004 → 23
    assert full_years(born.birth_date, start) == 22
    assert full_years(leap_born.birth_date, start) == 23
    strings = price(make(start_date=start, drivers=(leap_born,))).coefficient_strings()
    assert strings["KVS"] == "1.88"  # row 22–24, 0 years


# ----------------------------------------------------------------------------------------------
# Table versions by start date
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "version"),
    [
        (date(2022, 9, 13), "6209-U (from 2022-09-13)"),
        (date(2024, 1, 1), "6209-U (from 2022-09-13)"),
        (OLD, "6209-U (from 2022-09-13)"),
        (NEW, "7204-U (from 2025-12-09)"),
        (date(2030, 1, 1), "7204-U (from 2025-12-09)"),
    ],
)
def test_tables_are_chosen_by_start_date(start: date, version: str) -> None:
    tables = tables_for(start)
    assert isinstance(tables, TariffTables)
    assert tables.version == version


@pytest.mark.parametrize("start", [date(2022, 9, 12), date(2022, 4, 1), date(2000, 1, 1)])
def test_dates_before_the_earliest_tables_are_rejected(start: date) -> None:
    with pytest.raises(TariffError) as excinfo:
        tables_for(start)
    assert "2022-09-13" in reason_of(excinfo)
    with pytest.raises(TariffError):
        price(make(start_date=start, base_rate=Decimal("5000")))


def test_every_version_names_its_ordinance_for_every_coefficient() -> None:
    assert [v.ordinance for v in VERSIONS] == ["6209-U", "7204-U"]
    for version in VERSIONS:
        assert set(version.sources) == set(COEFFICIENT_ORDER)
        assert all("-U" in source for source in version.sources.values())


def test_versions_differ_in_the_price_of_the_same_application() -> None:
    old = price(make(start_date=OLD, base_rate=Decimal("7535"), drivers=(driver(on=OLD),)))
    new = price(make(start_date=NEW, base_rate=Decimal("7535")))
    assert old.tables_version != new.tables_version
    # Moscow's KT is unchanged, so the same TB gives the same premium...
    assert old.premium == new.premium
    # ...but Novosibirsk's is not.
    nsk_old = price(
        make(
            start_date=OLD,
            owner_city="Новосибирск",
            owner_region_code="54",
            base_rate=Decimal("7535"),
            drivers=(driver(on=OLD),),
        )
    )
    nsk_new = price(make(owner_city="Новосибирск", owner_region_code="54", base_rate=Decimal("7535")))
    assert nsk_old.coefficient_strings()["KT"] == "1.63"
    assert nsk_new.coefficient_strings()["KT"] == "3.12"
    assert nsk_new.premium > nsk_old.premium


@pytest.mark.parametrize(
    ("city", "region", "old_kt", "new_kt"),
    [
        ("Новосибирск", "54", "1.63", "3.12"),
        ("Казань", "16", "1.80", "1.70"),
        ("Москва", "77", "1.80", "1.80"),
        ("Пермь", "59", "1.80", "1.60"),
    ],
)
def test_territory_changes_on_2025_12_09(city: str, region: str, old_kt: str, new_kt: str) -> None:
    assert str(territory_coefficient(city, region, OLD)) == old_kt
    assert str(territory_coefficient(city, region, NEW)) == new_kt


@pytest.mark.parametrize(
    ("start", "purpose", "low", "high"),
    [
        (OLD, "personal", "1646", "7535"),
        (NEW, "personal", "1399", "8665"),
        (OLD, "taxi", "1490", "15756"),
        (NEW, "taxi", "1267", "18119"),
    ],
)
def test_tb_corridors(start: date, purpose: str, low: str, high: str) -> None:
    assert tb_corridor(start, purpose) == (Decimal(low), Decimal(high))


def test_out_of_scope_tb_rows_are_kept_as_data() -> None:
    assert tables_for(OLD).tb["B_legal_entity"] == (Decimal("852"), Decimal("5722"))
    assert tables_for(NEW).tb["B_legal_entity"] == (Decimal("724"), Decimal("6580"))
    assert tables_for(OLD).tb["A_M"] == (Decimal("259"), Decimal("3043"))
    assert tables_for(NEW).tb["A_M"] == (Decimal("155"), Decimal("4260"))


# ----------------------------------------------------------------------------------------------
# TB: corridor edges, taxi, malformed base rates
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "purpose", "base_rate", "allowed"),
    [
        (NEW, "personal", "1399", True),
        (NEW, "personal", "8665", True),
        (NEW, "personal", "1398", False),
        (NEW, "personal", "8666", False),
        (OLD, "personal", "1646", True),
        (OLD, "personal", "7535", True),
        (OLD, "personal", "1645", False),
        (OLD, "personal", "7536", False),
        (OLD, "personal", "8665", False),  # the new maximum before it is in force
        (NEW, "taxi", "1267", True),
        (NEW, "taxi", "18119", True),
        (NEW, "taxi", "1266", False),
        (NEW, "taxi", "18120", False),
        (OLD, "taxi", "1490", True),
        (OLD, "taxi", "15756", True),
        (OLD, "taxi", "1489", False),
        (OLD, "taxi", "15757", False),
        (NEW, "personal", "18119", False),  # a taxi rate is not a personal rate
    ],
)
def test_base_rate_corridor(start: date, purpose: str, base_rate: str, allowed: bool) -> None:
    inp = make(start_date=start, purpose=purpose, base_rate=Decimal(base_rate), drivers=(driver(on=start),))
    if allowed:
        result = price(inp)
        assert result.coefficient_strings()["TB"] == base_rate
        assert result.premium == rounded_product(result.coefficient_strings())
    else:
        with pytest.raises(TariffError) as excinfo:
            price(inp)
        assert "corridor" in reason_of(excinfo)
        assert base_rate in reason_of(excinfo)


def test_taxi_changes_only_the_corridor() -> None:
    personal = price(EXAMPLE)
    taxi = price(make(purpose="taxi"))
    assert taxi.coefficients == personal.coefficients
    assert taxi.premium == personal.premium
    top = price(make(purpose="taxi", base_rate=Decimal("18119")))
    assert top.premium == (Decimal("18119") * Decimal("1.089648")).quantize(KOPECK, ROUND_HALF_UP)


def test_unknown_purpose_is_rejected() -> None:
    with pytest.raises(TariffError):
        tb_corridor(NEW, "rent")
    with pytest.raises(TariffError):
        price(make(purpose="rent"))


@pytest.mark.parametrize("base_rate", ["8000.50", "8000.01", "NaN", "Infinity"])
def test_base_rate_must_be_whole_finite_roubles(base_rate: str) -> None:
    with pytest.raises(TariffError) as excinfo:
        price(make(base_rate=Decimal(base_rate)))
    assert "whole number" in reason_of(excinfo)


def test_float_base_rate_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        price(make(base_rate=8000.0))


# ----------------------------------------------------------------------------------------------
# KT: city matching, region fallbacks, unknown regions
# ----------------------------------------------------------------------------------------------

# Every city row on 09.12.2025 with its plate codes (domain table, second column).
KT_NEW = [
    ("Москва", ["77", "97", "99", "177", "197", "199", "777", "797", "799", "977"], "1.80"),
    ("Санкт-Петербург", ["78", "98", "178", "198"], "1.64"),
    ("Новосибирск", ["54", "154"], "3.12"),
    ("Екатеринбург", ["66", "96", "196"], "1.64"),
    ("Казань", ["16", "116", "716"], "1.70"),
    ("Нижний Новгород", ["52", "152"], "1.56"),
    ("Челябинск", ["74", "174", "774"], "1.77"),
    ("Самара", ["63", "163", "763"], "1.48"),
    ("Ростов-на-Дону", ["61", "161", "761"], "1.56"),
    ("Уфа", ["02", "102", "702"], "1.56"),
    ("Красноярск", ["24", "124"], "1.56"),
    ("Пермь", ["59", "159"], "1.60"),
    ("Краснодар", ["23", "93", "123", "193"], "1.56"),
    ("Воронеж", ["36", "136"], "1.35"),
    ("Омск", ["55"], "1.42"),
    ("Тюмень", ["72", "172"], "1.60"),
    ("Волгоград", ["34", "134"], "1.21"),
    ("Владивосток", ["25", "125"], "1.36"),
]
KT_OLD = {
    "Москва": "1.80",
    "Санкт-Петербург": "1.64",
    "Новосибирск": "1.63",
    "Екатеринбург": "1.64",
    "Казань": "1.80",
    "Нижний Новгород": "1.64",
    "Челябинск": "1.88",
    "Самара": "1.48",
    "Ростов-на-Дону": "1.64",
    "Уфа": "1.64",
    "Красноярск": "1.64",
    "Пермь": "1.80",
    "Краснодар": "1.64",
    "Воронеж": "1.40",
    "Омск": "1.48",
    "Тюмень": "1.80",
    "Волгоград": "1.24",
    "Владивосток": "1.36",
}


@pytest.mark.parametrize(("city", "codes", "new_kt"), KT_NEW)
def test_every_city_row_in_both_versions(city: str, codes: list[str], new_kt: str) -> None:
    assert str(territory_coefficient(city, codes[0], NEW)) == new_kt
    assert str(territory_coefficient(city, codes[0], OLD)) == KT_OLD[city]
    # The registration city decides, whatever region code comes with it.
    assert str(territory_coefficient(city, "69", NEW)) == new_kt
    assert str(territory_coefficient(city, "", NEW)) == new_kt


@pytest.mark.parametrize(("city", "codes", "new_kt"), KT_NEW)
def test_every_region_code_of_a_city_row_falls_back_to_it(city: str, codes: list[str], new_kt: str) -> None:
    expected_new = "2.00" if city == "Новосибирск" else new_kt  # the rest of the oblast differs
    for code in codes:
        assert str(territory_coefficient("Посёлок Неизвестный", code, NEW)) == expected_new
        assert str(territory_coefficient("Посёлок Неизвестный", code, OLD)) == KT_OLD[city]


@pytest.mark.parametrize(
    "city",
    [
        "Ростов-на-Дону",
        "ростов на дону",
        "РОСТОВ-НА-ДОНУ",
        "ростовнадону",
        "Ростов на-Дону",
        "  Ростов – на – Дону  ",
        "Ростов\u2011на\u2011Дону",
        "Ростов\u00a0на\u00a0Дону",
    ],
)
def test_city_matching_ignores_case_hyphens_and_spaces(city: str) -> None:
    assert territory_coefficient(city, "", NEW) == Decimal("1.56")
    assert territory_coefficient(city, "", OLD) == Decimal("1.64")


@pytest.mark.parametrize(
    ("typed", "kt"),
    [
        ("Ёкатеринбург", "1.64"),
        ("екатеринбург", "1.64"),
        ("Воронёж", "1.35"),
        ("ПЁРМЬ", "1.60"),
        ("москва", "1.80"),
        ("МОСКВА", "1.80"),
        (" Москва ", "1.80"),
        ("санкт петербург", "1.64"),
        ("Санкт-петербург", "1.64"),
        ("нижний-новгород", "1.56"),
        ("НижнийНовгород", "1.56"),
    ],
)
def test_city_matching_treats_yo_as_ye(typed: str, kt: str) -> None:
    assert str(territory_coefficient(typed, "", NEW)) == kt


def test_normalize_city() -> None:
    assert normalize_city("Ростов-на-Дону") == normalize_city("ростов на дону") == "ростовнадону"
    assert normalize_city("Ёлки Палки") == "елкипалки"


@pytest.mark.parametrize(
    ("city", "region", "old_kt", "new_kt"),
    [
        # Moscow oblast has a row of its own, every one of its codes.
        *[("Химки", code, "1.56", "1.56") for code in ["50", "90", "150", "190", "750", "790"]],
        # So does Leningrad oblast.
        ("Гатчина", "47", "1.24", "1.24"),
        ("Всеволожск", "147", "1.24", "1.24"),
        # The rest of Novosibirsk oblast: 2.00 from 09.12.2025; before, no oblast value → city value.
        ("Бердск", "54", "1.63", "2.00"),
        ("Искитим", "154", "1.63", "2.00"),
        # Other regions take the capital's row.
        ("Зеленодольск", "16", "1.80", "1.70"),
        ("Стерлитамак", "02", "1.64", "1.56"),
        ("Стерлитамак", "2", "1.64", "1.56"),
        ("Стерлитамак", " 102 ", "1.64", "1.56"),
        ("Тольятти", "63", "1.48", "1.48"),
        ("Сочи", "23", "1.64", "1.56"),
        ("Находка", "125", "1.36", "1.36"),
        # A settlement not listed as a city takes its region code's row (Zelenograd is Moscow).
        ("Зеленоград", "77", "1.80", "1.80"),
        # A listed city wins over its region's row: Moscow with a Moscow-oblast code.
        ("Москва", "50", "1.80", "1.80"),
        # Regions not in the table: 1.0 (documented simplification).
        ("Тверь", "69", "1.0", "1.0"),
        ("Калининград", "39", "1.0", "1.0"),
        ("Неизвестно", "", "1.0", "1.0"),
        ("Неизвестно", "XX", "1.0", "1.0"),
        ("Неизвестно", "0", "1.0", "1.0"),
    ],
)
def test_region_fallbacks(city: str, region: str, old_kt: str, new_kt: str) -> None:
    assert str(territory_coefficient(city, region, OLD)) == old_kt
    assert str(territory_coefficient(city, region, NEW)) == new_kt


def test_territory_reaches_the_price() -> None:
    result = price(make(owner_city="Бердск", owner_region_code="54"))
    assert result.coefficient_strings()["KT"] == "2.00"
    unknown = price(make(owner_city="Тверь", owner_region_code="69"))
    assert unknown.coefficient_strings()["KT"] == "1.0"


# ----------------------------------------------------------------------------------------------
# Several named drivers, unlimited drivers
# ----------------------------------------------------------------------------------------------


def test_multi_driver_takes_the_pair_with_the_largest_product() -> None:
    worst_kbm = driver(age=60, experience=40, kbm_class="M")  # 3.92 × 0.83 = 3.2536
    worst_kvs = driver(age=18, experience=0, kbm_class="3")  # 1.17 × 2.27 = 2.6559
    worst_pair = driver(age=35, experience=1, kbm_class="1")  # 2.25 × 1.47 = 3.3075
    for order in itertools.permutations((worst_kbm, worst_kvs, worst_pair)):
        strings = price(make(drivers=order)).coefficient_strings()
        # Neither the largest KBM (3.92) nor the largest KVS (2.27): the largest product.
        assert (strings["KBM"], strings["KVS"]) == ("2.25", "1.47")


def test_multi_driver_premium_matches_the_chosen_pair() -> None:
    young = driver(age=22, experience=0, kbm_class="3")  # 1.17 × 1.88 = 2.1996
    result = price(make(drivers=(driver(), young)))
    expected = (Decimal("8665") * Decimal("1.80") * Decimal("1.17") * Decimal("1.88") * Decimal("1.4")).quantize(
        KOPECK, ROUND_HALF_UP
    )
    assert result.premium == expected
    assert result.coefficient_strings()["KO"] == "1"


def test_multi_driver_tie_keeps_the_first_driver_deterministically() -> None:
    a = driver(age=35, experience=3, kbm_class="5")  # 0.91 × 1.00 = 0.91
    b = driver(age=55, experience=8, kbm_class="4")  # 1.00 × 0.91 = 0.91
    first_a = price(make(drivers=(a, b)))
    first_b = price(make(drivers=(b, a)))
    assert (first_a.coefficient_strings()["KBM"], first_a.coefficient_strings()["KVS"]) == ("0.91", "1.00")
    assert (first_b.coefficient_strings()["KBM"], first_b.coefficient_strings()["KVS"]) == ("1.00", "0.91")
    assert first_a.premium == first_b.premium


def test_five_named_drivers_allowed_six_rejected() -> None:
    five = tuple(driver(age=30 + i) for i in range(5))
    assert price(make(drivers=five)).premium > 0
    with pytest.raises(TariffError) as excinfo:
        price(make(drivers=(*five, driver())))
    assert "5" in reason_of(excinfo)


def test_named_drivers_required_unless_unlimited() -> None:
    with pytest.raises(TariffError) as excinfo:
        price(make(drivers=()))
    assert "driver" in reason_of(excinfo)


def test_unlimited_drivers() -> None:
    result = price(make(unlimited_drivers=True, drivers=(), owner_kbm_class="13"))
    strings = result.coefficient_strings()
    assert strings == {
        "TB": "8665",
        "KT": "1.80",
        "KBM": "0.46",
        "KVS": "1",
        "KO": "2.32",
        "KM": "1.4",
        "KS": "1",
        "KN": "1",
    }
    # 8665 × 1.80 × 0.46 × 1 × 2.32 × 1.4 × 1 × 1 = 23303.16576
    assert result.premium == Decimal("23303.17")


def test_unlimited_drivers_in_the_old_tables_and_another_region() -> None:
    result = price(
        make(
            start_date=OLD,
            unlimited_drivers=True,
            drivers=(),
            owner_city="Казань",
            owner_region_code="16",
            owner_kbm_class="3",
            base_rate=Decimal("5000"),
            power_hp=101,
            months=6,
        )
    )
    # 5000 × 1.80 × 1.17 × 1 × 2.32 × 1.2 × 0.7 = 20520.864
    assert result.coefficient_strings()["KO"] == "2.32"
    assert result.premium == Decimal("20520.86")


def test_unlimited_drivers_ignore_named_driver_facts() -> None:
    # The application has no drivers when unlimited; if some slip through they do not count.
    impossible = driver(age=22, experience=8)
    with_driver = price(make(unlimited_drivers=True, drivers=(impossible,)))
    without = price(make(unlimited_drivers=True, drivers=()))
    assert with_driver == without


def test_unlimited_rejects_an_unknown_owner_class() -> None:
    with pytest.raises(TariffError):
        price(make(unlimited_drivers=True, drivers=(), owner_kbm_class="99"))


def test_ko_values_are_data() -> None:
    assert tariff_tables.KO_UNLIMITED_6007U == Decimal("2.32")
    assert tables_for(OLD).ko_unlimited == Decimal("2.32")
    assert tables_for(NEW).ko_unlimited == Decimal("2.32")  # ⚠ 3.16 in one transcription
    assert tables_for(NEW).ko_named == Decimal("1")
    assert tariff_tables.KO_LEGAL_ENTITY == Decimal("1.97")


# ----------------------------------------------------------------------------------------------
# The offer property: premium == product of the coefficient strings, rounded half up
# ----------------------------------------------------------------------------------------------


def _grid() -> list[TariffInput]:
    inputs: list[TariffInput] = []
    cities = [("Москва", "77"), ("Химки", "50"), ("Бердск", "54"), ("Тверь", "69"), ("Казань", "16")]
    driver_sets = [
        lambda on: (driver(35, 10, "13", on),),
        lambda on: (driver(16, 0, "M", on), driver(60, 44, "13", on)),
        lambda on: (driver(23, 5, "6", on), driver(41, 20, "0", on), driver(29, 12, "9", on)),
    ]
    for start, purpose, (city, region), power, months, make_drivers, unlimited, rate_at in itertools.product(
        (OLD, NEW),
        ("personal", "taxi"),
        cities,
        (50, 51, 110, 150, 151),
        (3, 5, 9, 12),
        driver_sets,
        (False, True),
        (0.0, 0.37, 1.0),
    ):
        low, high = tb_corridor(start, purpose)
        # A whole-rouble TB at a fixed share of the corridor (ends included).
        base_rate = (low + (high - low) * Decimal(str(rate_at))).to_integral_value()
        inputs.append(
            TariffInput(
                start_date=start,
                months=months,
                power_hp=power,
                purpose=purpose,
                owner_city=city,
                owner_region_code=region,
                owner_kbm_class="7",
                drivers=() if unlimited else make_drivers(start),
                unlimited_drivers=unlimited,
                base_rate=base_rate,
            )
        )
    return inputs


def test_premium_equals_the_rounded_product_of_the_coefficient_strings() -> None:
    grid = _grid()
    assert len(grid) == 2 * 2 * 5 * 5 * 4 * 3 * 2 * 3
    premiums = set()
    for inp in grid:
        result = price(inp)
        strings = result.coefficient_strings()
        assert result.premium == rounded_product(strings), inp
        assert result.premium.as_tuple().exponent == -2
        assert all(Decimal(s) == result.coefficients[k] for k, s in strings.items())
        assert "E" not in "".join(strings.values())
        premiums.add(result.premium)
    assert len(premiums) > len(grid) // 4  # the grid really varies the price


# ----------------------------------------------------------------------------------------------
# The tables as data
# ----------------------------------------------------------------------------------------------


def test_every_table_value_is_an_exact_decimal() -> None:
    for version in VERSIONS:
        values: list[object] = [
            *version.kbm.values(),
            *version.ks.values(),
            *version.kn.values(),
            version.ko_named,
            version.ko_unlimited,
        ]
        values += [v for _, v in version.km]
        values += [c for _, cells in version.kvs for c in cells if c is not None]
        values += [bound for pair in version.tb.values() for bound in pair]
        values += [x for kt in version.kt.values() for x in (kt.city, kt.rest_of_region)]
        assert values and all(type(v) is Decimal for v in values)


def test_each_region_code_belongs_to_one_row() -> None:
    codes = [c for t in tariff_tables.TERRITORIES.values() for c in t.region_codes]
    assert len(codes) == len(set(codes))
    for version in VERSIONS:
        assert set(version.kt) == set(tariff_tables.TERRITORIES)


def test_tariff_error_is_a_value_error_with_a_reason() -> None:
    error = TariffError("experience of 8 years is impossible at age 22")
    assert isinstance(error, ValueError)
    assert error.reason == str(error) == "experience of 8 years is impossible at age 22"
