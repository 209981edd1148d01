"""JSON logs on stderr that keep ids and drop personal data: by structure first, by regex last.

A line is ``ts, level, service, logger, msg, <extra fields>, [dropped_fields], [exc]``. What the
``extra={...}`` of a log call may put on it is decided by the field's *name*, never by looking for
personal data in its value:

* ``ALLOWED_FIELDS`` (ids, codes, counts, statuses, durations, error class names, our reasons): a
  number, bool or None as it is; a string that is a UUID or a plain number as it is (ids stay
  whole, a 10-digit count is a count); any other string capped and passed through the backstop
  below; an exception becomes its class name; a dict, list or any other object is dropped.
* a name made of a personal word (``PERSONAL_KEY_WORDS``: name, birth, phone, passport, licence,
  vin, plate, document, series, number, address, payload, body, application...): a scalar becomes
  ``hmac:<16 hex>``, an HMAC-SHA256 under a key derived from ``OSAGO_TOKEN_SECRET`` (never the
  secret itself, whose HMACs of application ids are access tokens), so an operator can still see
  that two lines carry the same value; a dict or list is dropped.
* any other name is dropped. Its value means nothing we know of, so it is neither safe to print
  nor useful to hash (the hash of a text or an object's repr correlates nothing); the name is
  listed in ``dropped_fields`` so the drop is visible and the field can be added to the list.
* ``settings`` (the start-up line) is the one mapping written: the redacted configuration
  (``Settings.redacted()``), only keys that are settings fields, only scalar values.

Dicts and lists are never serialised into a line, whatever their key. Free text (``msg`` and
``exc``) cannot be structured, so a bounded regex backstop masks what looks like personal data in
it: every pattern has word boundaries and bounded repeats, the text is capped before it is read,
and UUIDs (and 32-hex ids) are cut out first and never looked into.

Libraries that print SQL parameters or message bodies at DEBUG (``QUIET_LIBRARIES``) are kept at
INFO or above whatever ``OSAGO_LOG_LEVEL`` says, and their DEBUG records are refused by the handler
even if something lowers their level later.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

# What a line may carry, by category. A key used in an ``extra=`` anywhere in the services must be
# here (tests/unit/test_log_masking.py reads every log call's keys and checks).
ALLOWED_FIELDS: Final = frozenset(
    {
        # ids (UUIDs, message ids, our instance and partner ids)
        "application_id", "quote_id", "message_id", "event_id", "offer_id", "partner_id", "request_id",
        # our codes and names: insurers, queues, connections, tasks, consumers, breaker states
        "insurer", "insurers", "queue", "connection", "consumer", "task", "what", "from", "to", "failpoint",
        "state", "method", "path",
        # counts
        "tries", "tasks", "rows", "quotes", "published", "unpublished", "pending", "closed", "jobs_moved",
        "applications", "count",
        # statuses and durations
        "status", "in_flight_grace_s", "retention_days", "duration_s", "elapsed_s", "delay_s", "timeout_s",
        # error class names and reasons that are ours
        "error", "reason", "why",
    }
)  # fmt: skip
SETTINGS_FIELD: Final = "settings"

# A key is personal when one of its words (split at _ . - and camelCase) is one of these.
PERSONAL_KEY_WORDS: Final = frozenset(
    {
        "name", "names", "surname", "patronymic", "firstname", "lastname", "middlename", "fio",
        "birth", "birthday", "birthdate", "dob", "born",
        "phone", "telephone", "tel", "mobile", "email", "mail", "contact",
        "passport", "licence", "license", "vin", "plate", "document", "documents", "doc", "sts", "pts",
        "epts", "series", "number", "frame", "chassis", "inn", "snils",
        "address", "city", "street", "registration",
        "payload", "body", "application", "applicant", "owner", "driver", "drivers", "person",
    }
)  # fmt: skip

# Libraries that print parameters (SQL values, AMQP frames and bodies, HTTP requests) at DEBUG.
QUIET_LIBRARIES: Final = (
    "tortoise", "tortoise.db_client", "asyncpg", "aiormq", "aio_pika", "pamqp",
    "aiohttp.client", "aiohttp.server", "aiohttp.web", "aiohttp.websocket", "aerich", "backoff",
)  # fmt: skip

MAX_MSG_CHARS: Final = 4_000
MAX_EXC_CHARS: Final = 16_000
MAX_FIELD_CHARS: Final = 300
# Longer than any match of a backstop pattern (the longest, four Cyrillic words, is under 340).
_CUT_MARGIN: Final = 400

# A record's own attributes; an extra named like a line's header (ts, service...) is unknown, so dropped.
_STANDARD_ATTRS: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}
_KEY_WORDS: Final = re.compile(r"[^0-9A-Za-z]+|(?<=[a-z0-9])(?=[A-Z])")
_HASH_LABEL: Final = b"osago log pseudonyms v1"

# --- the free-text backstop ------------------------------------------------------------------

_HEX = "[0-9A-Fa-f]"
# Cut out first and left whole: dashed UUIDs and bare 32-hex ids (uuid.hex, AMQP queue names).
_IDS_IN_TEXT: Final = re.compile(
    rf"(?<![0-9A-Za-z-]){_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}(?![0-9A-Za-z-])"
    rf"|(?<![0-9A-Za-z])(?=[0-9]{{0,31}}[A-Fa-f]){_HEX}{{32}}(?![0-9A-Za-z])"
)
_UUID_VALUE: Final = re.compile(rf"{_HEX}{{8}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{12}}")
_NUMBER_VALUE: Final = re.compile(r"[+-]?[0-9]{1,30}(?:\.[0-9]{1,30})?")

_UP, _LO = "А-ЯЁ", "а-яё"
_LOOKALIKES = "АВЕКМНОРСТУХABEKMHOPCTYX"
_VIN_CHARS = "A-HJ-NPR-Z0-9"
_PATRONYMIC = "(?:вич|вна|ична|инична|оглы|кызы)"
# Keys of ``key: value`` / ``key=value`` text (a repr'd dict, JSON, a query string) that name personal data.
_TEXT_KEYS = (
    r"(?:[a-z]{1,20}_){0,2}(?:last_?name|first_?name|middle_?name|sur_?name|patronymic|name|fio"
    r"|birth_?date|birthday|date_of_birth|dob|born|phone|telephone|tel|mobile|e_?mail"
    r"|passport|licen[cs]e|vin|plate|series|number|document|address|city|street|payload|body"
    r"|фамилия|имя|отчество|паспорт|телефон|адрес|номер|серия)"
)
_WORD = rf"[{_UP}](?:[{_LO}]{{1,40}}|[{_UP}]{{1,40}})(?:-[{_UP}]?[{_LO}{_UP}]{{1,40}})?"

_BACKSTOP: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # e-mail addresses
    (re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,40}){0,3}\.[^\W\d_]{2,24}\b"), "[email]"),
    # phone numbers: +7, 8 or 7 and ten digits, with optional spaces, brackets and hyphens; other +countries
    (
        re.compile(r"(?<![\w+])(?:\+[ \t]?7|8|7)[ \t(-]{0,2}\d{3}[ \t)-]{0,2}\d{3}[ \t-]?\d{2}[ \t-]?\d{2}(?!\w)"),
        "[phone]",
    ),
    (re.compile(r"(?<![\w+])\+\d(?:[ \t()-]{0,2}\d){9,14}(?!\w)"), "[phone]"),
    # dates (of birth, of issue): ISO and dd.mm.yyyy; a timestamp's date (followed by its time) stays
    (
        re.compile(r"\b(?:1[89]|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b(?![T ]?\d{1,2}:\d\d)"),
        "[date]",
    ),
    (re.compile(r"\b(?:0[1-9]|[12]\d|3[01])[./](?:0[1-9]|1[0-2])[./](?:1[89]|20)\d\d\b"), "[date]"),
    # VIN: 17 characters, at least one letter and one digit
    (
        re.compile(rf"(?i)\b(?=[{_VIN_CHARS}]{{0,16}}\d)(?=[{_VIN_CHARS}]{{0,16}}[A-Z])[{_VIN_CHARS}]{{17}}\b"),
        "[vin]",
    ),
    # plates: letter, 3 digits, 2 letters, region; Cyrillic letters or their Latin look-alikes
    (
        re.compile(rf"(?i)(?<![\w-])[{_LOOKALIKES}][ \t]?\d{{3}}[ \t]?[{_LOOKALIKES}]{{2}}[ \t]?\d{{2,3}}(?![\w-])"),
        "[plate]",
    ),
    # series with letters + number (licence 77АВ123456, STS 77ХХ123456)
    (re.compile(rf"(?i)\b\d\d[ \t]?[{_UP}A-Z]{{2}}[ \t]?(?:№[ \t]?)?\d{{6}}\b"), "[document]"),
    # series + number written apart (passport 4510 123456, 45 10 123456, licence 77 01 № 123456);
    # a bare 10-digit run is a number like any other and stays
    (re.compile(r"\b\d\d[ \t]?\d\d(?:[ \t]{1,2}|[ \t]?№[ \t]?)\d{6}\b"), "[document]"),
    # what the shapes above missed, by its label: key: value, key=value, 'key': 'value' where the key
    # names personal data (a repr'd dict, JSON, a query string); a value that is a dict is left to its keys
    (
        re.compile(
            rf"(?i)\b(?P<key>{_TEXT_KEYS})(?P<sep>[\"']?[ \t]{{0,3}}[:=][ \t]{{0,3}}[\"']?)[^\s\"',;&{{}}\[\]][^\"',;&{{}}\[\]\n]{{0,99}}"
        ),
        r"\g<key>\g<sep>[masked]",
    ),
    # a label and then a number: "passport 4510123456", "licence № 7701123456"
    (
        re.compile(
            r"(?i)\b(?P<key>passport|паспорт\w{0,3}|licen[cs]e|удостоверени\w{0,3}|ву|vin|plate|phone|телефон"
            r"|series|серия|серии|number|номер)(?P<sep>[ \t#№:]{1,4})(?=[^\s\"',;]{0,8}\d)[^\s\"',;&}\]]{1,40}"
        ),
        r"\g<key>\g<sep>[masked]",
    ),
    # full names in any case: surname name patronymic, name patronymic surname
    (
        re.compile(
            rf"(?i)\b[{_LO}]{{2,40}}(?:-[{_LO}]{{2,40}})?[ \t]{{1,3}}[{_LO}]{{2,40}}[ \t]{{1,3}}[{_LO}]{{2,40}}{_PATRONYMIC}\b"
        ),
        "[name]",
    ),
    (
        re.compile(rf"(?i)\b[{_LO}]{{2,40}}[ \t]{{1,3}}[{_LO}]{{2,40}}{_PATRONYMIC}[ \t]{{1,3}}[{_LO}]{{2,40}}\b"),
        "[name]",
    ),
    # the same transliterated: Ivanov Ivan Ivanovich
    (
        re.compile(
            r"\b[A-Z][a-z]{1,40}[ \t]{1,3}[A-Z][a-z]{1,40}[ \t]{1,3}[A-Z][a-z]{1,40}(?:vich|vna|ichna|ogly|kyzy)\b"
        ),
        "[name]",
    ),
    # any capitalised (or upper-case) Cyrillic word: our own messages are English, so Cyrillic
    # words in a line come from data (names, cities); one to four of them become one [name]
    (re.compile(rf"\b{_WORD}(?:[ \t]{{1,3}}{_WORD}){{0,3}}\b"), "[name]"),
)


def _mask_piece(text: str) -> str:
    for pattern, replacement in _BACKSTOP:
        text = pattern.sub(replacement, text)
    return text


def _mask_all(text: str) -> str:
    pieces: list[str] = []
    start = 0
    for found in _IDS_IN_TEXT.finditer(text):
        pieces.append(_mask_piece(text[start : found.start()]))
        pieces.append(found.group())
        start = found.end()
    pieces.append(_mask_piece(text[start:]))
    return "".join(pieces)


def mask_personal_data(text: str, limit: int = MAX_MSG_CHARS, *, keep_end: bool = False) -> str:
    """Free text with what looks like personal data masked; UUIDs and 32-hex ids left whole.

    At most ``limit`` characters are read and kept: the start (or with ``keep_end`` the end, the
    exception itself in a traceback), marked ``…[cut]``. A value split by the cut is not masked, so
    ``_CUT_MARGIN`` more characters are masked and then thrown away with whatever was split."""
    if len(text) <= limit:
        return _mask_all(text)
    if keep_end:
        masked = _mask_all(text[-(limit + _CUT_MARGIN) :])
        return "[cut]…" + masked[len(masked) - min(limit, max(0, len(masked) - _CUT_MARGIN)) :]
    masked = _mask_all(text[: limit + _CUT_MARGIN])
    return masked[: min(limit, max(0, len(masked) - _CUT_MARGIN))] + "…[cut]"


# --- structured fields -------------------------------------------------------------------------


def is_personal_key(key: str) -> bool:
    """Whether one of the key's words (split at ``_ . -`` and camelCase), or the key, is a personal word."""
    words = {word.lower() for word in _KEY_WORDS.split(key) if word}
    return bool(words & PERSONAL_KEY_WORDS) or key.lower() in PERSONAL_KEY_WORDS


