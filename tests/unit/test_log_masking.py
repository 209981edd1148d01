"""Log lines keep ids whole and never carry personal data, whatever field or free text it is put in."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.platform.log_setup import JsonFormatter, PlainFormatter, configure_logging, mask_personal_data
from tests.support.samples import sample_application

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("shared", "aggregator_api", "core_app", "quote_workers")
SECRET = "unit-test-token-secret"

# The sample applicant (tests/support/samples.py) and a contact of the same person.
SAMPLE = sample_application()
OWNER = SAMPLE["owner"]
PHONE, PHONE_LOCAL, EMAIL = "+79161234567", "8 (916) 123-45-67", "ivanov.ivan@example.ru"
PASSPORT = OWNER["passport"]
LICENCE = SAMPLE["drivers"][0]["license"]
STS = SAMPLE["vehicle"]["document"]
FULL_NAME = f"{OWNER['last_name']} {OWNER['first_name']} {OWNER['middle_name']}"
BORN = OWNER["birth_date"]
BORN_RU = ".".join(reversed(BORN.split("-")))
# Never in a line, in any of these spellings.
PERSONAL: tuple[str, ...] = (
    OWNER["last_name"], OWNER["first_name"], OWNER["middle_name"], FULL_NAME, FULL_NAME.lower(), FULL_NAME.upper(),
    BORN, BORN_RU, PHONE, PHONE[1:], "916) 123-45-67", "9161234567", EMAIL,
    f"{PASSPORT['series']} {PASSPORT['number']}", f"{LICENCE['series']} {LICENCE['number']}",
    f"{LICENCE['series']}{LICENCE['number']}", f"{STS['series']}{STS['number']}",
    SAMPLE["vehicle"]["vin"], SAMPLE["vehicle"]["plate"], "A123BC777", "а123вс777",
    OWNER["registration"]["city"],
)  # fmt: skip
# The same data as a person or a careless log call would write it into free text.
FREE_TEXTS: tuple[str, ...] = (
    f"{FULL_NAME}, {BORN}, {PHONE}",
    f"owner {FULL_NAME.lower()} born {BORN_RU}, call {PHONE_LOCAL} or {EMAIL}",
    f"{OWNER['first_name']} {OWNER['middle_name']} {OWNER['last_name']}",
    f"surname {OWNER['last_name']} of {OWNER['registration']['city']}",
    f"passport {PASSPORT['series']} {PASSPORT['number']}, passport {PASSPORT['series']}{PASSPORT['number']}",
    f"licence {LICENCE['series']}{LICENCE['number']}, licence {LICENCE['series']} {LICENCE['number']}",
    f"sts {STS['series']}{STS['number']} vin {SAMPLE['vehicle']['vin']} plate {SAMPLE['vehicle']['plate']}",
    "plates A123BC777 and а123вс777 and А 123 ВС 777",
    f"body {SAMPLE}",
    f"json {json.dumps(SAMPLE, ensure_ascii=False)}",
    f"query last_name={OWNER['last_name']}&birth_date={BORN}&phone={PHONE}&passport_number={PASSPORT['number']}",
)
# Every personal field of the sample, under its own key, as a log call could pass it.
PERSONAL_FIELDS: dict[str, Any] = {
    "last_name": OWNER["last_name"], "first_name": OWNER["first_name"], "middle_name": OWNER["middle_name"],
    "full_name": FULL_NAME, "surname": OWNER["last_name"], "patronymic": OWNER["middle_name"], "birth_date": BORN,
    "phone": PHONE, "email": EMAIL, "passport": f"{PASSPORT['series']} {PASSPORT['number']}",
    "passport_series": PASSPORT["series"], "passport_number": PASSPORT["number"],
    "licence": f"{LICENCE['series']}{LICENCE['number']}", "license_number": LICENCE["number"],
    "vin": SAMPLE["vehicle"]["vin"], "plate": SAMPLE["vehicle"]["plate"], "document": f"{STS['series']}{STS['number']}",
    "series": STS["series"], "number": STS["number"], "address": OWNER["registration"]["city"],
    "driverName": FULL_NAME, "owner.birthDate": BORN, "date_of_birth": date.fromisoformat(BORN),
}  # fmt: skip


def record(msg: str = "event", *args: object, level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("osago.test", level, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


@pytest.fixture(autouse=True)
def token_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Field hashes are keyed by OSAGO_TOKEN_SECRET, as in the services."""
    monkeypatch.setenv("OSAGO_TOKEN_SECRET", SECRET)


