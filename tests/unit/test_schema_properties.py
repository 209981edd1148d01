"""Properties of the request schema (shared.intake.schema.parse_application), checked by hypothesis.

Each test states a rule of ../shared/domain/fields.md for every input of a kind, not for a few
examples: any valid VIN in any case is accepted and stored upper-case; any VIN with I, O or Q is
refused naming ``vehicle.vin``; plates fold Latin look-alikes to Cyrillic; licence and passport
numbers are ASCII digits only; dates are judged against Moscow's date, whatever the UTC time;
age and experience count whole years to the day (a driver who turns 18 on the policy start date
may drive, one who turns 18 the day after may not); and nothing but ApplicationInvalid ever
leaves parse_application, whatever JSON-like value it is given.

Examples per property: tests/conftest.py's hypothesis profile (200 in ``make test``, the same
ones every run; 2,000 new ones with ``--fuzz-long``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.intake.regions import REGION_CODES
from shared.intake.schema import ApplicationIn, ApplicationInvalid, parse_application
from shared.intake.schema.fields import POLICY_START_MAX_DAYS, add_years
from shared.platform import clock
from shared.platform.clock import MOSCOW
from tests.support.samples import sample_application

# --- building bodies -----------------------------------------------------------------------------

# Days on which the sample body's own dates (document 2019, passport 2015, licence 2005) are all past.
todays = st.dates(min_value=date(2020, 1, 1), max_value=date(2060, 12, 31))


def body_for(today: date, **changes: Any) -> dict[str, Any]:
    """The valid sample, starting a week after ``today``; ``changes`` maps dotted paths (``__``) to values."""
    assert today >= date(2020, 1, 1), "the sample's vehicle document (2019) must be in the past"
    data = sample_application(today)
    for path, value in changes.items():
        put(data, path.replace("__", "."), value)
    return data


def put(data: Any, path: str, value: Any) -> None:
    *head, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    for part in head:
        data = data[part]
    data[last] = value


def accepted(data: Any, today: date) -> ApplicationIn:
    try:
        return parse_application(data, today=today)
    except ApplicationInvalid as exc:
        pytest.fail(f"refused: {exc.fields}")


def refused_paths(data: Any, today: date) -> list[str]:
    with pytest.raises(ApplicationInvalid) as refused:
        parse_application(data, today=today)
    paths = [field["path"] for field in refused.value.fields]
    assert paths, "a refusal names at least one field"
    assert_each_named_once(paths)
    return paths


def assert_each_named_once(paths: list[str]) -> None:
    # Unknown keys are echoed with "?" for what is not printable and cut at 64 characters, so two
    # different unknown keys may read alike; every other path names one field, once.
    plain = [p for p in paths if "?" not in p and "…" not in p]
    assert len(plain) == len(set(plain)), f"a field named twice: {paths}"


def mixed_case(text: str, flips: list[bool]) -> str:
    return "".join(c.lower() if flip else c.upper() for c, flip in zip(text, flips, strict=False)) + text[len(flips) :]


# --- VIN ---------------------------------------------------------------------------------------

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
# What a Russian keyboard types for the Latin letters a VIN may hold (О and Р fold to O and P).
CYRILLIC_FOR_LATIN = dict(zip("ABEKMHCTYX", "АВЕКМНСТУХ", strict=True))

vins = st.text(alphabet=VIN_ALPHABET, min_size=17, max_size=17)
flips = st.lists(st.booleans(), min_size=17, max_size=17)


@given(today=todays, vin=vins, flips=flips)
def test_any_valid_vin_in_any_case_is_accepted_and_stored_upper_case(today: date, vin: str, flips: list[bool]) -> None:
    parsed = accepted(body_for(today, vehicle__vin=mixed_case(vin, flips)), today)
    assert parsed.vehicle.vin == vin
    assert parsed.to_payload()["vehicle"]["vin"] == vin


@given(
    today=todays,
    vin=vins,
    cyrillic=st.lists(st.booleans(), min_size=17, max_size=17),
    spaces=st.sets(st.integers(0, 16)),
)
def test_a_vin_typed_with_cyrillic_look_alikes_or_spaces_is_the_same_vin(
    today: date, vin: str, cyrillic: list[bool], spaces: set[int]
) -> None:
    typed = "".join(
        (CYRILLIC_FOR_LATIN.get(c, c) if swap else c) + (" " if i in spaces else "")
        for i, (c, swap) in enumerate(zip(vin, cyrillic, strict=True))
    )
    assert accepted(body_for(today, vehicle__vin=typed), today).vehicle.vin == vin


@given(today=todays, vin=vins, at=st.integers(0, 16), letter=st.sampled_from("IOQioqО"))
def test_any_vin_with_i_o_or_q_is_refused_naming_the_vin(today: date, vin: str, at: int, letter: str) -> None:
    bad = vin[:at] + letter + vin[at + 1 :]
    assert refused_paths(body_for(today, vehicle__vin=bad), today) == ["vehicle.vin"]


@given(today=todays, vin=st.text(alphabet=VIN_ALPHABET, max_size=30).filter(lambda v: len(v) != 17))
def test_a_vin_of_any_other_length_is_refused_naming_the_vin(today: date, vin: str) -> None:
    paths = refused_paths(body_for(today, vehicle__vin=vin), today)
    # An empty one is no VIN at all: then the rule "a VIN or a frame number" names it too.
    assert paths == ["vehicle.vin"]


# --- plates ---------------------------------------------------------------------------------------

PLATE_LETTERS = "АВЕКМНОРСТУХ"
LATIN_LOOK_ALIKES = dict(zip(PLATE_LETTERS, "ABEKMHOPCTYX", strict=True))


@st.composite
def plates(draw: st.DrawFn) -> str:
    digits = draw(st.integers(1, 999))
    region = draw(st.sampled_from(sorted(REGION_CODES)))
    letters = draw(st.text(alphabet=PLATE_LETTERS, min_size=3, max_size=3))
    return f"{letters[0]}{digits:03d}{letters[1:]}{region}"


@given(today=todays, plate=plates(), latin=st.lists(st.booleans(), min_size=12, max_size=12), flips=flips)
def test_a_plate_with_latin_look_alikes_in_any_case_is_stored_in_cyrillic(
    today: date, plate: str, latin: list[bool], flips: list[bool]
) -> None:
    typed = "".join(
        LATIN_LOOK_ALIKES[c] if c in LATIN_LOOK_ALIKES and swap else c for c, swap in zip(plate, latin, strict=False)
    )
    parsed = accepted(body_for(today, vehicle__plate=mixed_case(typed, flips)), today)
    assert parsed.vehicle.plate == plate


@given(
    today=todays,
    plate=plates(),
    letter=st.sampled_from("БГДЖЗИЙЛПФЦЧШЩЪЫЬЭЮЯDFGIJLNQRSUVWZ"),
    at=st.sampled_from([0, 4, 5]),
)
def test_a_plate_letter_outside_the_twelve_is_refused_naming_the_plate(
    today: date, plate: str, letter: str, at: int
) -> None:
    bad = plate[:at] + letter + plate[at + 1 :]
    assert refused_paths(body_for(today, vehicle__plate=bad), today) == ["vehicle.plate"]


@given(today=todays, plate=plates())
def test_a_plate_numbered_000_is_refused(today: date, plate: str) -> None:
    bad = plate[0] + "000" + plate[4:]
    assert refused_paths(body_for(today, vehicle__plate=bad), today) == ["vehicle.plate"]


@given(today=todays, plate=plates(), region=st.integers(0, 999).map(str))
def test_a_plate_region_that_is_not_a_real_one_is_refused(today: date, plate: str, region: str) -> None:
    code = region if len(region) >= 2 else region.zfill(2)
    assume(code not in REGION_CODES)
    assert refused_paths(body_for(today, vehicle__plate=plate[:6] + code), today) == ["vehicle.plate"]


# --- licences and passports -------------------------------------------------------------------

ascii_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
cyrillic_upper = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"


@st.composite
def licence_series(draw: st.DrawFn) -> str:
    head = draw(st.text(alphabet="0123456789", min_size=2, max_size=2))
    tail = draw(
        st.text(alphabet="0123456789", min_size=2, max_size=2)
        | st.text(alphabet=cyrillic_upper, min_size=2, max_size=2)
    )
    return head + tail


@given(
    today=todays,
    series=licence_series(),
    number=st.text(alphabet="0123456789", min_size=6, max_size=6),
    lower=st.booleans(),
)
def test_a_licence_of_2_digits_and_2_digits_or_cyrillic_letters_and_6_digits_is_accepted(
    today: date, series: str, number: str, lower: bool
) -> None:
    typed = series.lower() if lower else series
    parsed = accepted(body_for(today, drivers__0__license__series=typed, drivers__0__license__number=number), today)
    assert parsed.drivers[0].license.series == series
    assert parsed.drivers[0].license.number == number


# Digits that int() and \d would take: Arabic-Indic, Devanagari, fullwidth, superscripts...
foreign_digits = st.characters(categories=["Nd", "No"]).filter(lambda c: c not in "0123456789")


@given(
    today=todays,
    number=st.text(alphabet="0123456789", min_size=6, max_size=6),
    at=st.integers(0, 5),
    digit=foreign_digits,
)
def test_documents_take_ascii_digits_only(today: date, number: str, at: int, digit: str) -> None:
    bad = number[:at] + digit + number[at + 1 :]
    for field in ("drivers.0.license.number", "owner.passport.number"):
        data = body_for(today)
        put(data, field, bad)
        assert refused_paths(data, today) == [field]


@given(today=todays, number=st.text(alphabet="0123456789", max_size=12).filter(lambda n: len(n) != 6))
def test_licence_and_passport_numbers_are_exactly_6_digits(today: date, number: str) -> None:
    for field in ("drivers.0.license.number", "owner.passport.number"):
        data = body_for(today)
        put(data, field, number)
        assert refused_paths(data, today) == [field]


@given(today=todays, series=st.text(alphabet="0123456789", max_size=8).filter(lambda s: len(s) != 4))
def test_a_passport_series_is_exactly_4_digits(today: date, series: str) -> None:
    assert refused_paths(body_for(today, owner__passport__series=series), today) == ["owner.passport.series"]


@given(today=todays, series=st.text(alphabet="0123456789", min_size=4, max_size=4))
def test_any_4_digit_passport_series_is_accepted(today: date, series: str) -> None:
    assert accepted(body_for(today, owner__passport__series=series), today).owner.passport.series == series


# --- Moscow's date ----------------------------------------------------------------------------

# Moscow has kept UTC+3 all year since October 2014: its midnight is 21:00 UTC.
moments_near_moscow_midnight = st.builds(
    lambda day, offset_s: datetime(day.year, day.month, day.day, 21, tzinfo=UTC) + timedelta(seconds=offset_s),
    todays,
    st.integers(-300, 300),
)


class _FrozenDatetime(datetime):
    frozen: datetime

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.frozen.astimezone(tz)


@given(moment=moments_near_moscow_midnight)
def test_today_is_moscow_s_date_on_either_side_of_its_midnight(moment: datetime) -> None:
    _FrozenDatetime.frozen = moment
    with mock.patch.object(clock, "datetime", _FrozenDatetime):
        today = clock.moscow_today()
    # From 21:00 UTC on, Moscow is already on the next day.
    utc_day = moment.date()
    assert today == (utc_day + timedelta(days=1) if moment.hour >= 21 else utc_day)
    assert today == moment.astimezone(MOSCOW).date()


@given(moment=moments_near_moscow_midnight)
def test_date_windows_move_at_moscow_midnight_not_at_utc_midnight(moment: datetime) -> None:
    today = moment.astimezone(MOSCOW).date()
    # "Not in the future" is Moscow's today; the policy starts from Moscow's tomorrow to 60 days on.
    accepted(body_for(today, owner__passport__issued=today.isoformat()), today)
    assert refused_paths(body_for(today, owner__passport__issued=(today + timedelta(days=1)).isoformat()), today) == [
        "owner.passport.issued"
    ]
    for days, ok in ((0, False), (1, True), (POLICY_START_MAX_DAYS, True), (POLICY_START_MAX_DAYS + 1, False)):
        data = body_for(today, period__start_date=(today + timedelta(days=days)).isoformat())
        if ok:
            accepted(data, today)
        else:
            assert refused_paths(data, today) == ["period.start_date"], days


# --- anniversaries: age and experience ---------------------------------------------------------

# Births whose 18th birthday falls on a day the sample's own dates allow (see ``todays``), with
# 29 February as often as any day of its month (a term counted in years ends on the 28th then).
births = st.dates(min_value=date(2002, 4, 1), max_value=date(2040, 12, 31)) | st.sampled_from(
    [date(year, 2, 29) for year in range(2004, 2041, 4)]
)
day_offsets = st.sampled_from([-1, 0, 1])


def iso(day: date) -> str:
    return day.isoformat()


def driver_born(birth: date, since: date) -> dict[str, Any]:
    driver = copy.deepcopy(sample_application()["drivers"][0])
    driver["birth_date"] = iso(birth)
    driver["license"]["issued"] = iso(since)
    driver["experience_since"] = iso(since)
    return driver


@given(birth=births, offset=day_offsets, ahead=st.integers(1, POLICY_START_MAX_DAYS))
def test_a_driver_may_drive_from_the_day_they_turn_18_on_the_policy_start_date(
    birth: date, offset: int, ahead: int
) -> None:
    start = add_years(birth, 18) + timedelta(days=offset)
    today = start - timedelta(days=ahead)
    since = add_years(birth, 16)
    assume(since <= today)
    data = body_for(today, drivers=[driver_born(birth, since)], period__start_date=iso(start))
    if offset >= 0:  # 18 on the start date, or the day before it
        accepted(data, today)
    else:  # turns 18 the day after the policy starts
        assert refused_paths(data, today) == ["drivers.0.birth_date"]


@given(birth=births, offset=day_offsets, field=st.sampled_from(["license.issued", "experience_since"]))
def test_a_licence_and_experience_count_from_the_16th_birthday_to_the_day(birth: date, offset: int, field: str) -> None:
    sixteenth = add_years(birth, 16)
    today = add_years(birth, 18) + timedelta(days=30)  # an adult driver on a policy starting a week later
    driver = driver_born(birth, sixteenth)
    put(driver, field, iso(sixteenth + timedelta(days=offset)))
    data = body_for(today, drivers=[driver])
    if offset >= 0:
        accepted(data, today)
    else:
        assert refused_paths(data, today) == [f"drivers.0.{field}"]


@given(birth=births, years=st.integers(18, 80), field=st.sampled_from(["license.issued", "experience_since"]))
def test_experience_cannot_start_after_today(birth: date, years: int, field: str) -> None:
    today = add_years(birth, years)
    assume(today <= date(2100, 1, 1))
    driver = driver_born(birth, add_years(birth, 16))
    put(driver, field, iso(today))
    accepted(body_for(today, drivers=[driver]), today)
    put(driver, field, iso(today + timedelta(days=1)))
    assert refused_paths(body_for(today, drivers=[driver]), today) == [f"drivers.0.{field}"]


@given(birth=births, offset=day_offsets)
def test_the_owner_is_18_from_the_day_of_their_18th_birthday(birth: date, offset: int) -> None:
    today = add_years(birth, 18) + timedelta(days=offset)
    fourteenth = add_years(birth, 14)
    data = body_for(today, owner__birth_date=iso(birth), owner__passport__issued=iso(fourteenth))
    if offset >= 0:
        accepted(data, today)
    else:
        assert refused_paths(data, today) == ["owner.birth_date"]


@given(birth=births, offset=day_offsets)
def test_a_passport_is_issued_from_the_14th_birthday_on(birth: date, offset: int) -> None:
    today = add_years(birth, 30)
    issued = add_years(birth, 14) + timedelta(days=offset)
    data = body_for(today, owner__birth_date=iso(birth), owner__passport__issued=iso(issued))
    if offset >= 0:
        accepted(data, today)
    else:
        assert refused_paths(data, today) == ["owner.passport.issued"]


# --- whatever comes in --------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)


def _leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [prefix.rstrip(".")] * bool(prefix) + [
            p for k, v in node.items() for p in _leaf_paths(v, f"{prefix}{k}.")
        ]
    if isinstance(node, list):
        return [prefix.rstrip(".")] + [p for i, v in enumerate(node) for p in _leaf_paths(v, f"{prefix}{i}.")]
    return [prefix.rstrip(".")]


SAMPLE_PATHS = _leaf_paths(sample_application(date(2030, 1, 1)))


@given(data=json_values, today=todays)
def test_nothing_but_application_invalid_leaves_parse_application(data: Any, today: date) -> None:
    try:
        parse_application(data, today=today)
    except ApplicationInvalid as exc:
        assert exc.fields and all(isinstance(f["path"], str) and f["message"] for f in exc.fields)


@given(today=todays, path=st.sampled_from(SAMPLE_PATHS), value=json_values)
def test_a_body_with_any_field_replaced_is_accepted_or_refused_naming_fields(
    today: date, path: str, value: Any
) -> None:
    data = body_for(today)
    put(data, path, value)
    try:
        parsed = parse_application(data, today=today)
    except ApplicationInvalid as exc:
        paths = [field["path"] for field in exc.fields]
        assert paths
        assert_each_named_once(paths)
        # The field replaced, something inside it, or a field a rule between fields names.
        related: Callable[[str], bool] = lambda p: p == path or p.startswith(f"{path}.") or path.startswith(f"{p}.")  # noqa: E731
        assert any(related(p) for p in paths) or set(paths) <= CROSS_FIELD_PATHS, (path, paths)
    else:
        # Normalisation is idempotent: what was stored parses back to itself.
        assert parse_application(parsed.to_payload(), today=today) == parsed


# Fields named by rules between fields (rules.py) when another field changes.
CROSS_FIELD_PATHS = {
    "vehicle.vin",
    "vehicle.document.series",
    "vehicle.document.number",
    "vehicle.document.issued",
    "owner.passport.issued",
    "drivers",
    "drivers.0.birth_date",
    "drivers.0.license.issued",
    "drivers.0.experience_since",
}
