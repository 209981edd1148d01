"""Each field on its own: types, formats, and the rules that need only the field and today."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Annotated, Final, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from shared.intake.regions import is_region_code

MAX_DRIVERS: Final = 5
POLICY_START_MAX_DAYS: Final = 60
EARLIEST_DATE: Final = date(1900, 1, 1)
NAME_MAX: Final = 100
CITY_MAX: Final = 100
MAKE_MODEL_MAX: Final = 60
FRAME_NUMBER_MAX: Final = 20


# The error type of our own messages; they are passed to clients as they are.
RULE_ERROR: Final = "application_rule"


def _fail(message: str) -> NoReturn:
    raise PydanticCustomError(RULE_ERROR, message)


def _today(info: ValidationInfo) -> date | None:
    context = info.context
    if isinstance(context, Mapping):
        today = context.get("today")
        if isinstance(today, date):
            return today
    return None


def add_years(day: date, years: int) -> date:
    if day.year + years > date.max.year:
        return date.max
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        # 29 February: a term counted in years ends on the last day of that month (Civil Code art. 192).
        return date(day.year + years, 2, 28)


_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(value: object) -> date:
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
    if today is not None and add_years(value, 18) > today:
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
PastDate = Annotated[date, BeforeValidator(parse_date), AfterValidator(_not_future), _DATE_SCHEMA]
AdultBirthDate = Annotated[
    date,
    BeforeValidator(parse_date),
    AfterValidator(_not_future),
    AfterValidator(_adult_today),
    _DATE_SCHEMA,
]
PolicyStart = Annotated[date, BeforeValidator(parse_date), AfterValidator(_policy_start), _DATE_SCHEMA]


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


def pattern_check(regex: str, message: str, *, fold: bool = False) -> Callable[[str], str]:
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
    AfterValidator(
        pattern_check(r"[0-9]{2}[0-9А-ЯЁ]{2}", "must be 2 digits followed by 2 letters or digits", fold=True)
    ),
]
DigitsOnly = Annotated[str, AfterValidator(pattern_check(r"[0-9]+", "must contain only digits"))]
PassportSeries = Annotated[str, AfterValidator(pattern_check(r"[0-9]{4}", "must be 4 digits"))]
SixDigits = Annotated[str, AfterValidator(pattern_check(r"[0-9]{6}", "must be 6 digits"))]
LicenseSeries = Annotated[
    str,
    AfterValidator(
        pattern_check(
            r"[0-9]{2}(?:[0-9]{2}|[А-ЯЁ]{2})",
            "must be 2 digits followed by 2 digits or 2 Cyrillic letters",
            fold=True,
        )
    ),
]


def list_as_tuple(value: object) -> object:
    # Strict mode takes tuples only; JSON gives lists. Anything else fails as "must be a list".
    return tuple(value) if isinstance(value, list) else value
