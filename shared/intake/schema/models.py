"""The request body as frozen pydantic models, one per JSON object of API.md's POST body."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic.config import JsonDict

from shared.intake.schema.fields import (
    MAX_DRIVERS,
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

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True, hide_input_in_errors=True)


class _Strict(BaseModel):
    model_config = _STRICT


# The rules between fields that JSON Schema can say, published with their model; rules.py
# enforces them (with one message per field). tests/unit/test_openapi_agreement.py holds
# the two to each other.
_DOCUMENT_KINDS: Final[JsonDict] = {
    "oneOf": [
        {
            "description": "an electronic PTS: no series, a 15-digit number",
            "properties": {"type": {"const": "epts"}, "series": {"type": "null"}, "number": {"pattern": "^[0-9]{15}$"}},
        },
        {
            "description": "a paper STS or PTS: a series and a 6-digit number",
            "required": ["series"],
            "properties": {
                "type": {"enum": ["sts", "pts"]},
                "series": {"type": "string"},
                "number": {"pattern": "^[0-9]{6}$"},
            },
        },
    ]
}
_FRAME_IDENTIFIERS: Final = ("vin", "body_number", "chassis_number")
_ONE_FRAME_IDENTIFIER: Final[JsonDict] = {
    "anyOf": [
        {"description": f"identified by {name}", "required": [name], "properties": {name: {"type": "string"}}}
        for name in _FRAME_IDENTIFIERS
    ]
}
_DRIVERS_OR_UNLIMITED: Final[JsonDict] = {
    "oneOf": [
        {
            "description": "any driver: no list",
            "required": ["unlimited_drivers"],
            "properties": {"unlimited_drivers": {"const": True}, "drivers": {"maxItems": 0}},
        },
        {
            "description": f"named drivers: 1 to {MAX_DRIVERS}",
            "required": ["drivers"],
            "properties": {"unlimited_drivers": {"const": False}, "drivers": {"minItems": 1}},
        },
    ]
}


class VehicleDocument(_Strict):
    model_config = ConfigDict(**_STRICT, json_schema_extra=_DOCUMENT_KINDS)

    type: DocumentType
    series: DocumentSeries | None = None
    number: DigitsOnly
    issued: PastDate


class Vehicle(_Strict):
    model_config = ConfigDict(**_STRICT, json_schema_extra=_ONE_FRAME_IDENTIFIER)

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
    model_config = ConfigDict(**_STRICT, json_schema_extra=_DRIVERS_OR_UNLIMITED)

    vehicle: Vehicle
    owner: Owner
    drivers: Annotated[
        tuple[Driver, ...], BeforeValidator(list_as_tuple), Field(json_schema_extra={"maxItems": MAX_DRIVERS})
    ] = ()
    unlimited_drivers: bool = False
    period: Period

    def to_payload(self) -> dict[str, Any]:
        """The normalised body, JSON-ready, in the POST body shape; absent optional fields omitted."""
        return self.model_dump(mode="json", exclude_none=True)


MODELS: Final[tuple[type[BaseModel], ...]] = (
    VehicleDocument, Vehicle, Passport, Registration, Owner, License, Driver, Period, ApplicationIn,
)  # fmt: skip
FIELD_NAMES: Final = frozenset(name for model in MODELS for name in model.model_fields)