def derive_log_key(secret: str | bytes) -> bytes:
    """The pseudonym key: derived from the secret, so a log hash is never an access token."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _HASH_LABEL, hashlib.sha256).digest()


def _default_key() -> bytes:
    # OSAGO_TOKEN_SECRET as the services read it; without it (a developer's shell), a key of this
    # process only, so hashes correlate within one process and cannot be reversed with a known secret.
    secret = os.environ.get("OSAGO_TOKEN_SECRET")
    return derive_log_key(secret if secret else secrets.token_bytes(32))


def pseudonym(value: object, key: bytes) -> str:
    normalised = " ".join(str(value).split()).casefold()
    return "hmac:" + hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()[:16]


_SCALARS = (bool, int, float, type(None))


def _allowed_value(value: object) -> tuple[bool, Any]:
    """(kept, value) for an allow-listed field."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, _SCALARS):
        return True, value
    if isinstance(value, uuid.UUID):
        return True, str(value)
    if isinstance(value, BaseException):
        return True, type(value).__name__
    if isinstance(value, str):
        if len(value) <= 64 and (_UUID_VALUE.fullmatch(value) or _NUMBER_VALUE.fullmatch(value)):
            return True, value
        return True, mask_personal_data(value, MAX_FIELD_CHARS)
    return False, None  # dicts, lists, bytes, objects: never serialised


