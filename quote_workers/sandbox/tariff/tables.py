"""The Bank of Russia OSAGO tariff tables, as dated data.

Source of every value: /work/shared/domain/osago-tariff.md (regulator texts as quoted by public
sources). Tariffs are dated: the version in force on the policy start date applies, so each
version below names its ordinance and in-force date, and ``tables_for`` picks one by date.

Rules for this module:
- every value is a ``Decimal`` built from the string printed in the table (never computed, never
  a float), so ``str(value)`` is exactly what the table shows ("1.80", "0.46", "1.4");
- a value marked ⚠ disagrees between sources: it carries a comment naming the alternative and is
  one line to change;
- tables that the domain notes give once (KBM, KVS, KM, KS, KN, KO named) are shared by both
  versions; only TB corridors, KT (and, unconfirmed, KO unlimited) differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class TariffError(ValueError):
    """A tariff cannot be computed for this input: an insurer refuses with ``reason``.

    Defined here because ``tables_for`` already raises it; import it from the package.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason: str = reason


def _d(text: str) -> Decimal:
    """A table value: exact, from its printed form."""
    return Decimal(text)


def _frozen(mapping: dict[_K, _V]) -> Mapping[_K, _V]:
    """Read-only view, so no caller can edit a shared table by accident."""
    return MappingProxyType(mapping)


# ---------------------------------------------------------------------------------------------
# KBM, bonus-malus scale — Ordinance 6007-U, in force since 01.04.2022 (unchanged by 6209-U and,
# per the domain notes, by 7204-U). Class "M" is the worst, "13" the best; a driver with no
# history is class "3".
# ---------------------------------------------------------------------------------------------
KBM_CLASSES: tuple[str, ...] = ("M", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
                                "11", "12", "13")
KBM_DEFAULT_CLASS = "3"
KBM_6007U: Mapping[str, Decimal] = _frozen({
    "M": _d("3.92"), "0": _d("2.94"), "1": _d("2.25"), "2": _d("1.76"), "3": _d("1.17"),
    "4": _d("1.00"), "5": _d("0.91"), "6": _d("0.83"), "7": _d("0.78"), "8": _d("0.74"),
    "9": _d("0.68"), "10": _d("0.63"), "11": _d("0.57"), "12": _d("0.52"), "13": _d("0.46"),
})

# ---------------------------------------------------------------------------------------------
# KVS, age × experience — Ordinance 6007-U. Bands are given by their lower bound (whole years on
# the policy start date); ``None`` is a "–" cell: experience longer than the age allows, which is
# a validation error, not a price.
# ---------------------------------------------------------------------------------------------
KVS_MIN_AGE = 16
KVS_EXPERIENCE_BANDS: tuple[int, ...] = (0, 1, 2, 3, 5, 7, 10, 15)  # 0|1|2|3–4|5–6|7–9|10–14|15+
_NA = None  # a "–" cell, so the rows below read like the printed table
KVS_6007U: tuple[tuple[int, tuple[Decimal | None, ...]], ...] = tuple(
    (age_from, tuple(None if cell is None else _d(cell) for cell in cells))
    for age_from, cells in (
        #     0       1       2       3–4     5–6     7–9     10–14   15+
        (16, ("2.27", "1.92", "1.84", "1.65", "1.62", _NA, _NA, _NA)),
        (22, ("1.88", "1.72", "1.71", "1.13", "1.10", "1.09", _NA, _NA)),
        (25, ("1.72", "1.60", "1.54", "1.09", "1.08", "1.07", "1.02", _NA)),
        (30, ("1.56", "1.50", "1.48", "1.05", "1.04", "1.01", "0.97", "0.95")),
        (35, ("1.54", "1.47", "1.46", "1.00", "0.97", "0.95", "0.94", "0.93")),
        (40, ("1.50", "1.44", "1.43", "0.96", "0.95", "0.94", "0.93", "0.91")),
        (50, ("1.46", "1.40", "1.39", "0.93", "0.92", "0.91", "0.90", "0.86")),
        (60, ("1.43", "1.36", "1.35", "0.91", "0.90", "0.89", "0.88", "0.83")),
    )
)

# ---------------------------------------------------------------------------------------------
# KM, engine power — Ordinance 6007-U. Each band is "over the previous bound up to this bound
# inclusive"; ``None`` is the open top band (over 150 hp).
# ---------------------------------------------------------------------------------------------
KM_6007U: tuple[tuple[int | None, Decimal], ...] = (
    (50, _d("0.6")),
    (70, _d("1.0")),
    (100, _d("1.1")),
    (120, _d("1.2")),
    (150, _d("1.4")),
    (None, _d("1.6")),
)

