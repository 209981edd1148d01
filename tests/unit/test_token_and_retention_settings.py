"""The settings of access tokens (lifetime, previous secret) and of the retention job."""

from __future__ import annotations

import pytest

from shared.platform.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.access_token_ttl_s == 7 * 24 * 3600  # seven days after the deadline
    assert settings.token_previous_secret == ""  # no rotation under way
    assert settings.retention_days == 30
    assert settings.retention_interval_s == 600


def test_variables_are_parsed_and_secrets_hidden() -> None:
    settings = Settings.from_env(
        {
            "OSAGO_ACCESS_TOKEN_TTL_S": "86400",
            "OSAGO_TOKEN_PREVIOUS_SECRET": "the-old-one",
            "OSAGO_RETENTION_DAYS": "0",
            "OSAGO_RETENTION_INTERVAL_S": "60",
        }
    )
    assert (settings.access_token_ttl_s, settings.retention_days, settings.retention_interval_s) == (86400, 0, 60)
    assert settings.redacted()["token_previous_secret"] == "***"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OSAGO_ACCESS_TOKEN_TTL_S": "0"}, "OSAGO_ACCESS_TOKEN_TTL_S"),
        ({"OSAGO_ACCESS_TOKEN_TTL_S": "a week"}, "OSAGO_ACCESS_TOKEN_TTL_S"),
        ({"OSAGO_RETENTION_DAYS": "-1"}, "OSAGO_RETENTION_DAYS"),
        ({"OSAGO_RETENTION_DAYS": "1.5"}, "OSAGO_RETENTION_DAYS"),
        ({"OSAGO_RETENTION_INTERVAL_S": "0"}, "OSAGO_RETENTION_INTERVAL_S"),
    ],
)
def test_malformed_values_fail_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)
