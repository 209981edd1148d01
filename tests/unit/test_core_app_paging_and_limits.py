"""The partner list's query parameters and the configurable limits' settings."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from multidict import MultiDict, MultiDictProxy

from core_app.application_list import MAX_LIMIT, Cursor, parse_page_request
from shared.platform.http_api import ApiError
from shared.platform.settings import Settings, SettingsError


def query(**params: str) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(params))


def test_cursor_round_trips_to_the_microsecond() -> None:
    cursor = Cursor(datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor
    assert "=" not in cursor.encode()  # safe in a query string as it is


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "x" * 300,
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'["2026-11-25T12:00:00+00:00"]').decode(),
        base64.urlsafe_b64encode(b'["2026-11-25T12:00:00", "6f1c8f9e-4b7a-4d7e-9a51-0c1d2e3f4a5b"]').decode(),
        base64.urlsafe_b64encode(b'["yesterday", "6f1c8f9e-4b7a-4d7e-9a51-0c1d2e3f4a5b"]').decode(),
        base64.urlsafe_b64encode(b'["2026-11-25T12:00:00+00:00", "not-a-uuid"]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_but_an_issued_cursor_is_refused(text: str) -> None:
    assert Cursor.decode(text) is None


def test_limit_defaults_to_20_and_takes_1_to_100() -> None:
    assert parse_page_request(query()).limit == 20
    assert parse_page_request(query(limit="1")).limit == 1
    assert parse_page_request(query(limit=str(MAX_LIMIT))).limit == MAX_LIMIT


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "", " 7", "+7", "7.0", "\u0667", "1" * 40])
def test_bad_limit_is_a_422_on_the_limit_field(limit: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_page_request(query(limit=limit))
    assert refused.value.status == 422
    assert [field["path"] for field in refused.value.fields] == ["limit"]


def test_bad_limit_and_cursor_are_listed_together() -> None:
    with pytest.raises(ApiError) as refused:
        parse_page_request(query(limit="0", cursor="nope"))
    assert [field["path"] for field in refused.value.fields] == ["limit", "cursor"]


def test_limits_have_safe_defaults_and_come_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.max_body_bytes, defaults.ws_max_message_bytes) == (64 * 1024, 4096)
    assert (defaults.ws_idle_timeout_s, defaults.ws_heartbeat_s, defaults.ws_max_sockets_per_application) == (
        60,
        20,
        10,
    )
    configured = Settings.from_env(
        {
            "OSAGO_MAX_BODY_BYTES": "2048",
            "OSAGO_WS_MAX_MESSAGE_BYTES": "512",
            "OSAGO_WS_IDLE_TIMEOUT_S": "5",
            "OSAGO_WS_HEARTBEAT_S": "0",
            "OSAGO_WS_MAX_SOCKETS_PER_APPLICATION": "3",
        }
    )
    assert configured.max_body_bytes == 2048 and configured.ws_max_message_bytes == 512
    assert configured.ws_idle_timeout_s == 5 and configured.ws_max_sockets_per_application == 3


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OSAGO_WS_MAX_MESSAGE_BYTES": "0"}, "OSAGO_WS_MAX_MESSAGE_BYTES"),
        ({"OSAGO_WS_MAX_SOCKETS_PER_APPLICATION": "-1"}, "OSAGO_WS_MAX_SOCKETS_PER_APPLICATION"),
        ({"OSAGO_WS_IDLE_TIMEOUT_S": "soon"}, "OSAGO_WS_IDLE_TIMEOUT_S"),
        ({"OSAGO_WS_HEARTBEAT_S": "-1"}, "OSAGO_WS_HEARTBEAT_S"),
        # A live browser answers only the heartbeat: idling out before the next ping would drop it.
        ({"OSAGO_WS_IDLE_TIMEOUT_S": "20"}, "OSAGO_WS_IDLE_TIMEOUT_S"),
    ],
)
def test_bad_limits_fail_at_start_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)
