from __future__ import annotations

import pytest

from shared.platform.settings import Settings, SettingsError


def test_defaults_work_without_any_variable() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "postgres://postgres@127.0.0.1:5432/osago"
    assert settings.quote_deadline_s == 60.0
    assert settings.insurers == ()


def test_variables_are_parsed() -> None:
    settings = Settings.from_env(
        {"OSAGO_QUOTE_DEADLINE_S": "7.5", "OSAGO_INSURERS": "sever, volga", "OSAGO_PORT": "9000"}
    )
    assert settings.quote_deadline_s == 7.5
    assert settings.insurers == ("sever", "volga")
    assert settings.default_port(8080) == 9000


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OSAGO_DEADLINE": "5"}, "OSAGO_DEADLINE"),
        ({"OSAGO_QUOTE_DEADLINE_S": "soon"}, "OSAGO_QUOTE_DEADLINE_S"),
        ({"OSAGO_QUOTE_DEADLINE_S": "0"}, "OSAGO_QUOTE_DEADLINE_S"),
        ({"OSAGO_PORT": "70000"}, "OSAGO_PORT"),
        ({"OSAGO_DATABASE_URL": "mysql://x/y"}, "OSAGO_DATABASE_URL"),
        ({"OSAGO_AMQP_URL": "not a url"}, "OSAGO_AMQP_URL"),
        ({"OSAGO_LOG_JSON": "maybe"}, "OSAGO_LOG_JSON"),
    ],
)
def test_unknown_or_malformed_variables_fail_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_redacted_settings_hide_secrets_and_passwords() -> None:
    shown = Settings.from_env({"OSAGO_AMQP_URL": "amqp://user:hunter2@host:5672/", "OSAGO_SERVICE_TOKEN": "t0ps3cret"})
    text = repr(shown.redacted())
    assert "hunter2" not in text and "t0ps3cret" not in text


def test_unknown_insurer_code_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="OSAGO_INSURERS.*'acme'"):
        Settings.from_env({"OSAGO_INSURERS": "sever,acme"})


def test_a_publish_timeout_the_relay_could_not_outwait_within_the_deadline_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="OSAGO_PUBLISH_TIMEOUT_S.*OSAGO_QUOTE_DEADLINE_S"):
        Settings.from_env({"OSAGO_QUOTE_DEADLINE_S": "6", "OSAGO_PUBLISH_TIMEOUT_S": "5"})
    assert Settings.from_env({"OSAGO_QUOTE_DEADLINE_S": "6", "OSAGO_PUBLISH_TIMEOUT_S": "2"}).publish_timeout_s == 2