# ---------------------------------------------------------------------------------------------
# KS, period of use for individuals, months — Ordinance 6007-U. Fewer than 3 months is not allowed
# for individuals; 10–12 months are the full rate (printed "1" as offers show it).
# ---------------------------------------------------------------------------------------------
KS_6007U: Mapping[int, Decimal] = _frozen({
    3: _d("0.5"), 4: _d("0.6"), 5: _d("0.65"), 6: _d("0.7"), 7: _d("0.8"), 8: _d("0.9"),
    9: _d("0.95"), 10: _d("1"), 11: _d("1"), 12: _d("1"),
})

# ---------------------------------------------------------------------------------------------
# KN, gross violations — Ordinance 6007-U. Our applications carry no violations, so the engine
# always uses the "no" value; the "yes" value is kept so the formula stays complete.
# ---------------------------------------------------------------------------------------------
KN_6007U: Mapping[bool, Decimal] = _frozen({False: _d("1"), True: _d("1.5")})

# ---------------------------------------------------------------------------------------------
# KO, driver restriction — Ordinance 6007-U.
# ---------------------------------------------------------------------------------------------
KO_NAMED = _d("1")  # printed "1.00" in the notes; offers show "1" (API.md's example)
KO_LEGAL_ENTITY = _d("1.97")  # out of our scope (individual owners only); kept for completeness
KO_UNLIMITED_6007U = _d("2.32")

# ---------------------------------------------------------------------------------------------
# KT, territory — which cities and plate region codes make up each row. The values per version
# are in the dated tables further down, keyed by the same row key.
#
# A city in ``cities`` takes the row's city value wherever its region code points (the owner's
# registration city decides KT, not the plate); a city not listed takes the row of its region
# code, i.e. the row's "rest of region" value. Region codes are plate codes written without
# leading zeros ("02" is stored as "2"; lookups normalise the same way).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Territory:
    name: str  # English, for logs and test ids
    cities: tuple[str, ...]  # Russian names as written in a registration address
    region_codes: tuple[str, ...]


TERRITORIES: Mapping[str, Territory] = _frozen({
    "moscow": Territory("Moscow", ("Москва",),
                        ("77", "97", "99", "177", "197", "199", "777", "797", "799", "977")),
    # An oblast row has no city of its own: every city of the oblast not listed elsewhere
    # (Химки, Подольск, ...) reaches it through its region code.
    "moscow_oblast": Territory("Moscow oblast", (), ("50", "90", "150", "190", "750", "790")),
    "st_petersburg": Territory("St Petersburg", ("Санкт-Петербург",), ("78", "98", "178", "198")),
    "leningrad_oblast": Territory("Leningrad oblast", (), ("47", "147")),
    "novosibirsk": Territory("Novosibirsk", ("Новосибирск",), ("54", "154")),
    "yekaterinburg": Territory("Yekaterinburg", ("Екатеринбург",), ("66", "96", "196")),
    "kazan": Territory("Kazan", ("Казань",), ("16", "116", "716")),
    "nizhny_novgorod": Territory("Nizhny Novgorod", ("Нижний Новгород",), ("52", "152")),
    "chelyabinsk": Territory("Chelyabinsk", ("Челябинск",), ("74", "174", "774")),
    "samara": Territory("Samara", ("Самара",), ("63", "163", "763")),
    "rostov_on_don": Territory("Rostov-on-Don", ("Ростов-на-Дону",), ("61", "161", "761")),
    "ufa": Territory("Ufa", ("Уфа",), ("2", "102", "702")),
    "krasnoyarsk": Territory("Krasnoyarsk", ("Красноярск",), ("24", "124")),
    "perm": Territory("Perm", ("Пермь",), ("59", "159")),
    "krasnodar": Territory("Krasnodar", ("Краснодар",), ("23", "93", "123", "193")),
    "voronezh": Territory("Voronezh", ("Воронеж",), ("36", "136")),
    "omsk": Territory("Omsk", ("Омск",), ("55",)),
    "tyumen": Territory("Tyumen", ("Тюмень",), ("72", "172")),
    "volgograd": Territory("Volgograd", ("Волгоград",), ("34", "134")),
    "vladivostok": Territory("Vladivostok", ("Владивосток",), ("25", "125")),
})

