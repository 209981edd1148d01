"""Rules between fields, run on every field that passed its own checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final

from pydantic_core import PydanticCustomError

from shared.intake.schema.errors import Loc
from shared.intake.schema.fields import (
    DIGITS_PATTERN,
    LICENSE_SERIES_PATTERN,
    MAX_DRIVERS,
    SIX_DIGITS_PATTERN,
    add_years,
    parse_date,
    pattern_check,
    whole_number,
)

_ABSENT: Final = object()


class CheckedBody:
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


def _as_whole_number(value: Any) -> Any:
    return _as_int(whole_number(value))


_as_bool = _exact(bool)
_licence_series = pattern_check(LICENSE_SERIES_PATTERN, "", fold=True)
_six_digits = pattern_check(SIX_DIGITS_PATTERN, "")
_digits = pattern_check(DIGITS_PATTERN, "")


def vehicle_rules(checked: CheckedBody) -> list[tuple[Loc, str]]:
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

    issued = checked.get((*doc, "issued"), parse_date)
    year = checked.get(("vehicle", "year"), _as_whole_number)
    if issued is not None and year is not None and issued < date(year - 1, 1, 1):
        message = f"must not be before {year - 1}-01-01 (a year before the model year)"
        errors.append(((*doc, "issued"), message))
    return errors


def owner_rules(checked: CheckedBody) -> list[tuple[Loc, str]]:
    birth = checked.get(("owner", "birth_date"), parse_date)
    issued = checked.get(("owner", "passport", "issued"), parse_date)
    if birth is not None and issued is not None and issued < add_years(birth, 14):
        return [(("owner", "passport", "issued"), "must not be before the owner's 14th birthday")]
    return []


def driver_rules(checked: CheckedBody) -> list[tuple[Loc, str]]:
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

    start = checked.get(("period", "start_date"), parse_date)
    licences: dict[tuple[str, str], int] = {}
    for index in range(len(drivers)):
        at: Loc = ("drivers", index)
        birth = checked.get((*at, "birth_date"), parse_date)
        if birth is not None:
            if start is not None and add_years(birth, 18) > start:
                message = "the driver must be at least 18 years old on the policy start date"
                errors.append(((*at, "birth_date"), message))
            sixteenth = add_years(birth, 16)
            issued = checked.get((*at, "license", "issued"), parse_date)
            if issued is not None and issued < sixteenth:
                errors.append(((*at, "license", "issued"), "must not be before the driver's 16th birthday"))
            since = checked.get((*at, "experience_since"), parse_date)
            if since is not None and since < sixteenth:
                errors.append(((*at, "experience_since"), "must not be before the driver's 16th birthday"))
        series = checked.get((*at, "license", "series"), _licence_series)
        number = checked.get((*at, "license", "number"), _six_digits)
        if series is not None and number is not None:
            first = licences.setdefault((series, number), index)
            if first != index:
                errors.append(((*at, "license"), f"is the same licence as drivers.{first}.license"))
    return errors