def json_line(made: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    line = JsonFormatter("test").format(made)
    entry = json.loads(line)
    assert isinstance(entry, dict)
    return line, entry


def assert_no_personal_data(line: str) -> None:
    for secret in PERSONAL:
        assert secret not in line, f"{secret!r} in {line}"


# --- ids stay whole ----------------------------------------------------------------------------


def test_ten_thousand_random_uuids_stay_whole_in_msg_and_fields() -> None:
    formatter = JsonFormatter("test")
    for _ in range(10_000):
        application, quote, message = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        made = record(
            "application %s accepted; quote %s at /api/v1/applications/%s/offers; queue amq_%s; upper %s",
            application, quote, application, message.hex, str(message).upper(),
            application_id=str(application), quote_id=quote, message_id=str(message),
            path=f"/api/v1/applications/{application}",
        )  # fmt: skip
        entry = json.loads(formatter.format(made))
        msg = entry["msg"]
        for whole in (str(application), str(quote), message.hex, str(message).upper()):
            assert whole in msg, (whole, msg)
        assert entry["application_id"] == str(application)
        assert entry["quote_id"] == str(quote)
        assert entry["message_id"] == str(message)
        assert entry["path"] == f"/api/v1/applications/{application}"


def test_uuids_made_mostly_of_digits_stay_whole_in_free_text() -> None:
    # Digit-heavy ids are where a document, phone or plate pattern without boundaries would bite.
    rng = random.Random(20240314)
    alphabet = "0123456789" * 5 + "abcdef"
    for _ in range(10_000):
        made = uuid.UUID("".join(rng.choice(alphabet) for _ in range(32)))
        for text in (str(made), str(made).upper(), made.hex):
            masked = mask_personal_data(f"id {text}, ({text}); id={text}")
            assert masked == f"id {text}, ({text}); id={text}", masked


def test_ten_digit_counts_stay_in_fields_and_in_free_text() -> None:
    _, entry = json_line(
        record("moved 4510123456 jobs, 7701123456 rows, 1234567890 in total", rows=4510123456, jobs_moved="1234567890")
    )
    assert entry["msg"] == "moved 4510123456 jobs, 7701123456 rows, 1234567890 in total"
    assert entry["rows"] == 4510123456 and entry["jobs_moved"] == "1234567890"


def test_timestamps_codes_and_error_names_stay() -> None:
    text = "deadline 2026-03-14T10:00:00Z, at 2026-03-14 10:00:05; insurer alfa; KBM 0.46; IntegrityError; HTTP 503"
    assert mask_personal_data(text) == text
    _, entry = json_line(
        record("x", insurer="alfa", error="IntegrityError", status=503, tries=3, in_flight_grace_s=1.5)
    )
    assert (entry["insurer"], entry["error"], entry["status"], entry["tries"]) == ("alfa", "IntegrityError", 503, 3)
    assert entry["in_flight_grace_s"] == 1.5


# --- personal data never in a line ----------------------------------------------------------------


@pytest.mark.parametrize("text", FREE_TEXTS)
def test_personal_data_in_free_text_is_masked(text: str) -> None:
    line, _ = json_line(record(text))
    assert_no_personal_data(line)
    line, _ = json_line(record("%s", text))
    assert_no_personal_data(line)


@pytest.mark.parametrize("text", FREE_TEXTS)
def test_personal_data_in_an_exception_is_masked(text: str) -> None:
    try:
        raise ValueError(text)
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    line, entry = json_line(made)
    assert "ValueError" in entry["exc"]
    assert_no_personal_data(line)


@pytest.mark.parametrize(("key", "value"), PERSONAL_FIELDS.items())
def test_personal_fields_are_hashed_never_written(key: str, value: Any) -> None:
    extra: dict[str, Any] = {key: value}
    line, entry = json_line(record("x", **extra))
    assert_no_personal_data(line)
    assert str(value) not in line
    assert entry[key].startswith("hmac:") and len(entry[key]) == len("hmac:") + 16


@pytest.mark.parametrize("text", FREE_TEXTS)
def test_personal_data_under_our_own_keys_or_unknown_keys_is_not_written(text: str) -> None:
    line, entry = json_line(record("x", reason=text, what=text, path=f"/x/{text}", note=text, detail=text))
    assert_no_personal_data(line)
    assert "note" not in entry and "detail" not in entry
    assert set(entry["dropped_fields"].split(",")) == {"note", "detail"}


def test_equal_values_correlate_and_the_hash_is_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    _, first = json_line(record("x", vin=SAMPLE["vehicle"]["vin"], phone=PHONE))
    _, again = json_line(record("y", vin=SAMPLE["vehicle"]["vin"], phone=PHONE))
    monkeypatch.setenv("OSAGO_TOKEN_SECRET", "another secret")
    _, other_secret = json_line(record("x", vin=SAMPLE["vehicle"]["vin"]))
    assert first["vin"] == again["vin"] and first["phone"] == again["phone"]
    assert first["vin"] != first["phone"]
    assert other_secret["vin"] != first["vin"]


def test_an_explicit_secret_keys_hashes_as_the_environment_does(monkeypatch: pytest.MonkeyPatch) -> None:
    made = record("x", vin=SAMPLE["vehicle"]["vin"])
    explicit = json.loads(JsonFormatter("test", secret="explicit").format(made))
    monkeypatch.setenv("OSAGO_TOKEN_SECRET", "explicit")
    assert json_line(made)[1]["vin"] == explicit["vin"]


def test_a_hash_is_under_a_derived_key_never_the_token_secret_itself() -> None:
    # An HMAC of an application id under OSAGO_TOKEN_SECRET is (the core of) its access token.
    application_id = str(uuid.uuid4())
    line, entry = json_line(record("x", application=application_id))
    assert entry["application"].startswith("hmac:") and application_id not in line
    for message in (application_id, f"application-access:{application_id}"):
        under_secret = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
        assert entry["application"] != "hmac:" + under_secret[:16]


@pytest.mark.parametrize("key", ["payload", "body", "application", "reason", "settings_copy", "data", "owner"])
def test_a_dict_or_list_in_extra_is_never_serialised(key: str) -> None:
    for value in (SAMPLE, [SAMPLE], (SAMPLE["owner"],)):
        extra: dict[str, Any] = {key: value}
        line, entry = json_line(record("x", **extra))
        assert key not in entry and key in entry["dropped_fields"].split(",")
        assert "vehicle" not in line and "passport" not in line and "last_name" not in line
        assert_no_personal_data(line)


def test_the_settings_line_shows_only_settings_scalars() -> None:
    line, entry = json_line(
        record(
            "starting",
            settings={"log_level": "DEBUG", "insurers": ("alfa", "beta"), "token_secret": "***", "owner": SAMPLE},
        )
    )
    assert entry["settings"] == {"log_level": "DEBUG", "insurers": "alfa,beta", "token_secret": "***"}
    assert_no_personal_data(line)


def test_the_line_format_is_kept() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        made = record("hello %s", "world", level=logging.WARNING, quote_id="q-1", tries=2)
        made.exc_info = sys.exc_info()
    _, entry = json_line(made)
    assert list(entry)[:5] == ["ts", "level", "service", "logger", "msg"]
    assert list(entry)[-1] == "exc"
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == len("2026-01-01T00:00:00.000Z")
    assert (entry["level"], entry["service"], entry["logger"], entry["msg"]) == (
        "warning",
        "test",
        "osago.test",
        "hello world",
    )
    assert entry["quote_id"] == "q-1" and entry["tries"] == 2 and "KeyError" in entry["exc"]


def test_the_plain_formatter_masks_free_text_and_keeps_its_layout() -> None:
    formatter = PlainFormatter("%(levelname)s %(name)s: %(message)s")
    application_id = str(uuid.uuid4())
    try:
        raise ValueError(FULL_NAME)
    except ValueError:
        made = record("application %s for %s born %s", application_id, FULL_NAME, BORN)
        made.exc_info = sys.exc_info()
    line = formatter.format(made)
    assert line.startswith(f"INFO osago.test: application {application_id} for ")
    assert "ValueError" in line
    assert_no_personal_data(line)


def test_the_backstop_is_bounded() -> None:
    huge = ("Иванов Иван Иванович 4510 123456 " * 40_000) + "\n" + str(uuid.uuid4()) * 10_000
    started = time.monotonic()
    line, entry = json_line(record(huge))
    assert time.monotonic() - started < 2.0
    assert len(entry["msg"]) < 4_100 and entry["msg"].endswith("…[cut]")
    assert_no_personal_data(line)


@pytest.mark.parametrize("keep_end", [False, True])
def test_a_value_split_by_the_cut_is_not_left_behind(keep_end: bool) -> None:
    for shift in range(40):
        text = "a" * shift + " " + f"{PHONE} {SAMPLE['vehicle']['vin']} {FULL_NAME} " * 400
        masked = mask_personal_data(text, 300, keep_end=keep_end)
        assert len(masked) <= 300 + len("…[cut]")
        for fragment in ("9161", "7916", "XW7BF", "Иван"):
            assert fragment not in masked, (shift, masked)


# --- library loggers ---------------------------------------------------------------------------------

PARAMETER_PRINTERS = (
    "tortoise",
    "tortoise.db_client",
    "asyncpg",
    "aiormq.connection",
    "aio_pika.channel",
    "aiohttp.client",
)


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {
        name: logging.getLogger(name).level for name in (*PARAMETER_PRINTERS, "aio_pika", "aiormq", "aiohttp.access")
    }
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_libraries_that_print_parameters_stay_at_info_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "DEBUG")
    for name in PARAMETER_PRINTERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        logging.getLogger(name).debug("INSERT INTO application VALUES ($1, $2): %s", [str(uuid.uuid4()), SAMPLE])
    # Even a library that lowers its own level later is refused by the handler.
    logging.getLogger("tortoise.db_client").setLevel(logging.DEBUG)
    logging.getLogger("tortoise.db_client").debug("SELECT %s", SAMPLE)
    logging.getLogger("osago.ours").debug("our own debug line")
    logging.getLogger("aiormq.connection").info("connected")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(entry["logger"], entry["msg"]) for entry in lines] == [
        ("osago.ours", "our own debug line"),
        ("aiormq.connection", "connected"),
    ]