# A region code that no row lists takes this value: a documented simplification (API.md) until
# the full territory table (every subject's cities and districts) is loaded.
KT_UNKNOWN_REGION = _d("1.0")


@dataclass(frozen=True, slots=True)
class KtValue:
    city: Decimal  # the listed cities of the row
    rest_of_region: Decimal  # any other city whose region code belongs to the row


def _kt(city: str, rest_of_region: str | None = None) -> KtValue:
    """A row's values; without a separate regional value the whole region takes the city's."""
    return KtValue(_d(city), _d(rest_of_region if rest_of_region is not None else city))


# KT from 13.09.2022 — Ordinance 6007-U as amended by 6209-U.
KT_6209U: Mapping[str, KtValue] = _frozen({
    "moscow": _kt("1.80"),
    "moscow_oblast": _kt("1.56"),
    "st_petersburg": _kt("1.64"),
    "leningrad_oblast": _kt("1.24"),
    # ⚠ 1.63 per one source, 1.56 per another. No separate value for the rest of Novosibirsk
    # oblast is given for this version, so the whole oblast takes the city value.
    "novosibirsk": _kt("1.63"),
    "yekaterinburg": _kt("1.64"),
    "kazan": _kt("1.80"),
    "nizhny_novgorod": _kt("1.64"),
    "chelyabinsk": _kt("1.88"),
    "samara": _kt("1.48"),
    "rostov_on_don": _kt("1.64"),
    "ufa": _kt("1.64"),
    "krasnoyarsk": _kt("1.64"),
    "perm": _kt("1.80"),
    "krasnodar": _kt("1.64"),
    "voronezh": _kt("1.40"),
    "omsk": _kt("1.48"),
    "tyumen": _kt("1.80"),
    "volgograd": _kt("1.24"),
    "vladivostok": _kt("1.36"),
})

# KT from 09.12.2025 — Ordinance 7204-U of 09.10.2025.
KT_7204U: Mapping[str, KtValue] = _frozen({
    "moscow": _kt("1.80"),
    "moscow_oblast": _kt("1.56"),
    "st_petersburg": _kt("1.64"),
    "leningrad_oblast": _kt("1.24"),
    "novosibirsk": _kt("3.12", rest_of_region="2.00"),
    "yekaterinburg": _kt("1.64"),
    "kazan": _kt("1.70"),
    "nizhny_novgorod": _kt("1.56"),
    "chelyabinsk": _kt("1.77"),
    "samara": _kt("1.48"),
    "rostov_on_don": _kt("1.56"),
    "ufa": _kt("1.56"),
    "krasnoyarsk": _kt("1.56"),
    "perm": _kt("1.60"),
    "krasnodar": _kt("1.56"),
    "voronezh": _kt("1.35"),
    "omsk": _kt("1.42"),
    "tyumen": _kt("1.60"),
    "volgograd": _kt("1.21"),
    "vladivostok": _kt("1.36"),
})

# ---------------------------------------------------------------------------------------------
# TB, base rate corridors, whole roubles (min, max), both bounds allowed. Keys are the vehicle /
# use rows of the table; ``TB_ROW_FOR_PURPOSE`` maps an application's purpose to its row.
# ---------------------------------------------------------------------------------------------
TB_ROW_FOR_PURPOSE: Mapping[str, str] = _frozen({"personal": "B_individual", "taxi": "B_taxi"})

# TB from 13.09.2022 — Ordinance 6007-U as amended by 6209-U.
TB_6209U: Mapping[str, tuple[Decimal, Decimal]] = _frozen({
    "B_individual": (_d("1646"), _d("7535")),  # B/BE, individuals and sole traders
    "B_taxi": (_d("1490"), _d("15756")),  # B/BE, taxi
    "B_legal_entity": (_d("852"), _d("5722")),  # out of our scope
    "A_M": (_d("259"), _d("3043")),  # motorcycles, out of our scope
})

# TB from 09.12.2025 — Ordinance 7204-U of 09.10.2025.
TB_7204U: Mapping[str, tuple[Decimal, Decimal]] = _frozen({
    "B_individual": (_d("1399"), _d("8665")),
    "B_taxi": (_d("1267"), _d("18119")),
    "B_legal_entity": (_d("724"), _d("6580")),
    "A_M": (_d("155"), _d("4260")),
})

