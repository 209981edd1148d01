"""Underwriting rules: the kinds of refusals real insurers apply before they price.

OSAGO is compulsory, but in practice insurers turn applications away through their online
channels (young drivers with a bad history, taxis, old cars, some regions). Each rule is data
plus a check, so a company's rules read like its underwriting sheet.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Applicant, Refused


@dataclass(frozen=True, slots=True)
class DriverProfile:
    age: int  # whole years on the policy start date
    experience: int  # whole years on the policy start date
    kbm_class: str


@dataclass(frozen=True, slots=True)
class Facts:
    applicant: Applicant
    drivers: tuple[DriverProfile, ...]
    owner_class: str
    vehicle_age: int  # policy start year minus model year


@dataclass(frozen=True, slots=True)
class RefuseTaxi:
    reason: str = "Полисы ОСАГО для такси онлайн не оформляем"

    @property
    def description(self) -> str:
        return "taxi"

    def check(self, facts: Facts) -> Refused | None:
        return Refused("TAXI", self.reason) if facts.applicant.purpose == "taxi" else None


@dataclass(frozen=True, slots=True)
class RefuseRegions:
    region_codes: frozenset[str]
    reason: str = "Не работаем с владельцами, зарегистрированными в этом регионе"

    @property
    def description(self) -> str:
        return "owner registered in region " + ", ".join(sorted(self.region_codes, key=int))

    def check(self, facts: Facts) -> Refused | None:
        code = facts.applicant.region_code.lstrip("0")
        return Refused("REGION", self.reason) if code in self.region_codes else None


@dataclass(frozen=True, slots=True)
class RefuseOlderThan:
    years: int
    reason: str = "Автомобили старше {years} лет не страхуем"

    @property
    def description(self) -> str:
        return f"car older than {self.years} years"

    def check(self, facts: Facts) -> Refused | None:
        if facts.vehicle_age > self.years:
            return Refused("VEHICLE_AGE", self.reason.format(years=self.years))
        return None


@dataclass(frozen=True, slots=True)
class RefuseYoungWithClass:
    age_below: int
    classes: frozenset[str]
    reason: str = "Водители младше {age} лет с классом {classes} не принимаются"

    @property
    def description(self) -> str:
        return f"driver under {self.age_below} with KBM class {'/'.join(sorted(self.classes))}"

    def check(self, facts: Facts) -> Refused | None:
        for driver in facts.drivers:
            if driver.age < self.age_below and driver.kbm_class in self.classes:
                classes = ", ".join(sorted(self.classes))
                return Refused("YOUNG_DRIVER_KBM", self.reason.format(age=self.age_below, classes=classes))
        return None


@dataclass(frozen=True, slots=True)
class RefuseInexperienced:
    experience_below: int
    age_below: int = 200  # applies at any age unless narrowed
    reason: str = "Водители со стажем менее {years} г. не принимаются"

    @property
    def description(self) -> str:
        scope = f" under {self.age_below}" if self.age_below < 200 else ""
        years = "year" if self.experience_below == 1 else "years"
        return f"driver{scope} with under {self.experience_below} {years}' experience"

    def check(self, facts: Facts) -> Refused | None:
        for driver in facts.drivers:
            if driver.experience < self.experience_below and driver.age < self.age_below:
                return Refused("INEXPERIENCED", self.reason.format(years=self.experience_below))
        return None


@dataclass(frozen=True, slots=True)
class RefusePowerAbove:
    power_hp: int
    reason: str = "Автомобили мощнее {hp} л.с. не страхуем"

    @property
    def description(self) -> str:
        return f"power over {self.power_hp} hp"

    def check(self, facts: Facts) -> Refused | None:
        if facts.applicant.power_hp > self.power_hp:
            return Refused("POWER", self.reason.format(hp=self.power_hp))
        return None


@dataclass(frozen=True, slots=True)
class RefuseUnlimitedWithOwnerClass:
    classes: frozenset[str]
    reason: str = "Полис без ограничения водителей при классе КБМ собственника {classes} не оформляем"

    @property
    def description(self) -> str:
        return f"unlimited drivers with owner KBM class {'/'.join(sorted(self.classes))}"

    def check(self, facts: Facts) -> Refused | None:
        if facts.applicant.unlimited and facts.owner_class in self.classes:
            return Refused("UNLIMITED_KBM", self.reason.format(classes=", ".join(sorted(self.classes))))
        return None


Rule = (
    RefuseTaxi
    | RefuseRegions
    | RefuseOlderThan
    | RefuseYoungWithClass
    | RefuseInexperienced
    | RefusePowerAbove
    | RefuseUnlimitedWithOwnerClass
)
