"""Request schema of ``POST /api/v1/applications``: strict parsing, normalisation, every bad field.

``parse_application(data, today=moscow_today())`` is the only entry point for
untrusted bodies. It returns a frozen :class:`ApplicationIn` or raises
:class:`ApplicationInvalid` listing every bad field once, with dotted paths
(``drivers.0.birth_date``); it raises nothing else, whatever ``data`` is.

Validation runs in two passes over the same body:

1. pydantic (strict types, unknown fields forbidden) checks each field on its
   own, including the rules that need only the field and ``today``;
2. rules between fields run on every field that passed pass 1, so one answer
   lists field errors and cross-field errors together. A rule whose inputs are
   missing or invalid is skipped: its inputs are already reported.

``ApplicationIn.model_validate(payload)`` without ``context={"today": ...}``
checks formats only (no rule relative to today, no cross-field rule); use it to
load a payload that was accepted earlier, never for a new request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final, Literal, NoReturn, TypedDict

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from shared.intake.regions import is_region_code

__all__ = [
    "MAX_DRIVERS",
    "ApplicationIn",
    "ApplicationInvalid",
    "Driver",
    "FieldError",
    "License",
    "Owner",
    "Passport",
    "Period",
    "Registration",
    "Vehicle",
    "VehicleDocument",
    "parse_application",
]

MAX_DRIVERS: Final = 5
POLICY_START_MAX_DAYS: Final = 60
EARLIEST_DATE: Final = date(1900, 1, 1)
NAME_MAX: Final = 100
CITY_MAX: Final = 100
MAKE_MODEL_MAX: Final = 60
FRAME_NUMBER_MAX: Final = 20


class FieldError(TypedDict):
    path: str
    message: str


class ApplicationInvalid(Exception):
    """The body breaks the contract; ``fields`` names every bad field once."""

    def __init__(self, fields: list[FieldError]) -> None:
        # Paths only: values are personal data and must not reach logs.
        paths = ", ".join(field["path"] or "<body>" for field in fields)
        super().__init__(f"{len(fields)} invalid field(s): {paths}")
        self.fields = fields


# --- field-level checks ---------------------------------------------------------------------

# The error type of our own messages; they are passed to clients as they are.
_RULE: Final = "application_rule"


def _fail(message: str) -> NoReturn:
    raise PydanticCustomError(_RULE, message)


def _today(info: ValidationInfo) -> date | None:
    context = info.context
    if isinstance(context, Mapping):
        today = context.get("today")
        if isinstance(today, date):
            return today
    return None


def _add_years(day: date, years: int) -> date:
    if day.year + years > date.max.year:
        return date.max
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        # 29 February: a term counted in years ends on the last day of that month (Civil Code art. 192).
        return date(day.year + years, 2, 28)


_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_date(value: object) -> date:
    if not isinstance(value, str) or _ISO_DATE.fullmatch(value) is None:
        _fail("must be a date in YYYY-MM-DD format")
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail("must be a real calendar date")


def _not_future(value: date, info: ValidationInfo) -> date:
    if value < EARLIEST_DATE:
        _fail(f"must not be before {EARLIEST_DATE.isoformat()}")
    today = _today(info)
    if today is not None and value > today:
        _fail("must not be in the future")
    return value


def _adult_today(value: date, info: ValidationInfo) -> date:
    today = _today(info)
    if today is not None and _add_years(value, 18) > today:
        _fail("the owner must be at least 18 years old")
    return value


def _policy_start(value: date, info: ValidationInfo) -> date:
    today = _today(info)
    if today is not None:
        first = today + timedelta(days=1)
        last = today + timedelta(days=POLICY_START_MAX_DAYS)
        if not first <= value <= last:
            _fail(
                f"must be from tomorrow to {POLICY_START_MAX_DAYS} days ahead "
                f"({first.isoformat()} to {last.isoformat()})"
            )
    return value


_DATE_SCHEMA: Final = WithJsonSchema({"type": "string", "format": "date"})
PastDate = Annotated[date, BeforeValidator(_parse_date), AfterValidator(_not_future), _DATE_SCHEMA]
AdultBirthDate = Annotated[
    date,
    BeforeValidator(_parse_date),
    AfterValidator(_not_future),
    AfterValidator(_adult_today),
    _DATE_SCHEMA,
]
PolicyStart = Annotated[date, BeforeValidator(_parse_date), AfterValidator(_policy_start), _DATE_SCHEMA]


def _between(low: int, high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            _fail(f"must be between {low} and {high}")
        return value

    return check


def _model_year(value: int, info: ValidationInfo) -> int:
    today = _today(info)
    high = today.year + 1 if today is not None else None
    if value < 1900 or (high is not None and value > high):
        _fail(f"must be between 1900 and {high}" if high is not None else "must not be before 1900")
    return value


ModelYear = Annotated[int, AfterValidator(_model_year)]
PowerHp = Annotated[int, AfterValidator(_between(1, 2000))]
Months = Annotated[int, AfterValidator(_between(3, 12))]

# Characters that render as nothing or reorder text: never valid in a name or a city.
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_PUNCTUATION_FOLD: Final = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "‐": "-", "‑": "-"})
_SPACES: Final = re.compile(" {2,}")


def _clean_text(value: str, limit: int) -> str:
    # Cheap cap first: NFKC and category scans are linear, but a 60 KiB "name" is abuse.
    if len(value) > limit * 4:
        _fail(f"must be at most {limit} characters")
    # isprintable() is False for every hidden category (and for non-ASCII spaces): scan only then.
    if not value.isprintable() and any(unicodedata.category(char) in _HIDDEN_CATEGORIES for char in value):
        _fail("must not contain control or invisible formatting characters")
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", value).translate(_PUNCTUATION_FOLD).strip())
    if not text:
        _fail("must not be empty")
    if len(text) > limit:
        _fail(f"must be at most {limit} characters")
    return text


_NAME: Final = re.compile(r"[А-ЯЁа-яё]+(?:[ '-][А-ЯЁа-яё]+)*")


def _name(value: str) -> str:
    text = _clean_text(value, NAME_MAX)
    if _NAME.fullmatch(text) is None:
        _fail("must be Cyrillic letters, with single spaces, hyphens or apostrophes between them")
    return text


_CITY: Final = re.compile(r"[А-ЯЁа-яё0-9 .-]*[А-ЯЁа-яё][А-ЯЁа-яё0-9 .-]*")


def _city(value: str) -> str:
    text = _clean_text(value, CITY_MAX)
    if _CITY.fullmatch(text) is None:
        _fail("must be Cyrillic letters, digits, spaces, hyphens or dots")
    return text


def _make_or_model(value: str) -> str:
    text = _clean_text(value, MAKE_MODEL_MAX)
    if not text.isprintable():
        _fail("must contain only printable characters")
    return text


_CYRILLIC_LOOKALIKES: Final = "АВЕКМНОРСТУХ"
_LATIN_LOOKALIKES: Final = "ABEKMHOPCTYX"
_TO_CYRILLIC: Final = str.maketrans(_LATIN_LOOKALIKES, _CYRILLIC_LOOKALIKES)
# A VIN typed on a Russian keyboard: Cyrillic look-alikes are the Latin letters they show.
_TO_LATIN: Final = str.maketrans(_CYRILLIC_LOOKALIKES, _LATIN_LOOKALIKES)


def _compact(value: str) -> str:
    """Upper-cased, without any whitespace ("77 01" and "7701" are one licence series)."""
    return "".join(value.split()).upper()


_VIN: Final = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


def _vin(value: str) -> str:
    text = _compact(value).translate(_TO_LATIN)
    if _VIN.fullmatch(text) is None:
        _fail("must be 17 characters from A-H, J-N, P, R-Z, 0-9")
    return text


_FRAME_NUMBER: Final = re.compile(r"[A-Z0-9-]*[A-Z0-9][A-Z0-9-]*")


def _frame_number(value: str) -> str:
    text = _compact(value).translate(_TO_LATIN)
    if not 1 <= len(text) <= FRAME_NUMBER_MAX or _FRAME_NUMBER.fullmatch(text) is None:
        _fail(f"must be 1 to {FRAME_NUMBER_MAX} Latin letters, digits or hyphens")
    return text


_PLATE: Final = re.compile(r"[АВЕКМНОРСТУХ]([0-9]{3})[АВЕКМНОРСТУХ]{2}([0-9]{2,3})")


def _plate(value: str) -> str:
    text = _compact(value).translate(_TO_CYRILLIC)
    match = _PLATE.fullmatch(text)
    if match is None or match.group(1) == "000":
        _fail(
            "must be a letter, 3 digits (not 000), 2 letters and a region code of 2 or 3 digits; "
            "letters from А В Е К М Н О Р С Т У Х"
        )
    if not is_region_code(match.group(2)):
        _fail("has an unknown region code")
    return text


def _pattern(regex: str, message: str, *, fold: bool = False) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        text = _compact(value)
        if fold:
            text = text.translate(_TO_CYRILLIC)
        if compiled.fullmatch(text) is None:
            _fail(message)
        return text

    return check


_REGION_CODE: Final = re.compile(r"[0-9]{2,3}")


def _region_code(value: str) -> str:
    if _REGION_CODE.fullmatch(value) is None:
        _fail("must be a region code of 2 or 3 digits")
    if not is_region_code(value):
        _fail("is not a known region code")
    return value


def _one_of(allowed: tuple[str, ...], message: str, *, known: tuple[str, ...] = ()) -> Callable[[object], object]:
    # Tuples, not sets: the input may be unhashable (a list), and == is enough here.
    def check(value: object) -> object:
        if isinstance(value, str):
            if value in allowed:
                return value
            if value in known:
                _fail("is not supported yet; " + message)
        _fail(message)

    return check


_OTHER_CATEGORIES: Final = (
    "A", "A1", "B1", "BE", "C", "C1", "CE", "C1E", "D", "D1", "DE", "D1E", "M", "TM", "TB",
)  # fmt: skip
_OTHER_PURPOSES: Final = (
    "training", "rental", "special", "dangerous_goods", "regular_passenger", "emergency", "other",
)  # fmt: skip

Name = Annotated[str, AfterValidator(_name)]
City = Annotated[str, AfterValidator(_city)]
MakeOrModel = Annotated[str, AfterValidator(_make_or_model)]
Vin = Annotated[str, AfterValidator(_vin)]
FrameNumber = Annotated[str, AfterValidator(_frame_number)]
Plate = Annotated[str, AfterValidator(_plate)]
RegionCode = Annotated[str, AfterValidator(_region_code)]
Category = Annotated[
    Literal["B"], BeforeValidator(_one_of(("B",), "only category B is accepted", known=_OTHER_CATEGORIES))
]
Purpose = Annotated[
    Literal["personal", "taxi"],
    BeforeValidator(_one_of(("personal", "taxi"), 'must be "personal" or "taxi"', known=_OTHER_PURPOSES)),
]
DocumentType = Annotated[
    Literal["sts", "pts", "epts"],
    BeforeValidator(_one_of(("sts", "pts", "epts"), 'must be "sts", "pts" or "epts"')),
]
DocumentSeries = Annotated[
    str,
    AfterValidator(_pattern(r"[0-9]{2}[0-9А-ЯЁ]{2}", "must be 2 digits followed by 2 letters or digits", fold=True)),
]
DigitsOnly = Annotated[str, AfterValidator(_pattern(r"[0-9]+", "must contain only digits"))]
PassportSeries = Annotated[str, AfterValidator(_pattern(r"[0-9]{4}", "must be 4 digits"))]
SixDigits = Annotated[str, AfterValidator(_pattern(r"[0-9]{6}", "must be 6 digits"))]
LicenseSeries = Annotated[
    str,
    AfterValidator(
        _pattern(
            r"[0-9]{2}(?:[0-9]{2}|[А-ЯЁ]{2})",
            "must be 2 digits followed by 2 digits or 2 Cyrillic letters",
            fold=True,
        )
    ),
]


def _list_as_tuple(value: object) -> object:
    # Strict mode takes tuples only; JSON gives lists. Anything else fails as "must be a list".
    return tuple(value) if isinstance(value, list) else value


# --- models ---------------------------------------------------------------------------------


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
    drivers: Annotated[tuple[Driver, ...], BeforeValidator(_list_as_tuple)] = ()
    unlimited_drivers: bool = False
    period: Period

    def to_payload(self) -> dict[str, Any]:
        """The normalised body, JSON-ready, in the POST body shape; absent optional fields omitted."""
        return self.model_dump(mode="json", exclude_none=True)


_MODELS: Final[tuple[type[BaseModel], ...]] = (
    VehicleDocument, Vehicle, Passport, Registration, Owner, License, Driver, Period, ApplicationIn,
)  # fmt: skip
_FIELD_NAMES: Final = frozenset(name for model in _MODELS for name in model.model_fields)


# --- pydantic errors → FieldError -------------------------------------------------------------

Loc = tuple[str | int, ...]

_MESSAGES: Final = {
    "missing": "is required",
    "extra_forbidden": "is not an allowed field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}


def _loc(error: ErrorDetails) -> Loc:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc:
        # The last element is the client's unknown key: keep it whatever it looks like.
        head, tail = loc[:-1], loc[-1:]
    else:
        head, tail = loc, ()
    # Drop pydantic's internal steps (union members, "function-after[...]") from the path.
    return tuple(part for part in head if isinstance(part, int) or part in _FIELD_NAMES) + tail


def _message(error: ErrorDetails) -> str:
    if error["type"] == _RULE:
        return error["msg"]
    return _MESSAGES.get(error["type"], "is invalid")


def _path_part(part: str | int) -> str:
    text = str(part)
    if len(text) > 64:
        text = text[:64] + "…"
    # Unknown keys are echoed: keep the answer printable (no CR/LF, no NUL).
    return "".join(char if char.isprintable() else "?" for char in text)


_CHILDREN: Final[dict[type[BaseModel], dict[str, type[BaseModel]]]] = {
    ApplicationIn: {"vehicle": Vehicle, "owner": Owner, "drivers": Driver, "period": Period},
    Vehicle: {"document": VehicleDocument},
    Owner: {"passport": Passport, "registration": Registration},
    Driver: {"license": License},
}
_POSITIONS: Final = {model: {name: i for i, name in enumerate(model.model_fields)} for model in _MODELS}


def _body_order(loc: Loc) -> tuple[int, ...]:
    """Sort key that lists errors in the order of the body's fields (unknown keys last in their object)."""
    model: type[BaseModel] | None = ApplicationIn
    key: list[int] = []
    for part in loc:
        if isinstance(part, int):
            key.append(part)
            continue
        positions = _POSITIONS.get(model, {}) if model is not None else {}
        key.append(positions.get(part, len(positions)))
        model = _CHILDREN.get(model, {}).get(part) if model is not None else None
    return tuple(key)