@functools.cache
def _settings_names() -> frozenset[str]:
    # Imported here: logging is set up by processes that never read settings (and tests).
    from shared.platform.settings import Settings

    return frozenset(spec.name for spec in dataclasses.fields(Settings))


def _settings_value(value: object) -> tuple[bool, Any]:
    if not isinstance(value, Mapping):
        return False, None
    names = _settings_names()
    shown: dict[str, Any] = {}
    for name, item in value.items():
        if name not in names:
            continue
        if isinstance(item, str | bool | int | float | type(None)):
            shown[name] = item
        elif isinstance(item, tuple | list | frozenset) and all(isinstance(i, str | int | float) for i in item):
            shown[name] = ",".join(str(i) for i in item)
    return True, shown


def structured_fields(record: logging.LogRecord, key: bytes) -> tuple[dict[str, Any], list[str]]:
    """The record's extra fields as they may be written, and the names of those dropped."""
    fields: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in vars(record).items():
        if name in _STANDARD_ATTRS or name.startswith("_"):
            continue
        if name == SETTINGS_FIELD:
            kept, shown = _settings_value(value)
        elif name in ALLOWED_FIELDS:
            kept, shown = _allowed_value(value)
        elif is_personal_key(name) and isinstance(value, str | int | float | uuid.UUID | date | enum.Enum):
            kept, shown = True, pseudonym(value.value if isinstance(value, enum.Enum) else value, key)
        else:
            kept, shown = False, None
        if kept:
            fields[name] = shown
        else:
            dropped.append(name)
    return fields, dropped


