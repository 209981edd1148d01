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

from shared.intake.regions import REGION_CODES, is_region_code

MAX_DRIVERS: Final = 5
POLICY_START_MAX_DAYS: Final = 60
EARLIEST_DATE: Final = date(1900, 1, 1)
NAME_MAX: Final = 100
CITY_MAX: Final = 100
MAKE_MODEL_MAX: Final = 60
FRAME_NUMBER_MAX: Final = 20


# The error type of our own messages; they are passed to clients as they are.
RULE_ERROR: Final = "application_rule"


def _string(**constraints: object) -> WithJsonSchema:
    """The published schema of a string field: the canonical spelling the validator accepts.

    The validator also accepts what it normalises into that spelling (spaces, case, Cyrillic
    look-alikes), so every value the schema allows is accepted; only the date rules between
    fields and relative to today are left to the operation's description.
    """
    return WithJsonSchema({"type": "string", **constraints})


def _integer(minimum: int, maximum: int | None = None) -> WithJsonSchema:
    bounds: dict[str, object] = {"minimum": minimum}
    if maximum is not None:
        bounds["maximum"] = maximum
    return WithJsonSchema({"type": "integer", **bounds})


def anchored(regex: str) -> str:
    """A validator's full-match regex as a JSON Schema pattern (which searches unless anchored)."""
    return f"^(?:{regex})$"


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
# Years 1900-9999: EARLIEST_DATE is the first date any field takes (later ones are relative to today).
_DATE_FROM_1900: Final = r"(?:19|[2-9][0-9])[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"


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


_DATE_SCHEMA: Final = _string(format="date", pattern=anchored(_DATE_FROM_1900))
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
    if value < EARLIEST_MODEL_YEAR or (high is not None and value > high):
        _fail(
            f"must be between {EARLIEST_MODEL_YEAR} and {high}"
            if high is not None
            else f"must not be before {EARLIEST_MODEL_YEAR}"
        )
    return value


POWER_HP: Final = (1, 2000)
MONTHS: Final = (3, 12)
EARLIEST_MODEL_YEAR: Final = 1900
# The latest model year is next year's, relative to today: stated in the operation's description.


def whole_number(value: object) -> object:
    """JSON Schema's integer is any number without a fraction: 12.0 is the integer 12.

    A client's JSON library may write a whole float so; strict mode would refuse it as
    "must be an integer" while the document allows it. Booleans stay refused.
    """
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


ModelYear = Annotated[int, BeforeValidator(whole_number), AfterValidator(_model_year), _integer(EARLIEST_MODEL_YEAR)]
PowerHp = Annotated[int, BeforeValidator(whole_number), AfterValidator(_between(*POWER_HP)), _integer(*POWER_HP)]
Months = Annotated[int, BeforeValidator(whole_number), AfterValidator(_between(*MONTHS)), _integer(*MONTHS)]

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


NAME_PATTERN: Final = r"[А-ЯЁа-яё]+(?:[ '-][А-ЯЁа-яё]+)*"
_NAME: Final = re.compile(NAME_PATTERN)


def _name(value: str) -> str:
    text = _clean_text(value, NAME_MAX)
    if _NAME.fullmatch(text) is None:
        _fail("must be Cyrillic letters, with single spaces, hyphens or apostrophes between them")
    return text


CITY_PATTERN: Final = r"[А-ЯЁа-яё0-9 .-]*[А-ЯЁа-яё][А-ЯЁа-яё0-9 .-]*"
_CITY: Final = re.compile(CITY_PATTERN)


def _city(value: str) -> str:
    text = _clean_text(value, CITY_MAX)
    if _CITY.fullmatch(text) is None:
        _fail("must be Cyrillic letters, digits, spaces, hyphens or dots")
    return text


# What the registration certificate prints: Latin or Cyrillic letters, digits, ASCII punctuation,
# single spaces between. The document publishes the same pattern, so no make is a surprise.
MAKE_MODEL_PATTERN: Final = r"[!-~А-ЯЁа-яё]+(?: [!-~А-ЯЁа-яё]+)*"
_MAKE_MODEL: Final = re.compile(MAKE_MODEL_PATTERN)


def _make_or_model(value: str) -> str:
    text = _clean_text(value, MAKE_MODEL_MAX)
    if _MAKE_MODEL.fullmatch(text) is None:
        _fail("must be Latin or Cyrillic letters, digits or ASCII punctuation, with single spaces between")
    return text


_CYRILLIC_LOOKALIKES: Final = "АВЕКМНОРСТУХ"
_LATIN_LOOKALIKES: Final = "ABEKMHOPCTYX"
_TO_CYRILLIC: Final = str.maketrans(_LATIN_LOOKALIKES, _CYRILLIC_LOOKALIKES)
# A VIN typed on a Russian keyboard: Cyrillic look-alikes are the Latin letters they show.
_TO_LATIN: Final = str.maketrans(_CYRILLIC_LOOKALIKES, _LATIN_LOOKALIKES)