def _dotted(loc: Loc) -> str:
    return ".".join(_path_part(part) for part in loc)


# --- rules between fields -----------------------------------------------------------------------

_ABSENT: Final = object()


class _Checked:
    """The raw body seen through pass 1: a field's value only if it passed its own checks."""

    def __init__(self, data: Mapping[str, Any], bad: set[Loc]) -> None:
        self._data = data
        self._bad = bad

    def raw(self, loc: Loc) -> Any:
        node: Any = self._data
        for part in loc:
            if isinstance(part, int):
                if not isinstance(node, list) or not 0 <= part < len(node):
                    return _ABSENT
            elif not isinstance(node, dict) or part not in node:
                return _ABSENT
            node = node[part]
        return node

    def valid(self, loc: Loc) -> bool:
        return not self._bad or not any(loc[:end] in self._bad for end in range(len(loc) + 1))

    def get(self, loc: Loc, convert: Callable[[Any], Any]) -> Any:
        """The converted value, or None when the field is absent, null or invalid."""
        if not self.valid(loc):
            return None
        value = self.raw(loc)
        if value is _ABSENT or value is None:
            return None
        try:
            return convert(value)
        except (PydanticCustomError, ValueError, TypeError):
            return None


def _present(value: object) -> bool:
    return value is not _ABSENT and value is not None