# --- formatters and set-up -----------------------------------------------------------------------


def _free_text(record: logging.LogRecord, formatter: logging.Formatter) -> tuple[str, str | None]:
    msg = mask_personal_data(record.getMessage(), MAX_MSG_CHARS)
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    exc = mask_personal_data("\n".join(parts), MAX_EXC_CHARS, keep_end=True) if parts else None
    return msg, exc


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, *, secret: str | None = None) -> None:
        super().__init__()
        self._service = service
        self._key = derive_log_key(secret) if secret else _default_key()

    def format(self, record: logging.LogRecord) -> str:
        msg, exc = _free_text(record, self)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": msg,
        }
        fields, dropped = structured_fields(record, self._key)
        entry.update(fields)
        if dropped:
            entry["dropped_fields"] = ",".join(dropped)
        if exc is not None:
            entry["exc"] = exc
        return json.dumps(entry, ensure_ascii=False, default=lambda value: type(value).__name__)


class PlainFormatter(logging.Formatter):
    """``%(asctime)s service LEVEL logger: message`` for a person at a terminal; no extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        msg, exc = _free_text(record, self)
        shown = logging.makeLogRecord(vars(record))
        shown.msg, shown.args, shown.exc_info, shown.exc_text, shown.stack_info = msg, None, None, exc, None
        return super().format(shown)


class QuietLibraries(logging.Filter):
    """Refuses DEBUG records of ``QUIET_LIBRARIES`` (they carry parameters), whatever their level says."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        return not any(record.name == name or record.name.startswith(name + ".") for name in QUIET_LIBRARIES)


def configure_logging(service: str, level: str = "INFO", *, json_lines: bool = True, secret: str | None = None) -> None:
    """Root logging to stderr. ``secret``: the key of field hashes (default ``OSAGO_TOKEN_SECRET``)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service, secret=secret))
    else:
        handler.setFormatter(PlainFormatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(QuietLibraries())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    # Access logs would carry ?token= query strings; requests are counted in metrics instead.
    logging.getLogger("aiohttp.access").setLevel(max(root.level, logging.WARNING))
