"""Unit tests of the application request schema (shared.intake.schema): pure, no I/O.

Every date is computed from a fixed ``TODAY`` so the tests never depend on the clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pydantic
import pytest

from shared.intake.regions import REGION_CODES, is_region_code, subject_of
from shared.intake.schema import (
    ApplicationIn,
    ApplicationInvalid,
    Driver,
    Vehicle,
    parse_application,
)
from shared.platform.clock import MOSCOW, moscow_today
from tests.support.samples import sample_application

TODAY = date(2026, 3, 10)
START = TODAY + timedelta(days=30)


@pytest.fixture(autouse=True)
def _valid_sample_stays_untouched() -> Iterator[None]:
    snapshot = json.dumps(VALID)
    yield
    assert json.dumps(VALID) == snapshot, "a test mutated the shared sample"


def iso(day: date) -> str:
    return day.isoformat()


VALID: dict[str, Any] = sample_application(TODAY, start_in_days=(START - TODAY).days)

_SECOND_DRIVER: dict[str, Any] = {
    "last_name": "Петрова",
    "first_name": "Анна",
    "birth_date": "1990-07-20",
    "license": {"series": "77АВ", "number": "654321", "issued": "2010-08-01"},
    "experience_since": "2010-08-01",
}


def first_driver() -> dict[str, Any]:
    return copy.deepcopy(VALID["drivers"][0])


def second_driver() -> dict[str, Any]:
    return copy.deepcopy(_SECOND_DRIVER)


def body(**changes: Any) -> dict[str, Any]:
    """A fresh valid body; ``changes`` maps dotted paths (``__`` for dots) to new values."""
    data = copy.deepcopy(VALID)
    for path, value in changes.items():
        put(data, path.replace("__", "."), value)
    return data


def _split(path: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in path.split(".")]


def put(data: Any, path: str, value: Any) -> None:
    *head, last = _split(path)
    for part in head:
        data = data[part]
    data[last] = value


def drop(data: Any, path: str) -> None:
    *head, last = _split(path)
    for part in head:
        data = data[part]
    del data[last]


def parse(data: object, today: date = TODAY) -> ApplicationIn:
    return parse_application(data, today=today)


def errors(data: object, today: date = TODAY) -> dict[str, str]:
    with pytest.raises(ApplicationInvalid) as caught:
        parse_application(data, today=today)
    paths = [field["path"] for field in caught.value.fields]
    assert len(paths) == len(set(paths)), f"a path is listed twice: {paths}"
    return {field["path"]: field["message"] for field in caught.value.fields}


def error_paths(data: object) -> set[str]:
    return set(errors(data))


# --- the valid sample ------------------------------------------------------------------------


def test_valid_sample_is_accepted_and_payload_is_normalised_api_shape() -> None:
    application = parse(body())
    payload = application.to_payload()
    assert payload == VALID
    assert list(payload) == ["vehicle", "owner", "drivers", "unlimited_drivers", "period"]
    assert json.loads(json.dumps(payload, ensure_ascii=False)) == payload
    assert application.period.start_date == START
    assert application.vehicle.document.issued == date(2019, 5, 1)
    assert isinstance(application.drivers, tuple) and isinstance(application.drivers[0], Driver)


def test_application_is_frozen() -> None:
    application = parse(body())
    with pytest.raises(pydantic.ValidationError):
        application.unlimited_drivers = True  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        application.vehicle.vin = "XW7BF4FK60S000000"  # type: ignore[misc]


def test_payload_omits_absent_optional_fields() -> None:
    data = body()
    drop(data, "vehicle.vin")
    drop(data, "vehicle.plate")
    drop(data, "owner.middle_name")
    put(data, "drivers.0.middle_name", None)
    put(data, "vehicle.body_number", "gx1000123456")
    payload = parse(data).to_payload()
    assert "vin" not in payload["vehicle"] and "plate" not in payload["vehicle"]
    assert "chassis_number" not in payload["vehicle"]
    assert payload["vehicle"]["body_number"] == "GX1000123456"
    assert "middle_name" not in payload["owner"]
    assert "middle_name" not in payload["drivers"][0]


def test_stored_payload_reloads_without_today_rules() -> None:
    payload = parse(body()).to_payload()
    # Months later the start date is in the past; loading a stored payload checks formats only.
    assert ApplicationIn.model_validate(payload).to_payload() == payload


def test_today_may_be_given_as_datetime() -> None:
    assert parse_application(body(), today=datetime(2026, 3, 10, 23, 59, tzinfo=MOSCOW)).period.months == 12


def test_today_is_required_to_be_a_date() -> None:
    with pytest.raises(TypeError):
        parse_application(body(), today=None)  # type: ignore[arg-type]


def test_json_schema_builds() -> None:
    schema = ApplicationIn.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"vehicle", "owner", "period"}


# --- strict types and unknown fields -------------------------------------------------------------


@pytest.mark.parametrize("value", [[], "body", None, 1, 1.5, True, [VALID]])
def test_body_that_is_not_an_object_is_one_error_at_root(value: object) -> None:
    assert errors(value) == {"": "must be a JSON object"}


@pytest.mark.parametrize("field", ["status", "premium", "partner_id", "id"])
def test_privileged_fields_are_rejected_never_bound(field: str) -> None:
    data = body()
    data[field] = "complete"
    assert errors(data) == {field: "is not an allowed field"}


def test_unknown_nested_field_is_reported_on_its_path() -> None:
    data = body()
    data["vehicle"]["document"]["owner"] = "x"
    data["drivers"][0]["kbm"] = "13"
    assert errors(data) == {
        "vehicle.document.owner": "is not an allowed field",
        "drivers.0.kbm": "is not an allowed field",
    }


def test_unknown_key_is_echoed_printable_and_short() -> None:
    data = body()
    data["bad\r\nkey\x00" + "x" * 200] = 1
    (path,) = errors(data)
    assert "\r" not in path and "\n" not in path and "\x00" not in path
    assert len(path) <= 65


def test_string_is_not_a_year() -> None:
    assert errors(body(vehicle__year="2019")) == {"vehicle.year": "must be an integer"}


def test_bool_is_not_an_int() -> None:
    assert errors(body(vehicle__power_hp=True)) == {"vehicle.power_hp": "must be an integer"}


@pytest.mark.parametrize("value", [181.5, float("inf"), float("nan"), "181", None])
def test_power_must_be_a_true_integer(value: object) -> None:
    assert errors(body(vehicle__power_hp=value)) == {"vehicle.power_hp": "must be an integer"}


@pytest.mark.parametrize("field", ["vehicle__power_hp", "vehicle__year", "period__months"])
def test_a_whole_number_written_with_a_fraction_is_that_integer(field: str) -> None:
    # JSON Schema's integer (the document's type) is any number without a fraction: 12.0 is 12.
    value = {"vehicle__power_hp": 181, "vehicle__year": 2019, "period__months": 12}[field]
    assert parse(body(**{field: float(value)})).to_payload() == parse(body()).to_payload()


def test_huge_integer_is_out_of_range_not_a_crash() -> None:
    assert errors(body(vehicle__year=10**5000)) == {"vehicle.year": "must be between 1900 and 2027"}


def test_null_only_where_optional() -> None:
    assert errors(body(owner__first_name=None)) == {"owner.first_name": "must be a string"}
    assert errors(body(unlimited_drivers=None)) == {"unlimited_drivers": "must be true or false"}
    assert errors(body(vehicle__document=None)) == {"vehicle.document": "must be an object"}


def test_missing_required_field() -> None:
    data = body()
    drop(data, "owner.passport.number")
    drop(data, "period")
    assert errors(data) == {"owner.passport.number": "is required", "period": "is required"}


def test_wrong_container_types() -> None:
    assert errors(body(vehicle=[])) == {"vehicle": "must be an object"}
    assert errors(body(drivers={"0": second_driver()})) == {"drivers": "must be a list"}
    assert errors(body(drivers=["driver"])) == {"drivers.0": "must be an object"}


def test_unlimited_drivers_must_be_a_boolean() -> None:
    assert errors(body(unlimited_drivers="false")) == {"unlimited_drivers": "must be true or false"}
    assert errors(body(unlimited_drivers=0)) == {"unlimited_drivers": "must be true or false"}


# --- vehicle -----------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["A", "C", "D", "BE"])
def test_other_categories_are_not_supported_yet(category: str) -> None:
    assert errors(body(vehicle__category=category)) == {
        "vehicle.category": "is not supported yet; only category B is accepted"
    }


@pytest.mark.parametrize("category", ["b", "Z", "", 2, None])
def test_unknown_category(category: object) -> None:
    assert errors(body(vehicle__category=category)) == {"vehicle.category": "only category B is accepted"}


@pytest.mark.parametrize(("field", "value"), [("make", ""), ("make", "   "), ("model", "X" * 61)])
def test_make_and_model_bounds(field: str, value: str) -> None:
    assert set(errors(body(**{f"vehicle__{field}": value}))) == {f"vehicle.{field}"}


def test_make_and_model_are_printable_and_trimmed() -> None:
    trimmed = parse(body(vehicle__make="  Mercedes-Benz ", vehicle__model="X" * 60))
    assert trimmed.vehicle.make == "Mercedes-Benz"
    assert errors(body(vehicle__model="Cam\x00ry")) == {
        "vehicle.model": "must not contain control or invisible formatting characters"
    }
    assert set(errors(body(vehicle__model="Cam\u2028ry"))) == {"vehicle.model"}


@pytest.mark.parametrize(("year", "ok"), [(1899, False), (1900, True), (2027, True), (2028, False)])
def test_year_bounds(year: int, ok: bool) -> None:
    data = body(vehicle__year=year, vehicle__document__issued="2026-01-01")
    if ok:
        assert parse(data).vehicle.year == year
    else:
        assert errors(data) == {"vehicle.year": "must be between 1900 and 2027"}


@pytest.mark.parametrize(("power", "ok"), [(0, False), (1, True), (2000, True), (2001, False), (-5, False)])
def test_power_bounds(power: int, ok: bool) -> None:
    if ok:
        assert parse(body(vehicle__power_hp=power)).vehicle.power_hp == power
    else:
        assert errors(body(vehicle__power_hp=power)) == {"vehicle.power_hp": "must be between 1 and 2000"}


def test_vin_is_upper_cased_and_cyrillic_look_alikes_folded() -> None:
    assert parse(body(vehicle__vin="xw7bf4fk60s123456")).vehicle.vin == "XW7BF4FK60S123456"
    # Typed on a Russian keyboard: Х, В, К, С are Cyrillic here.
    assert parse(body(vehicle__vin="ХW7ВF4FК60С123456")).vehicle.vin == "XW7BF4FK60C123456"


@pytest.mark.parametrize(
    "vin",
    [
        "XW7BF4FK60S12345",
        "XW7BF4FK60S1234567",
        "XW7BF4FK60I123456",
        "OW7BF4FK60S123456",
        "QW7BF4FK60S12345!",
        "",
    ],
)
def test_bad_vin(vin: str) -> None:
    message = "must be 17 characters from A-H, J-N, P, R-Z, 0-9"
    assert errors(body(vehicle__vin=vin)) == {"vehicle.vin": message}


def test_vin_may_be_absent_with_a_body_or_chassis_number() -> None:
    data = body(vehicle__vin=None, vehicle__chassis_number="fr-123")
    assert parse(data).vehicle.chassis_number == "FR-123"
    data = body()
    drop(data, "vehicle.vin")
    put(data, "vehicle.body_number", "ABC123")
    assert parse(data).vehicle.vin is None


def test_vin_required_without_body_or_chassis_number() -> None:
    data = body()
    drop(data, "vehicle.vin")
    assert errors(data) == {"vehicle.vin": "is required unless body_number or chassis_number is given"}
    assert errors(body(vehicle__vin=None)) == {
        "vehicle.vin": "is required unless body_number or chassis_number is given"
    }


def test_invalid_body_number_is_reported_on_itself_not_on_vin() -> None:
    data = body(vehicle__body_number="№123")
    drop(data, "vehicle.vin")
    assert errors(data) == {"vehicle.body_number": "must be 1 to 20 Latin letters, digits or hyphens"}


@pytest.mark.parametrize("value", ["", "-", "A" * 21, "АБВ123", "AB_12"])
def test_bad_frame_numbers(value: str) -> None:
    assert set(errors(body(vehicle__chassis_number=value))) == {"vehicle.chassis_number"}


@pytest.mark.parametrize(
    ("plate", "stored"),
    [
        ("A123BC777", "А123ВС777"),
        ("a123bc77", "А123ВС77"),
        ("а123вс 02", "А123ВС02"),
        ("Х001УХ750", "Х001УХ750"),
        ("m999kx977", "М999КХ977"),
        ("А123Bс116", "А123ВС116"),
    ],
)
def test_plate_latin_look_alikes_are_folded_to_cyrillic(plate: str, stored: str) -> None:
    assert parse(body(vehicle__plate=plate)).vehicle.plate == stored


@pytest.mark.parametrize(
    "plate", ["Б123ВС77", "А000ВС77", "А12ВС77", "А1234ВС77", "АВ123С77", "А123ВС7", "А123ВС7777", "A123ZZ77"]
)
def test_plate_format(plate: str) -> None:
    (message,) = errors(body(vehicle__plate=plate)).values()
    assert message.startswith("must be a letter, 3 digits (not 000)")


@pytest.mark.parametrize("plate", ["А123ВС00", "А123ВС160", "А123ВС077", "А123ВС200"])
def test_plate_region_must_be_real(plate: str) -> None:
    assert errors(body(vehicle__plate=plate)) == {"vehicle.plate": "has an unknown region code"}


def test_plate_may_be_absent_or_null() -> None:
    assert parse(body(vehicle__plate=None)).vehicle.plate is None


def test_purpose() -> None:
    assert parse(body(vehicle__purpose="taxi")).vehicle.purpose == "taxi"
    assert errors(body(vehicle__purpose="rental")) == {
        "vehicle.purpose": 'is not supported yet; must be "personal" or "taxi"'
    }
    assert errors(body(vehicle__purpose="Personal")) == {"vehicle.purpose": 'must be "personal" or "taxi"'}


def test_document_series_is_folded_to_cyrillic() -> None:
    assert parse(body(vehicle__document__series="77xx")).vehicle.document.series == "77ХХ"
    assert parse(body(vehicle__document__series="9901")).vehicle.document.series == "9901"


@pytest.mark.parametrize("series", ["7ХХ", "77ХХХ", "ХХ77", "77ZZ", ""])
def test_bad_document_series(series: str) -> None:
    assert errors(body(vehicle__document__series=series)) == {
        "vehicle.document.series": "must be 2 digits followed by 2 letters or digits"
    }


def test_sts_and_pts_need_a_series_and_six_digits() -> None:
    data = body(vehicle__document__type="pts")
    drop(data, "vehicle.document.series")
    put(data, "vehicle.document.number", "12345")
    assert errors(data) == {
        "vehicle.document.series": "is required for sts and pts",
        "vehicle.document.number": "must be 6 digits for pts",
    }


def test_epts_is_fifteen_digits_without_series() -> None:
    data = body(vehicle__document__type="epts", vehicle__document__number="164301012345678")
    drop(data, "vehicle.document.series")
    assert parse(data).to_payload()["vehicle"]["document"] == {
        "type": "epts",
        "number": "164301012345678",
        "issued": "2019-05-01",
    }
    assert errors(body(vehicle__document__type="epts")) == {
        "vehicle.document.series": "must be absent for an electronic PTS (epts)",
        "vehicle.document.number": "must be 15 digits for epts",
    }


def test_document_field_error_wins_over_rule_on_same_field() -> None:
    assert errors(body(vehicle__document__type="epts", vehicle__document__series="7")) == {
        "vehicle.document.series": "must be 2 digits followed by 2 letters or digits",
        "vehicle.document.number": "must be 15 digits for epts",
    }


def test_document_type_and_number_format() -> None:
    assert errors(body(vehicle__document__type="STS")) == {"vehicle.document.type": 'must be "sts", "pts" or "epts"'}
    assert errors(body(vehicle__document__number="12345a")) == {"vehicle.document.number": "must contain only digits"}


def test_document_issue_date_window() -> None:
    assert parse(body(vehicle__document__issued="2018-01-01")).vehicle.document.issued == date(2018, 1, 1)
    assert errors(body(vehicle__document__issued="2017-12-31")) == {
        "vehicle.document.issued": "must not be before 2018-01-01 (a year before the model year)"
    }
    assert errors(body(vehicle__document__issued=iso(TODAY + timedelta(days=1)))) == {
        "vehicle.document.issued": "must not be in the future"
    }


def test_document_issue_rule_skipped_when_year_is_invalid() -> None:
    assert errors(body(vehicle__year="2019", vehicle__document__issued="1990-01-01")) == {
        "vehicle.year": "must be an integer"
    }


# --- dates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1985-3-14", "must be a date in YYYY-MM-DD format"),
        ("14.03.1985", "must be a date in YYYY-MM-DD format"),
        ("19850314", "must be a date in YYYY-MM-DD format"),
        ("1985-03-14T00:00:00", "must be a date in YYYY-MM-DD format"),
        ("١٩٨٥-٠٣-١٤", "must be a date in YYYY-MM-DD format"),
        (19850314, "must be a date in YYYY-MM-DD format"),
        (None, "must be a date in YYYY-MM-DD format"),
        ("1985-02-29", "must be a real calendar date"),
        ("1985-13-01", "must be a real calendar date"),
        ("0000-01-01", "must be a real calendar date"),
        ("1899-12-31", "must not be before 1900-01-01"),
    ],
)
def test_date_format(value: object, message: str) -> None:
    assert errors(body(owner__passport__issued=value)) == {"owner.passport.issued": message}


# --- owner -------------------------------------------------------------------------------------------


def test_owner_is_eighteen_exactly_today() -> None:
    eighteen = date(TODAY.year - 18, TODAY.month, TODAY.day)
    ok = body(owner__birth_date=iso(eighteen), owner__passport__issued=iso(date(TODAY.year - 4, 3, 10)))
    assert parse(ok).owner.birth_date == eighteen
    short = body(owner__birth_date=iso(eighteen + timedelta(days=1)), owner__passport__issued="2023-01-01")
    assert errors(short) == {"owner.birth_date": "the owner must be at least 18 years old"}


def test_owner_birth_date_in_future() -> None:
    assert errors(body(owner__birth_date=iso(TODAY + timedelta(days=1)))) == {
        "owner.birth_date": "must not be in the future"
    }


def test_passport_issued_from_the_14th_birthday() -> None:
    assert parse(body(owner__passport__issued="1999-03-14")).owner.passport.issued == date(1999, 3, 14)
    assert errors(body(owner__passport__issued="1999-03-13")) == {
        "owner.passport.issued": "must not be before the owner's 14th birthday"
    }


def test_passport_rule_skipped_when_birth_date_invalid() -> None:
    assert errors(body(owner__birth_date="1985-02-30", owner__passport__issued="1986-01-01")) == {
        "owner.birth_date": "must be a real calendar date"
    }


def test_passport_formats() -> None:
    assert parse(body(owner__passport__series="45 10")).owner.passport.series == "4510"
    assert errors(body(owner__passport__series="451", owner__passport__number="12345б")) == {
        "owner.passport.series": "must be 4 digits",
        "owner.passport.number": "must be 6 digits",
    }
    assert errors(body(owner__passport__issued=iso(TODAY + timedelta(days=1)))) == {
        "owner.passport.issued": "must not be in the future"
    }


@pytest.mark.parametrize("code", ["77", "02", "102", "750", "977", "95", "92"])
def test_registration_region_code_accepts_real_codes(code: str) -> None:
    assert parse(body(owner__registration__region_code=code)).owner.registration.region_code == code


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("7", "must be a region code of 2 or 3 digits"),
        ("7777", "must be a region code of 2 or 3 digits"),
        ("7a", "must be a region code of 2 or 3 digits"),
        ("00", "is not a known region code"),
        ("160", "is not a known region code"),
        (77, "must be a string"),
    ],
)
def test_registration_region_code_rejects(code: object, message: str) -> None:
    assert errors(body(owner__registration__region_code=code)) == {"owner.registration.region_code": message}


@pytest.mark.parametrize("city", ["Санкт-Петербург", "г. Москва", "Ростов-на-Дону", "Посёлок 2-й Участок"])
def test_city_accepts(city: str) -> None:
    assert parse(body(owner__registration__city=city)).owner.registration.city == city


@pytest.mark.parametrize("city", ["", "Moscow", "Москва!", "...", "М" * 101, "Мос\x00ква"])
def test_city_rejects(city: str) -> None:
    assert set(errors(body(owner__registration__city=city))) == {"owner.registration.city"}


NOT_CYRILLIC = "must be Cyrillic letters, with single spaces, hyphens or apostrophes between them"

# --- names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("  Иванов  ", "Иванов"),
        ("Салтыков-Щедрин", "Салтыков-Щедрин"),
        ("Анна\u00a0Мария", "Анна Мария"),
        ("Анна  Мария", "Анна Мария"),
        ("Д’Артаньян", "Д'Артаньян"),
        ("Хмельниц\u0438\u0306", "Хмельницй"),
        ("Ёлкин", "Ёлкин"),
        ("Я" * 100, "Я" * 100),
    ],
)
def test_names_are_nfkc_normalised_and_trimmed(raw: str, stored: str) -> None:
    assert parse(body(owner__last_name=raw)).to_payload()["owner"]["last_name"] == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("Ив\x00анов", "must not contain control or invisible formatting characters"),
        ("Ив\u200bанов", "must not contain control or invisible formatting characters"),
        ("\u202eвонавИ", "must not contain control or invisible formatting characters"),
        ("Ив\ud800анов", "must not contain control or invisible formatting characters"),
        ("Иванов\n", "must not contain control or invisible formatting characters"),
        ("Ivanov", NOT_CYRILLIC),
        ("Ивaнов", NOT_CYRILLIC),
        ("Иванов😀", NOT_CYRILLIC),
        ("Иванов2", NOT_CYRILLIC),
        ("-", NOT_CYRILLIC),
        ("Анна--Мария", NOT_CYRILLIC),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("Я" * 101, "must be at most 100 characters"),
        ("Я" * 10_000, "must be at most 100 characters"),
    ],
)
def test_bad_names(raw: str, message: str) -> None:
    assert errors(body(owner__last_name=raw)) == {"owner.last_name": message}


def test_bad_names_in_every_name_field_are_each_listed() -> None:
    data = body(owner__first_name="\x00", owner__middle_name="Ivanovich", drivers__0__last_name="\u200b")
    assert error_paths(data) == {"owner.first_name", "owner.middle_name", "drivers.0.last_name"}


# --- drivers -----------------------------------------------------------------------------------------


def young_driver(birth: date) -> dict[str, Any]:
    sixteenth = date(birth.year + 16, birth.month, birth.day)
    return {
        "last_name": "Сидоров",
        "first_name": "Пётр",
        "birth_date": iso(birth),
        "license": {"series": "9922", "number": "000001", "issued": iso(sixteenth)},
        "experience_since": iso(sixteenth),
    }


def test_driver_eighteen_exactly_on_policy_start_passes() -> None:
    birth = date(START.year - 18, START.month, START.day)
    assert parse(body(drivers=[young_driver(birth)])).drivers[0].birth_date == birth


def test_driver_one_day_short_of_eighteen_on_policy_start_fails() -> None:
    birth = date(START.year - 18, START.month, START.day) + timedelta(days=1)
    assert errors(body(drivers=[young_driver(birth)])) == {
        "drivers.0.birth_date": "the driver must be at least 18 years old on the policy start date"
    }


def test_driver_age_rule_skipped_when_start_date_invalid() -> None:
    birth = date(START.year - 17, 1, 1)
    assert errors(body(drivers=[young_driver(birth)], period__start_date="soon")) == {
        "period.start_date": "must be a date in YYYY-MM-DD format"
    }


def test_driver_born_on_29_february_is_eighteen_on_28_february() -> None:
    # A term in years ending in a month without that day ends on its last day (Civil Code art. 192).
    today = date(2026, 2, 1)
    data = body(drivers=[young_driver(date(2008, 2, 29))], period__start_date="2026-02-28")
    assert parse(data, today).drivers[0].birth_date == date(2008, 2, 29)
    put(data, "period.start_date", "2026-02-27")
    assert errors(data, today) == {
        "drivers.0.birth_date": "the driver must be at least 18 years old on the policy start date"
    }


def test_licence_and_experience_from_the_16th_birthday() -> None:
    data = body(drivers__0__license__issued="2001-03-13", drivers__0__experience_since="2001-03-13")
    assert errors(data) == {
        "drivers.0.license.issued": "must not be before the driver's 16th birthday",
        "drivers.0.experience_since": "must not be before the driver's 16th birthday",
    }
    data = body(drivers__0__license__issued="2001-03-14", drivers__0__experience_since="2001-03-14")
    assert parse(data).drivers[0].experience_since == date(2001, 3, 14)


def test_licence_and_experience_not_in_future() -> None:
    tomorrow = iso(TODAY + timedelta(days=1))
    assert errors(body(drivers__0__license__issued=tomorrow, drivers__0__experience_since=tomorrow)) == {
        "drivers.0.license.issued": "must not be in the future",
        "drivers.0.experience_since": "must not be in the future",
    }


def test_licence_rules_skipped_when_birth_date_invalid() -> None:
    assert errors(body(drivers__0__birth_date="1985-14-01", drivers__0__license__issued="1980-01-01")) == {
        "drivers.0.birth_date": "must be a real calendar date"
    }


@pytest.mark.parametrize(
    ("series", "stored"), [("7701", "7701"), ("77АВ", "77АВ"), ("77ab", "77АВ"), ("77 01", "7701")]
)
def test_licence_series_accepts(series: str, stored: str) -> None:
    assert parse(body(drivers__0__license__series=series)).drivers[0].license.series == stored


@pytest.mark.parametrize("series", ["770", "77012", "АВ77", "77ZZ", "7А01", "77Б1"])
def test_licence_series_rejects(series: str) -> None:
    assert errors(body(drivers__0__license__series=series)) == {
        "drivers.0.license.series": "must be 2 digits followed by 2 digits or 2 Cyrillic letters"
    }


def test_licence_number_is_six_digits() -> None:
    assert errors(body(drivers__0__license__number="12345")) == {"drivers.0.license.number": "must be 6 digits"}


def test_duplicate_licence_is_reported_on_the_second_driver() -> None:
    twin = second_driver()
    twin["license"] = {"series": "77 01", "number": "123456", "issued": "2010-08-01"}
    data = body(drivers=[first_driver(), second_driver(), twin])
    assert errors(data) == {"drivers.2.license": "is the same licence as drivers.0.license"}


def test_five_drivers_pass_six_fail() -> None:
    five = [young_driver(date(1980 + i, 1, 1)) for i in range(5)]
    for i, driver in enumerate(five):
        driver["license"]["number"] = f"00000{i}"
    assert len(parse(body(drivers=five)).drivers) == 5
    six = [*five, second_driver()]
    assert errors(body(drivers=six)) == {"drivers": "must list at most 5 drivers"}


def test_unlimited_with_drivers_is_reported_on_drivers() -> None:
    assert errors(body(unlimited_drivers=True)) == {"drivers": "must be empty or absent when unlimited_drivers is true"}


def test_unlimited_with_empty_or_absent_drivers_passes() -> None:
    assert parse(body(unlimited_drivers=True, drivers=[])).to_payload()["drivers"] == []
    data = body(unlimited_drivers=True)
    drop(data, "drivers")
    application = parse(data)
    assert application.drivers == () and application.unlimited_drivers is True


def test_named_drivers_required_when_not_unlimited() -> None:
    message = "must list 1 to 5 drivers unless unlimited_drivers is true"
    assert errors(body(drivers=[])) == {"drivers": message}
    data = body()
    drop(data, "drivers")
    drop(data, "unlimited_drivers")
    assert errors(data) == {"drivers": message}


def test_drivers_rule_skipped_when_unlimited_invalid() -> None:
    assert errors(body(unlimited_drivers="yes", drivers=[])) == {"unlimited_drivers": "must be true or false"}


def test_every_driver_is_checked() -> None:
    bad = second_driver()
    bad["birth_date"] = "1990-02-30"
    bad["license"]["number"] = "x"
    data = body(drivers=[first_driver(), bad], drivers__0__first_name="Ivan")
    assert errors(data) == {
        "drivers.0.first_name": NOT_CYRILLIC,
        "drivers.1.birth_date": "must be a real calendar date",
        "drivers.1.license.number": "must be 6 digits",
    }


# --- period ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "ok"), [(-1, False), (0, False), (1, True), (60, True), (61, False)])
def test_policy_start_window(days: int, ok: bool) -> None:
    data = body(period__start_date=iso(TODAY + timedelta(days=days)))
    if ok:
        assert parse(data).period.start_date == TODAY + timedelta(days=days)
    else:
        assert errors(data) == {
            "period.start_date": "must be from tomorrow to 60 days ahead (2026-03-11 to 2026-05-09)"
        }


@pytest.mark.parametrize(("months", "ok"), [(2, False), (3, True), (12, True), (13, False)])
def test_months_bounds(months: int, ok: bool) -> None:
    if ok:
        assert parse(body(period__months=months)).period.months == months
    else:
        assert errors(body(period__months=months)) == {"period.months": "must be between 3 and 12"}


def test_months_must_be_integer() -> None:
    assert errors(body(period__months="12")) == {"period.months": "must be an integer"}
    assert errors(body(period__months=12.5)) == {"period.months": "must be an integer"}


# --- many errors at once -----------------------------------------------------------------------------


def test_several_broken_rules_are_all_listed_once_in_body_order() -> None:
    data = body(
        vehicle__vin="bad",
        vehicle__year=True,
        vehicle__document__type="epts",
        owner__last_name="Ив\x00анов",
        owner__registration__region_code="160",
        unlimited_drivers=True,
        drivers__0__birth_date="2010-02-30",
        period__months=1e309,
        period__start_date=iso(TODAY),
    )
    data["status"] = "complete"
    with pytest.raises(ApplicationInvalid) as caught:
        parse(data)
    assert [field["path"] for field in caught.value.fields] == [
        "vehicle.year",
        "vehicle.vin",
        "vehicle.document.series",
        "vehicle.document.number",
        "owner.last_name",
        "owner.registration.region_code",
        "drivers",
        "drivers.0.birth_date",
        "period.start_date",
        "period.months",
        "status",
    ]
    assert all(field["message"] for field in caught.value.fields)


def test_exception_text_names_paths_but_no_values() -> None:
    with pytest.raises(ApplicationInvalid) as caught:
        parse(body(owner__passport__number="98765x"))
    assert "owner.passport.number" in str(caught.value)
    assert "98765" not in str(caught.value)


# --- robustness: nothing but ApplicationInvalid, whatever the input ----------------------------------


def _leaves(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*prefix, key))]
    if isinstance(node, list):
        return [leaf for index, value in enumerate(node) for leaf in _leaves(value, (*prefix, index))]
    return [prefix]


def _deep_list(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


NEVER_VALID: list[Any] = [
    [],
    {},
    1.5,
    float("nan"),
    float("inf"),
    -(10**400),
    "\x00",
    "\ud800",
    "\u202e",
    "x" * 70_000,
    _deep_list(100_000),
]


@pytest.mark.parametrize("value", NEVER_VALID, ids=lambda value: type(value).__name__)
def test_hostile_value_in_every_field_is_reported_on_that_field(value: Any) -> None:
    data = body(drivers=[first_driver(), second_driver()])
    for leaf in _leaves(data):
        mutated = copy.deepcopy(data)
        target: Any = mutated
        for part in leaf[:-1]:
            target = target[part]
        target[leaf[-1]] = value
        path = ".".join(str(part) for part in leaf)
        assert path in errors(mutated), path


@pytest.mark.parametrize(
    "value", [None, True, False, 0, -1, 10**30, "", " ", "null", "0", "А", _deep_list(3), {"a": {"b": []}}]
)
def test_odd_value_in_every_field_never_raises_anything_else(value: Any) -> None:
    data = body(drivers=[first_driver(), second_driver()])
    for leaf in _leaves(data):
        mutated = copy.deepcopy(data)
        target: Any = mutated
        for part in leaf[:-1]:
            target = target[part]
        target[leaf[-1]] = value
        try:
            parse(mutated)
        except ApplicationInvalid as exc:
            paths = [field["path"] for field in exc.fields]
            assert len(paths) == len(set(paths))


def test_odd_structures_never_raise_anything_else() -> None:
    cyclic: dict[str, Any] = body()
    cyclic["vehicle"]["document"] = cyclic
    cases: list[object] = [
        {},
        {1: "x", None: "y"},
        body(vehicle=_deep_list(100_000)),
        body(drivers=_deep_list(100_000)),
        body(drivers=[None] * 1000),
        cyclic,
        {"vehicle": VALID},
    ]
    for case in cases:
        with pytest.raises(ApplicationInvalid):
            parse(case)


# --- regions and Moscow time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["01", "02", "102", "702", "116", "716", "750", "790", "777", "797", "799", "977", "82", "92", "95"],
)
def test_real_region_codes(code: str) -> None:
    assert is_region_code(code)
    assert subject_of(code)


@pytest.mark.parametrize("code", ["", "0", "00", "2", "002", "077", "160", "7777", " 77", "77 ", "1O2"])
def test_unreal_region_codes(code: str) -> None:
    assert not is_region_code(code)
    assert subject_of(code) is None


def test_every_two_digit_subject_code_is_known() -> None:
    assert {f"{n:02d}" for n in range(1, 100)} <= REGION_CODES
    for code in REGION_CODES:
        assert code.isascii() and code.isdigit() and len(code) in (2, 3), code
        assert len(code) == 2 or code[0] != "0", code
    assert not is_region_code(77)  # type: ignore[arg-type]


def test_moscow_today() -> None:
    assert MOSCOW.key == "Europe/Moscow"
    before = datetime.now(MOSCOW).date()
    today = moscow_today()
    assert type(today) is date
    assert before <= today <= datetime.now(MOSCOW).date()


def test_vehicle_model_field_is_named_model() -> None:
    # "model" is a real field (the car's model), not pydantic's namespace.
    assert "model" in Vehicle.model_fields