@pytest.mark.usefixtures("root_logging")
def test_library_levels_follow_a_higher_service_level() -> None:
    configure_logging("test", "WARNING")
    assert not logging.getLogger("tortoise").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiohttp.access").isEnabledFor(logging.INFO)


# --- the allow-list covers every log call ----------------------------------------------------------


def extra_keys_in_code() -> dict[str, list[str]]:
    """Every key of an ``extra={...}`` literal in a log call of the services, with where it is."""
    found: dict[str, list[str]] = {}
    levels = {"debug", "info", "warning", "error", "exception", "critical", "log"}
    for package in SERVICE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr not in levels:
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                        for key in keyword.value.keys:
                            assert isinstance(key, ast.Constant) and isinstance(key.value, str), (path, node.lineno)
                            found.setdefault(key.value, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_extra_key_of_the_services_is_allowed() -> None:
    from shared.platform.log_setup import ALLOWED_FIELDS, SETTINGS_FIELD

    found = extra_keys_in_code()
    assert len(found) >= 20, found  # the scan did find the ~40 log calls
    missing = {key: where for key, where in found.items() if key not in ALLOWED_FIELDS | {SETTINGS_FIELD}}
    assert not missing, f"add these to ALLOWED_FIELDS (or rename them to an allowed key): {missing}"


def test_no_allowed_key_names_personal_data() -> None:
    from shared.platform.log_setup import ALLOWED_FIELDS, is_personal_key

    # application_id is an id; the word "application" alone would be the application itself.
    assert {key for key in ALLOWED_FIELDS if is_personal_key(key)} == {"application_id"}
