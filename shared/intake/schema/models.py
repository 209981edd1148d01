"""The request body as frozen pydantic models, one per JSON object of API.md's POST body."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

from shared.intake.schema.fields import (
    AdultBirthDate,
    Category,
    City,
    DigitsOnly,
    DocumentSeries,
    DocumentType,
    FrameNumber,
    LicenseSeries,
    MakeOrModel,
    ModelYear,
    Months,
    Name,
    PassportSeries,
    PastDate,
    Plate,
    PolicyStart,
    PowerHp,
    Purpose,
    RegionCode,
    SixDigits,
    Vin,
    list_as_tuple,
)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, hide_input_in_errors=True)


class VehicleDocument(_Strict):
    type: DocumentType
    series: DocumentSeries | None = None
    number: DigitsOnly
    issued: PastDate


class Vehicle(_Strict):
    category: Category
    make: MakeOrModel
    model: MakeOrModel
    year: ModelYear
    power_hp: PowerHp
    vin: Vin | None = None
    body_number: FrameNumber | None = None
    chassis_number: FrameNumber | None = None
    plate: Plate | None = None
    purpose: Purpose
    document: VehicleDocument


class Passport(_Strict):
    series: PassportSeries
    number: SixDigits
    issued: PastDate


class Registration(_Strict):
    region_code: RegionCode
    city: City


class Owner(_Strict):
    last_name: Name
    first_name: Name
    middle_name: Name | None = None
    birth_date: AdultBirthDate
    passport: Passport
    registration: Registration


class License(_Strict):
    series: LicenseSeries
    number: SixDigits
    issued: PastDate


class Driver(_Strict):
    last_name: Name
    first_name: Name
    middle_name: Name | None = None
    birth_date: PastDate
    license: License
    experience_since: PastDate


class Period(_Strict):
    start_date: PolicyStart
    months: Months


class ApplicationIn(_Strict):
    vehicle: Vehicle
    owner: Owner
    drivers: Annotated[tuple[Driver, ...], BeforeValidator(list_as_tuple)] = ()
    unlimited_drivers: bool = False
    period: Period

    def to_payload(self) -> dict[str, Any]:
        """The normalised body, JSON-ready, in the POST body shape; absent optional fields omitted."""
        return self.model_dump(mode="json", exclude_none=True)


MODELS: Final[tuple[type[BaseModel], ...]] = (
    VehicleDocument, Vehicle, Passport, Registration, Owner, License, Driver, Period, ApplicationIn,
)  # fmt: skip
FIELD_NAMES: Final = frozenset(name for model in MODELS for name in model.model_fields)
