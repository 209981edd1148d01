"""The stand-in insurance companies: one per catalogue code, each with its own habits.

Codes, names and protocols mirror ``shared.quoting.insurers.CATALOGUE`` (the aggregator's side of the
contract); everything else — base rate, regional discounts, latency, underwriting rules — is what
makes offers differ between companies, as they do on the real market.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Literal

from .model import Refused
from .rules import (
    Facts,
    RefuseInexperienced,
    RefuseOlderThan,
    RefusePowerAbove,
    RefuseRegions,
    RefuseTaxi,
    RefuseUnlimitedWithOwnerClass,
    RefuseYoungWithClass,
    Rule,
)
from .tariff import tb_corridor

Protocol = Literal["json", "poll", "xml"]

_ROUBLE = Decimal("1")


def _regions(share: str, *codes: str) -> dict[str, Decimal]:
    """Region codes (plate codes, leading zeros dropped) that get one base-rate share."""
    return {code.lstrip("0"): Decimal(share) for code in codes}


# Plate codes per subject, from domain/osago-tariff.md, for regional pricing.
MOSCOW = ("77", "97", "99", "177", "197", "199", "777", "797", "799", "977")
MOSCOW_OBLAST = ("50", "90", "150", "190", "750", "790")
SPB = ("78", "98", "178", "198")
LENINGRAD_OBLAST = ("47", "147")
NOVOSIBIRSK = ("54", "154")
SVERDLOVSK = ("66", "96", "196")
TATARSTAN = ("16", "116", "716")
CHELYABINSK = ("74", "174", "774")
PERM = ("59", "159")
SAMARA = ("63", "163", "763")
ROSTOV = ("61", "161", "761")
KRASNODAR = ("23", "93", "123", "193")
VOLGOGRAD = ("34", "134")
NIZHNY = ("52", "152")
PRIMORYE = ("25", "125")
KRASNOYARSK = ("24", "124")
IRKUTSK = ("38", "138")
ALTAI_KRAI = ("22", "122")
KHABAROVSK = ("27",)
# North Caucasus subjects some insurers avoid online (fraud statistics).
NORTH_CAUCASUS = ("05", "20", "95")


@dataclass(frozen=True, slots=True)
class Company:
    code: str
    name: str
    protocol: Protocol
    reference_prefix: str
    # Base rate as a share of the corridor's top (insurers price near the top in practice).
    tb_share: Decimal
    regional_shares: Mapping[str, Decimal] = field(default_factory=dict)
    latency_ms: tuple[int, int] = (100, 1500)  # default behaviour
    validity_days: int = 3
    rules: tuple[Rule, ...] = ()

    def base_rate(self, start_date: date, purpose: str, region_code: str) -> Decimal:
        """TB in whole roubles, always inside the legal corridor of the start date."""
        low, high = tb_corridor(start_date, purpose)
        share = self.regional_shares.get(region_code.lstrip("0"), self.tb_share)
        rate = (high * share).quantize(_ROUBLE, rounding=ROUND_HALF_UP)
        return min(max(rate, low), high)

    def underwrite(self, facts: Facts) -> Refused | None:
        for rule in self.rules:
            refused = rule.check(facts)
            if refused is not None:
                return refused
        return None

    def describe_rules(self) -> list[str]:
        return [rule.description for rule in self.rules]


_YOUNG = 22
_BAD_CLASSES = frozenset({"M", "0", "1", "2"})

COMPANIES: tuple[Company, ...] = (
    Company(
        "sever", "Северная страховая", "json", "SEV", Decimal("1.00"),
        _regions("0.96", *SPB, *LENINGRAD_OBLAST), latency_ms=(100, 600), validity_days=5,
        rules=(RefuseTaxi(), RefuseYoungWithClass(_YOUNG, frozenset({"M"}))),
    ),
    Company(
        "volga", "Волга-Гарант", "poll", "VLG", Decimal("0.97"),
        _regions("0.93", *SAMARA, *VOLGOGRAD, *NIZHNY, *TATARSTAN), latency_ms=(200, 1200),
        rules=(RefuseYoungWithClass(_YOUNG, frozenset({"M", "0"})), RefuseOlderThan(25)),
    ),
    Company(
        "ural", "Уральский щит", "xml", "URL", Decimal("0.95"),
        _regions("0.92", *SVERDLOVSK, *CHELYABINSK, *PERM), latency_ms=(300, 1500), validity_days=4,
        rules=(RefuseOlderThan(20),),
    ),
    Company(
        "baikal", "Байкал-Полис", "json", "BKL", Decimal("0.98"),
        _regions("0.94", *IRKUTSK, *KRASNOYARSK, *NOVOSIBIRSK), latency_ms=(100, 800),
        rules=(RefuseRegions(frozenset(c.lstrip("0") for c in NORTH_CAUCASUS)),),
    ),
    Company(
        "neva", "Нева Страхование", "poll", "NEV", Decimal("0.99"),
        _regions("0.95", *SPB), latency_ms=(150, 1000),
        rules=(RefusePowerAbove(350), RefuseUnlimitedWithOwnerClass(frozenset({"M"}))),
    ),
    Company(
        "kama", "Кама-Резерв", "xml", "KAM", Decimal("0.96"),
        _regions("0.93", *TATARSTAN, *PERM), latency_ms=(400, 1500),
        rules=(RefuseInexperienced(1),),
    ),
    Company(
        "altai", "Алтай Ассистанс", "json", "ALT", Decimal("0.93"),
        _regions("0.90", *ALTAI_KRAI, *NOVOSIBIRSK), latency_ms=(100, 500), validity_days=2,
        rules=(RefuseTaxi("Такси страхуем только в офисе"), RefuseYoungWithClass(_YOUNG, _BAD_CLASSES)),
    ),
    Company(
        "oka", "Ока-Авто", "poll", "OKA", Decimal("0.975"),
        _regions("0.97", *MOSCOW_OBLAST), latency_ms=(200, 1400),
        rules=(RefuseOlderThan(15), RefuseRegions(frozenset(c.lstrip("0") for c in NORTH_CAUCASUS))),
    ),
    Company(
        "don", "Донская страховая", "xml", "DON", Decimal("0.94"),
        _regions("0.90", *ROSTOV, *KRASNODAR, *VOLGOGRAD), latency_ms=(250, 1200),
        rules=(RefuseUnlimitedWithOwnerClass(_BAD_CLASSES),),
    ),
    Company(
        "amur", "Амур-Мотор", "json", "AMR", Decimal("0.985"),
        _regions("0.95", *PRIMORYE, *KHABAROVSK), latency_ms=(100, 900), validity_days=4,
        rules=(RefuseTaxi(), RefuseInexperienced(2, age_below=_YOUNG,
                                                 reason="Водители до 22 лет со стажем менее {years} лет не принимаются")),
    ),
)

BY_CODE: Mapping[str, Company] = MappingProxyType({company.code: company for company in COMPANIES})