def _exact(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(kind.__name__)
        return value

    return convert


_as_str = _exact(str)
_as_int = _exact(int)
_as_bool = _exact(bool)
_licence_series = _pattern(r"[0-9]{2}(?:[0-9]{2}|[А-ЯЁ]{2})", "", fold=True)
_six_digits = _pattern(r"[0-9]{6}", "")
_digits = _pattern(r"[0-9]+", "")


def _vehicle_rules(checked: _Checked) -> list[tuple[Loc, str]]:
    errors: list[tuple[Loc, str]] = []
    vehicle = checked.raw(("vehicle",))
    if not isinstance(vehicle, dict) or not checked.valid(("vehicle",)):
        return errors
    if not any(_present(vehicle.get(key, _ABSENT)) for key in ("vin", "body_number", "chassis_number")):
        errors.append((("vehicle", "vin"), "is required unless body_number or chassis_number is given"))

    doc: Loc = ("vehicle", "document")
    kind = checked.get((*doc, "type"), _as_str)
    if kind is not None:
        series = checked.raw((*doc, "series"))
        if kind == "epts" and _present(series):
            errors.append(((*doc, "series"), "must be absent for an electronic PTS (epts)"))
        elif kind != "epts" and not _present(series):
            errors.append(((*doc, "series"), "is required for sts and pts"))
        number = checked.get((*doc, "number"), _digits)
        expected = 15 if kind == "epts" else 6
        if number is not None and len(number) != expected:
            errors.append(((*doc, "number"), f"must be {expected} digits for {kind}"))

    issued = checked.get((*doc, "issued"), _parse_date)
    year = checked.get(("vehicle", "year"), _as_int)
    if issued is not None and year is not None and issued < date(year - 1, 1, 1):
        message = f"must not be before {year - 1}-01-01 (a year before the model year)"
        errors.append(((*doc, "issued"), message))
    return errors


def _owner_rules(checked: _Checked) -> list[tuple[Loc, str]]:
    birth = checked.get(("owner", "birth_date"), _parse_date)
    issued = checked.get(("owner", "passport", "issued"), _parse_date)
    if birth is not None and issued is not None and issued < _add_years(birth, 14):
        return [(("owner", "passport", "issued"), "must not be before the owner's 14th birthday")]
    return []


def _driver_rules(checked: _Checked) -> list[tuple[Loc, str]]:
    errors: list[tuple[Loc, str]] = []
    drivers = checked.raw(("drivers",))
    if drivers is _ABSENT:
        drivers = []
    if not isinstance(drivers, list) or not checked.valid(("drivers",)):
        return errors

    unlimited_raw = checked.raw(("unlimited_drivers",))
    unlimited = False if unlimited_raw is _ABSENT else checked.get(("unlimited_drivers",), _as_bool)
    if len(drivers) > MAX_DRIVERS:
        errors.append((("drivers",), f"must list at most {MAX_DRIVERS} drivers"))
    elif unlimited is True and drivers:
        errors.append((("drivers",), "must be empty or absent when unlimited_drivers is true"))
    elif unlimited is False and not drivers:
        message = f"must list 1 to {MAX_DRIVERS} drivers unless unlimited_drivers is true"
        errors.append((("drivers",), message))

    start = checked.get(("period", "start_date"), _parse_date)
    licences: dict[tuple[str, str], int] = {}
    for index in range(len(drivers)):
        at: Loc = ("drivers", index)
        birth = checked.get((*at, "birth_date"), _parse_date)
        if birth is not None:
            if start is not None and _add_years(birth, 18) > start:
                message = "the driver must be at least 18 years old on the policy start date"
                errors.append(((*at, "birth_date"), message))
            sixteenth = _add_years(birth, 16)
            issued = checked.get((*at, "license", "issued"), _parse_date)
            if issued is not None and issued < sixteenth:
                errors.append(((*at, "license", "issued"), "must not be before the driver's 16th birthday"))
            since = checked.get((*at, "experience_since"), _parse_date)
            if since is not None and since < sixteenth:
                errors.append(((*at, "experience_since"), "must not be before the driver's 16th birthday"))
        series = checked.get((*at, "license", "series"), _licence_series)
        number = checked.get((*at, "license", "number"), _six_digits)
        if series is not None and number is not None:
            first = licences.setdefault((series, number), index)
            if first != index:
                errors.append(((*at, "license"), f"is the same licence as drivers.{first}.license"))
    return errors


# --- entry point ------------------------------------------------------------------------------


def parse_application(data: object, *, today: date) -> ApplicationIn:
    """Validate and normalise a decoded JSON body; ``today`` is the Moscow date (``moscow_today()``).

    Raises ApplicationInvalid, and only that, for any input that breaks the contract.
    """
    if isinstance(today, datetime):
        today = today.date()
    if not isinstance(today, date):
        # A caller's bug, not a bad body: without today every date window would be skipped.
        raise TypeError("today must be a date (moscow_today())")
    if not isinstance(data, dict):
        raise ApplicationInvalid([FieldError(path="", message="must be a JSON object")])
    try:
        return _parse(data, today)
    except ApplicationInvalid:
        raise
    except Exception as exc:  # the contract: nothing but ApplicationInvalid leaves this function
        raise ApplicationInvalid([FieldError(path="", message="could not be validated")]) from exc


def _parse(data: dict[str, Any], today: date) -> ApplicationIn:
    model: ApplicationIn | None = None
    errors: list[tuple[Loc, str]] = []
    try:
        model = ApplicationIn.model_validate(data, context={"today": today})
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False)
        errors = [(_loc(error), _message(error)) for error in details]
    checked = _Checked(data, {loc for loc, _ in errors})
    errors += _vehicle_rules(checked) + _owner_rules(checked) + _driver_rules(checked)
    if errors:
        # One message per field: the first wins, so a field's own error beats a rule between fields.
        first: dict[Loc, str] = {}
        for loc, message in errors:
            first.setdefault(loc, message)
        ordered = sorted(first.items(), key=lambda item: _body_order(item[0]))
        raise ApplicationInvalid([FieldError(path=_dotted(loc), message=message) for loc, message in ordered])
    assert model is not None
    return model