# ⚠ KO for unlimited drivers under 7204-U: 2.32 (the 6007-U value) is used; one transcription of
# 7204-U gives 3.16, unconfirmed. Change this one line if 3.16 is confirmed.
KO_UNLIMITED_7204U = _d("2.32")


# ---------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TariffTables:
    """Every table in force from ``in_force`` until the next version."""

    ordinance: str  # the ordinance that made this version, e.g. "7204-U"
    in_force: date
    sources: Mapping[str, str]  # coefficient -> the ordinance its table comes from
    tb: Mapping[str, tuple[Decimal, Decimal]]
    kt: Mapping[str, KtValue]
    kbm: Mapping[str, Decimal]
    kvs: tuple[tuple[int, tuple[Decimal | None, ...]], ...]
    ko_named: Decimal
    ko_unlimited: Decimal
    km: tuple[tuple[int | None, Decimal], ...]
    ks: Mapping[int, Decimal]
    kn: Mapping[bool, Decimal]

    @property
    def version(self) -> str:
        """The label offers and logs carry, e.g. "7204-U (from 2025-12-09)"."""
        return f"{self.ordinance} (from {self.in_force.isoformat()})"


_SHARED_SOURCES: Mapping[str, str] = _frozen({
    "KBM": "6007-U (scale from 01.04.2022)",
    "KVS": "6007-U",
    "KM": "6007-U",
    "KS": "6007-U",
    "KN": "6007-U",
})

TABLES_6209U = TariffTables(
    ordinance="6209-U",
    in_force=date(2022, 9, 13),
    sources=_frozen({"TB": "6007-U as amended by 6209-U", "KT": "6007-U as amended by 6209-U",
                     "KO": "6007-U", **_SHARED_SOURCES}),
    tb=TB_6209U,
    kt=KT_6209U,
    kbm=KBM_6007U,
    kvs=KVS_6007U,
    ko_named=KO_NAMED,
    ko_unlimited=KO_UNLIMITED_6007U,
    km=KM_6007U,
    ks=KS_6007U,
    kn=KN_6007U,
)

TABLES_7204U = TariffTables(
    ordinance="7204-U",
    in_force=date(2025, 12, 9),
    sources=_frozen({"TB": "7204-U of 09.10.2025", "KT": "7204-U of 09.10.2025",
                     "KO": "6007-U (⚠ unlimited value unconfirmed under 7204-U)",
                     **_SHARED_SOURCES}),
    tb=TB_7204U,
    kt=KT_7204U,
    kbm=KBM_6007U,
    kvs=KVS_6007U,
    ko_named=KO_NAMED,
    ko_unlimited=KO_UNLIMITED_7204U,
    km=KM_6007U,
    ks=KS_6007U,
    kn=KN_6007U,
)

# Oldest first; a new ordinance is one more entry here.
VERSIONS: tuple[TariffTables, ...] = (TABLES_6209U, TABLES_7204U)

# Import-time consistency checks: a typo in the data should fail loudly at start, not misprice.
assert all(a.in_force < b.in_force for a, b in pairwise(VERSIONS)), "versions unsorted"
assert all(set(v.kt) == set(TERRITORIES) for v in VERSIONS), "KT rows differ from TERRITORIES"
assert all(set(v.tb) >= set(TB_ROW_FOR_PURPOSE.values()) for v in VERSIONS), "TB row missing"
assert tuple(KBM_6007U) == KBM_CLASSES, "KBM classes out of order"
assert all(len(cells) == len(KVS_EXPERIENCE_BANDS) for _, cells in KVS_6007U), "KVS row width"
assert KVS_6007U[0][0] == KVS_MIN_AGE, "KVS must start at the minimum age"
_all_codes = [code for t in TERRITORIES.values() for code in t.region_codes]
assert len(_all_codes) == len(set(_all_codes)), "a region code is in two KT rows"
assert all(code == str(int(code)) for code in _all_codes), "region codes without leading zeros"
del _all_codes


def tables_for(start_date: date) -> TariffTables:
    """The version in force on the policy start date (the latest one not after it)."""
    chosen: TariffTables | None = None
    for version in VERSIONS:
        if version.in_force <= start_date:
            chosen = version
    if chosen is None:
        raise TariffError(
            f"no tariff tables for a policy starting {start_date.isoformat()}: the earliest "
            f"supported version is in force from {VERSIONS[0].in_force.isoformat()}"
        )
    return chosen