def _compact(value: str) -> str:
    """Upper-cased, without any whitespace ("77 01" and "7701" are one licence series)."""
    return "".join(value.split()).upper()


VIN_PATTERN: Final = r"[A-HJ-NPR-Z0-9]{17}"
_VIN: Final = re.compile(VIN_PATTERN)


def _vin(value: str) -> str:
    text = _compact(value).translate(_TO_LATIN)
    if _VIN.fullmatch(text) is None:
        _fail("must be 17 characters from A-H, J-N, P, R-Z, 0-9")
    return text


FRAME_NUMBER_PATTERN: Final = r"[A-Z0-9-]*[A-Z0-9][A-Z0-9-]*"
_FRAME_NUMBER: Final = re.compile(FRAME_NUMBER_PATTERN)


def _frame_number(value: str) -> str:
    text = _compact(value).translate(_TO_LATIN)
    if not 1 <= len(text) <= FRAME_NUMBER_MAX or _FRAME_NUMBER.fullmatch(text) is None:
        _fail(f"must be 1 to {FRAME_NUMBER_MAX} Latin letters, digits or hyphens")
    return text


_PLATE: Final = re.compile(r"[АВЕКМНОРСТУХ]([0-9]{3})[АВЕКМНОРСТУХ]{2}([0-9]{2,3})")
# The same rule as one regex for the document: 3 digits but 000, and only the known region codes.
_REGION_ALTERNATIVES: Final = "|".join(sorted(REGION_CODES, key=lambda code: (len(code), code)))
PLATE_PATTERN: Final = (
    r"[АВЕКМНОРСТУХ](?:00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})[АВЕКМНОРСТУХ]{2}" f"(?:{_REGION_ALTERNATIVES})"
)


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

Name = Annotated[str, AfterValidator(_name), _string(pattern=anchored(NAME_PATTERN), maxLength=NAME_MAX)]
City = Annotated[str, AfterValidator(_city), _string(pattern=anchored(CITY_PATTERN), maxLength=CITY_MAX)]
MakeOrModel = Annotated[
    str, AfterValidator(_make_or_model), _string(pattern=anchored(MAKE_MODEL_PATTERN), maxLength=MAKE_MODEL_MAX)
]
Vin = Annotated[str, AfterValidator(_vin), _string(pattern=anchored(VIN_PATTERN))]
FrameNumber = Annotated[
    str,
    AfterValidator(_frame_number),
    _string(pattern=anchored(FRAME_NUMBER_PATTERN), minLength=1, maxLength=FRAME_NUMBER_MAX),
]
Plate = Annotated[str, AfterValidator(_plate), _string(pattern=anchored(PLATE_PATTERN))]
RegionCode = Annotated[
    str,
    AfterValidator(_region_code),
    _string(enum=sorted(REGION_CODES, key=lambda code: (len(code), code))),
]
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
DOCUMENT_SERIES_PATTERN: Final = r"[0-9]{2}[0-9А-ЯЁ]{2}"
DIGITS_PATTERN: Final = r"[0-9]+"
SIX_DIGITS_PATTERN: Final = r"[0-9]{6}"
LICENSE_SERIES_PATTERN: Final = r"[0-9]{2}(?:[0-9]{2}|[А-ЯЁ]{2})"
DocumentSeries = Annotated[
    str,
    AfterValidator(
        pattern_check(DOCUMENT_SERIES_PATTERN, "must be 2 digits followed by 2 letters or digits", fold=True)
    ),
    _string(pattern=anchored(DOCUMENT_SERIES_PATTERN)),
]
DigitsOnly = Annotated[
    str,
    AfterValidator(pattern_check(DIGITS_PATTERN, "must contain only digits")),
    _string(pattern=anchored(DIGITS_PATTERN)),
]
PassportSeries = Annotated[
    str, AfterValidator(pattern_check(r"[0-9]{4}", "must be 4 digits")), _string(pattern=anchored(r"[0-9]{4}"))
]
SixDigits = Annotated[
    str,
    AfterValidator(pattern_check(SIX_DIGITS_PATTERN, "must be 6 digits")),
    _string(pattern=anchored(SIX_DIGITS_PATTERN)),
]
LicenseSeries = Annotated[
    str,
    AfterValidator(
        pattern_check(
            LICENSE_SERIES_PATTERN,
            "must be 2 digits followed by 2 digits or 2 Cyrillic letters",
            fold=True,
        )
    ),
    _string(pattern=anchored(LICENSE_SERIES_PATTERN)),
]


def list_as_tuple(value: object) -> object:
    # Strict mode takes tuples only; JSON gives lists. Anything else fails as "must be a list".
    return tuple(value) if isinstance(value, list) else value
